//! Receipt handles as SQS clients see them: the queue's own handle with a tag that binds
//! it to the queue that issued it, so a handle of another queue, a message id passed by
//! mistake or a made-up string is `ReceiptHandleIsInvalid`, as on SQS, while the queue's
//! own stale handle still "succeeds, but the message might not be deleted".
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html>

use aws_lc_rs::digest;

use crate::awsapi::AwsError;

/// Bytes of the tag: enough that a handle of another queue never passes by chance. The tag
/// is no secret: the engine's handle inside is what only the receiver knows.
const TAG_BYTES: usize = 8;

fn tag(queue: &str, handle: &str) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in ["orderflow-sqs-receipt", queue, handle] {
        context.update(&(part.len() as u32).to_be_bytes());
        context.update(part.as_bytes());
    }
    hex::encode(&context.finish().as_ref()[..TAG_BYTES])
}

/// The handle a client receives for the engine's `handle` on `queue`.
pub fn issue(queue: &str, handle: &str) -> String {
    format!("{handle}.{}", tag(queue, handle))
}

/// The engine's handle inside a client's `text`, if `queue` issued it.
pub fn open(queue: &str, text: &str) -> Result<String, AwsError> {
    text.rsplit_once('.')
        .filter(|(handle, t)| uuid::Uuid::parse_str(handle).is_ok() && *t == tag(queue, handle))
        .map(|(handle, _)| handle.to_owned())
        .ok_or_else(|| AwsError::receipt_handle_is_invalid(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_opens_only_on_the_queue_that_issued_it() {
        let inner = uuid::Uuid::now_v7().to_string();
        let handle = issue("scratch", &inner);
        assert_eq!(open("scratch", &handle).unwrap(), inner);
        assert!(open("warehouse", &handle).is_err());
        assert!(open("scratch", &inner).is_err());
        assert!(open("scratch", "garbage").is_err());
        assert!(open("scratch", &format!("{inner}.{}", "0".repeat(16))).is_err());
    }
}
