//! Shard iterators: opaque to clients, they carry the position in the change log (the last
//! sequence number before it) and when they were issued, so any server on the same data
//! directory, restarted or not, resumes them, and they expire as DynamoDB's do.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// "A shard iterator expires 15 minutes after it is returned to the requester."
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html>
pub(super) const LIFETIME_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ShardIterator {
    /// The sequence number the next record comes after.
    pub after: i64,
    /// Milliseconds since the Unix epoch.
    pub issued_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum IteratorError {
    /// Not an iterator this stream issued.
    Invalid,
    Expired,
}

impl ShardIterator {
    /// `<stream ARN>|1|<position>`, the form DynamoDB's iterators take.
    pub fn encode(&self, stream_arn: &str) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.after.to_be_bytes());
        bytes[8..].copy_from_slice(&self.issued_ms.to_be_bytes());
        format!("{stream_arn}|1|{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn decode(text: &str, stream_arn: &str, now_ms: i64) -> Result<Self, IteratorError> {
        let payload = text
            .strip_prefix(stream_arn)
            .and_then(|rest| rest.strip_prefix("|1|"))
            .ok_or(IteratorError::Invalid)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| IteratorError::Invalid)?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| IteratorError::Invalid)?;
        let iterator = ShardIterator {
            after: i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            issued_ms: i64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
        };
        if iterator.after < 0 {
            return Err(IteratorError::Invalid);
        }
        if now_ms.saturating_sub(iterator.issued_ms) > LIFETIME_MS {
            return Err(IteratorError::Expired);
        }
        Ok(iterator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/1970-01-01T00:00:00.000";

    #[test]
    fn an_iterator_reads_back_as_issued_until_it_is_fifteen_minutes_old() {
        let it = ShardIterator {
            after: 42,
            issued_ms: 1_000_000,
        };
        let text = it.encode(ARN);
        assert!(text.starts_with(&format!("{ARN}|1|")));
        assert_eq!(ShardIterator::decode(&text, ARN, 1_000_000), Ok(it));
        assert_eq!(
            ShardIterator::decode(&text, ARN, 1_000_000 + LIFETIME_MS),
            Ok(it)
        );
        assert_eq!(
            ShardIterator::decode(&text, ARN, 1_000_000 + LIFETIME_MS + 1),
            Err(IteratorError::Expired)
        );
    }

    #[test]
    fn an_iterator_of_another_stream_or_mangled_is_invalid() {
        let text = ShardIterator {
            after: 1,
            issued_ms: 5,
        }
        .encode(ARN);
        let other = ARN.replace("us-east-1", "eu-west-1");
        assert_eq!(
            ShardIterator::decode(&text, &other, 5),
            Err(IteratorError::Invalid)
        );
        assert_eq!(
            ShardIterator::decode(&format!("{text}AA"), ARN, 5),
            Err(IteratorError::Invalid)
        );
        assert_eq!(
            ShardIterator::decode(&format!("{ARN}|1|not base64!"), ARN, 5),
            Err(IteratorError::Invalid)
        );
    }
}
