//! The MD5 digests SQS returns with a message, which SDKs check: of the body, and of the
//! message attributes in SQS's documented byte encoding.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html#sqs-attributes-md5-message-digest-calculation>

use md5::{Digest, Md5};

/// A message attribute as SQS carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub data_type: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Text(String),
    Binary(Vec<u8>),
}

pub fn of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// Each attribute, sorted by name: name, data type (each a 4-byte big-endian length and
/// the UTF-8 bytes), a transport byte (1 for string and number values, 2 for binary) and
/// the value (length and bytes).
pub fn of_attributes<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a Attribute)>,
) -> Option<String> {
    let mut sorted: Vec<_> = attributes.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut md5 = Md5::new();
    for (name, attribute) in sorted {
        field(&mut md5, name.as_bytes());
        field(&mut md5, attribute.data_type.as_bytes());
        match &attribute.value {
            AttributeValue::Text(v) => {
                md5.update([1u8]);
                field(&mut md5, v.as_bytes());
            }
            AttributeValue::Binary(v) => {
                md5.update([2u8]);
                field(&mut md5, v);
            }
        }
    }
    Some(hex::encode(md5.finalize()))
}

fn field(md5: &mut Md5, bytes: &[u8]) {
    md5.update((bytes.len() as u32).to_be_bytes());
    md5.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_digest_is_the_hex_md5_of_its_bytes() {
        assert_eq!(of_body(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn no_attributes_have_no_digest() {
        assert_eq!(of_attributes(std::iter::empty()), None);
    }
}
