//! Receipt handles as SQS clients see them: the queue's own handle and the time of the
//! receive, with a tag that binds both to the queue that issued them. So a handle of
//! another queue, a message id passed by mistake or a made-up string is
//! `ReceiptHandleIsInvalid`, as on SQS, while the queue's own stale handle still "succeeds,
//! but the message might not be deleted"; and the receive time bounds how far
//! `ChangeMessageVisibility` may extend it.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html>

use aws_lc_rs::digest;

use crate::awsapi::AwsError;

/// Bytes of the tag: enough that a handle of another queue never passes by chance. The tag
/// is no secret: the engine's handle inside is what only the receiver knows.
const TAG_BYTES: usize = 8;

/// One receive of one message, as a client's receipt handle names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The engine queue's handle.
    pub handle: String,
    /// When the message was received, in milliseconds since the Unix epoch.
    pub received_ms: i64,
}

fn tag(queue: &str, handle: &str, received_ms: &str) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in ["orderflow-sqs-receipt", queue, handle, received_ms] {
        context.update(&(part.len() as u32).to_be_bytes());
        context.update(part.as_bytes());
    }
    hex::encode(&context.finish().as_ref()[..TAG_BYTES])
}

impl Receipt {
    /// The handle a client receives for this receipt on `queue`.
    pub fn issue(&self, queue: &str) -> String {
        let received = self.received_ms.to_string();
        format!(
            "{}.{received}.{}",
            self.handle,
            tag(queue, &self.handle, &received)
        )
    }

    /// The receipt inside a client's `text`, if `queue` issued it.
    pub fn open(queue: &str, text: &str) -> Result<Receipt, AwsError> {
        let invalid = || AwsError::receipt_handle_is_invalid(text);
        let mut parts = text.split('.');
        let (Some(handle), Some(received), Some(t), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if uuid::Uuid::parse_str(handle).is_err() || t != tag(queue, handle, received) {
            return Err(invalid());
        }
        Ok(Receipt {
            handle: handle.to_owned(),
            received_ms: received.parse().map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_opens_only_on_the_queue_that_issued_it() {
        let receipt = Receipt {
            handle: uuid::Uuid::now_v7().to_string(),
            received_ms: 1_700_000_000_123,
        };
        let text = receipt.issue("scratch");
        assert_eq!(Receipt::open("scratch", &text).unwrap(), receipt);
        assert!(Receipt::open("warehouse", &text).is_err());
        assert!(Receipt::open("scratch", &receipt.handle).is_err());
        assert!(Receipt::open("scratch", "garbage").is_err());
        let later = text.replace(".1700000000123.", ".1700000009999.");
        assert!(Receipt::open("scratch", &later).is_err());
    }
}
