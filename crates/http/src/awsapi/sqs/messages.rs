//! SQS messages on the wire: message attributes in and out, the checks SQS makes on a
//! message, and a received message as `ReceiveMessage` returns it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use orderflow_embedded::queue::ReceivedMessage;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::awsapi::AwsError;
use crate::awsapi::md5::{self, Attribute, AttributeValue};

/// SQS: a message, body and attributes together, is at most 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// SQS: at most 10 message attributes.
const MAX_ATTRIBUTES: usize = 10;

/// `MessageAttributeValue` as the SDKs send it (binary values are base64 in JSON).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeInput {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
}

impl AttributeInput {
    /// Bytes its type and value add to a message: a binary value counts as the bytes its
    /// base64 stands for, as SQS counts it, not as the longer base64 the JSON carries.
    pub fn size_bytes(&self) -> usize {
        let decoded = |base64: &String| {
            let padding = base64.bytes().rev().take_while(|b| *b == b'=').count();
            (base64.len() * 3 / 4).saturating_sub(padding.min(2))
        };
        self.data_type.as_ref().map_or(0, String::len)
            + self.string_value.as_ref().map_or(0, String::len)
            + self.binary_value.as_ref().map_or(0, decoded)
    }
}

/// Checks the attributes as SQS does and returns them with their size in bytes.
pub fn parse_attributes(
    input: BTreeMap<String, AttributeInput>,
) -> Result<(BTreeMap<String, Attribute>, usize), AwsError> {
    if input.len() > MAX_ATTRIBUTES {
        return Err(AwsError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            input.len()
        )));
    }
    let mut size = 0;
    let mut out = BTreeMap::new();
    for (name, a) in input {
        let valid_name = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !name.to_ascii_lowercase().starts_with("aws.")
            && !name.to_ascii_lowercase().starts_with("amazon.");
        if !valid_name {
            return Err(AwsError::invalid_parameter(format!(
                "Message attribute name '{name}' is invalid."
            )));
        }
        let data_type = a.data_type.unwrap_or_default();
        let base = data_type.split('.').next().unwrap_or("");
        // "Name, type, value and the message body must not be empty or null", and a string
        // value has the body's character restrictions (API_MessageAttributeValue.html).
        if a.string_value.as_deref() == Some("") || a.binary_value.as_deref() == Some("") {
            return Err(AwsError::invalid_parameter(format!(
                "The message attribute '{name}' must contain non-empty message attribute value."
            )));
        }
        if let Some(c) = a.string_value.as_deref().and_then(invalid_character) {
            return Err(AwsError::invalid_parameter(format!(
                "Message attribute '{name}' has the invalid character '#x{:X}'; {ALLOWED_CHARACTERS}",
                u32::from(c)
            )));
        }
        let value = match (base, a.string_value, a.binary_value) {
            ("String", Some(v), None) => AttributeValue::Text(v),
            ("Number", Some(v), None) if is_number(&v) => AttributeValue::Text(v),
            ("Binary", None, Some(v)) => {
                AttributeValue::Binary(BASE64.decode(v.as_bytes()).map_err(|_| {
                    AwsError::invalid_parameter(format!(
                        "Message attribute '{name}' has a BinaryValue that is not base64."
                    ))
                })?)
            }
            _ => {
                return Err(AwsError::invalid_parameter(format!(
                    "Message attribute '{name}' must have a DataType of String, Number or Binary and the matching value."
                )));
            }
        };
        size += name.len()
            + data_type.len()
            + match &value {
                AttributeValue::Text(v) => v.len(),
                AttributeValue::Binary(v) => v.len(),
            };
        out.insert(name, Attribute { data_type, value });
    }
    Ok((out, size))
}

/// SQS's one message system attribute a sender may set: the X-Ray trace header.
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";

/// Checks `MessageSystemAttributes` as SQS does: `AWSTraceHeader` is the only one, and a
/// String. Its digest is answered; the header itself is not carried to receivers (the
/// engine's messages hold message attributes only).
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>
pub fn parse_system_attributes(
    input: BTreeMap<String, AttributeInput>,
) -> Result<BTreeMap<String, Attribute>, AwsError> {
    input
        .into_iter()
        .map(|(name, a)| match (name.as_str(), a.data_type.as_deref(), a.string_value, a.binary_value) {
            (AWS_TRACE_HEADER, Some("String"), Some(v), None) if !v.is_empty() => Ok((
                name,
                Attribute {
                    data_type: "String".into(),
                    value: AttributeValue::Text(v),
                },
            )),
            _ => Err(AwsError::invalid_parameter(format!(
                "Message system attribute '{name}' is invalid: the only one is {AWS_TRACE_HEADER}, a String."
            ))),
        })
        .collect()
}

fn is_number(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(f64::is_finite)
}

const ALLOWED_CHARACTERS: &str = "the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF";

/// The first character outside SQS's allowed set: #x9 | #xA | #xD | #x20 to #xD7FF |
/// #xE000 to #xFFFD | #x10000 to #x10FFFF (Rust strings hold no surrogates).
fn invalid_character(text: &str) -> Option<char> {
    text.chars()
        .find(|c| !matches!(*c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..))
}

pub fn check_body(body: &str, attributes_size: usize) -> Result<(), AwsError> {
    if body.is_empty() {
        return Err(AwsError::missing_parameter("MessageBody"));
    }
    if let Some(c) = invalid_character(body) {
        return Err(AwsError::sqs(
            "InvalidMessageContents",
            "InvalidMessageContents",
            format!(
                "Invalid binary character '#x{:X}' was found in the message body, {ALLOWED_CHARACTERS}",
                u32::from(c)
            ),
        ));
    }
    if body.len() + attributes_size > MAX_MESSAGE_BYTES {
        return Err(AwsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes."
        )));
    }
    Ok(())
}

/// The attributes as the queue stores them. The orders queue holds plain strings (what the
/// store handler reads), so it takes `String` attributes only.
pub fn encode_attributes(
    attributes: &BTreeMap<String, Attribute>,
    typed: bool,
) -> Result<BTreeMap<String, String>, AwsError> {
    attributes
        .iter()
        .map(|(name, a)| {
            let stored = match (&a.value, typed) {
                (AttributeValue::Text(v), false) if a.data_type == "String" => v.clone(),
                (_, false) => {
                    return Err(AwsError::invalid_parameter(format!(
                        "Message attribute '{name}': the orders queue carries String attributes only (the store handler reads them as strings)."
                    )));
                }
                (AttributeValue::Text(v), true) => {
                    json!({"Type": a.data_type, "Value": v}).to_string()
                }
                (AttributeValue::Binary(v), true) => {
                    json!({"Type": a.data_type, "Value": BASE64.encode(v)}).to_string()
                }
            };
            Ok((name.clone(), stored))
        })
        .collect()
}

/// A stored attribute back as SQS carries it.
fn decode_attribute(stored: &str, typed: bool) -> Attribute {
    let typed_value = typed
        .then(|| serde_json::from_str::<Value>(stored).ok())
        .flatten()
        .and_then(|v| {
            let data_type = v.get("Type")?.as_str()?.to_owned();
            let value = v.get("Value")?.as_str()?.to_owned();
            Some((data_type, value))
        });
    match typed_value {
        Some((data_type, value)) if data_type.starts_with("Binary") => Attribute {
            value: AttributeValue::Binary(BASE64.decode(value.as_bytes()).unwrap_or_default()),
            data_type,
        },
        Some((data_type, value)) => Attribute {
            data_type,
            value: AttributeValue::Text(value),
        },
        None => Attribute {
            data_type: "String".into(),
            value: AttributeValue::Text(stored.to_owned()),
        },
    }
}

fn attribute_json(a: &Attribute) -> Value {
    match &a.value {
        AttributeValue::Text(v) => json!({"DataType": a.data_type, "StringValue": v}),
        AttributeValue::Binary(v) => {
            json!({"DataType": a.data_type, "BinaryValue": BASE64.encode(v)})
        }
    }
}

/// Whether a requested name (`All`, `.*`, `prefix.*` or a name) selects `name`.
fn selects(requested: &[String], name: &str) -> bool {
    requested.iter().any(|r| {
        r == "All"
            || r == ".*"
            || r == name
            || r.strip_suffix(".*").is_some_and(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

/// SQS's system attribute naming the queue a dead letter was moved from: "Returns the
/// source queue ARN of the message that was moved to the dead-letter queue".
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html>
pub const DEAD_LETTER_QUEUE_SOURCE_ARN: &str = "DeadLetterQueueSourceArn";

/// The system attributes `ReceiveMessage` can return.
pub const SYSTEM_ATTRIBUTES: [&str; 5] = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "SenderId",
    DEAD_LETTER_QUEUE_SOURCE_ARN,
];

/// A received message as `ReceiveMessage` returns it: the system attributes and message
/// attributes asked for, and the digests of what is returned. `source_arn` is the ARN of
/// the queue the redrive policy moved it from, for a dead letter; a message without one
/// has no `DeadLetterQueueSourceArn`, even under `All`, as SQS leaves it out.
pub fn received_json(
    m: &ReceivedMessage,
    typed: bool,
    system_names: &[String],
    attribute_names: &[String],
    sender_id: &str,
    source_arn: Option<&str>,
) -> Value {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(m.message_id));
    out.insert("ReceiptHandle".into(), json!(m.receipt_handle));
    out.insert("MD5OfBody".into(), json!(md5::of_body(&m.body)));
    out.insert("Body".into(), json!(m.body));
    let mut system = Map::new();
    for name in SYSTEM_ATTRIBUTES {
        if system_names.iter().any(|r| r == "All" || r == name) {
            let value = match name {
                "ApproximateReceiveCount" => m.receive_count.to_string(),
                "ApproximateFirstReceiveTimestamp" => m.first_received_at.to_string(),
                "SentTimestamp" => m.sent_at.to_string(),
                DEAD_LETTER_QUEUE_SOURCE_ARN => match source_arn {
                    Some(arn) => arn.to_owned(),
                    None => continue,
                },
                _ => sender_id.to_owned(),
            };
            system.insert(name.into(), json!(value));
        }
    }
    if !system.is_empty() {
        out.insert("Attributes".into(), Value::Object(system));
    }
    let chosen: BTreeMap<String, Attribute> = m
        .attributes
        .iter()
        .filter(|(name, _)| selects(attribute_names, name))
        .map(|(name, stored)| (name.clone(), decode_attribute(stored, typed)))
        .collect();
    if let Some(digest) = md5::of_attributes(&chosen) {
        out.insert("MD5OfMessageAttributes".into(), json!(digest));
        out.insert(
            "MessageAttributes".into(),
            Value::Object(
                chosen
                    .iter()
                    .map(|(k, a)| (k.clone(), attribute_json(a)))
                    .collect(),
            ),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_value_counts_as_the_bytes_its_base64_stands_for() {
        for bytes in [0usize, 1, 2, 3, 4, 24_000] {
            let value = AttributeInput {
                data_type: Some("Binary".into()),
                string_value: None,
                binary_value: Some(BASE64.encode(vec![7u8; bytes])),
            };
            assert_eq!(value.size_bytes(), "Binary".len() + bytes);
        }
    }

    #[test]
    fn attribute_names_select_all_a_prefix_or_one_name() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects(&names(&["All"]), "a"));
        assert!(selects(&names(&[".*"]), "a"));
        assert!(selects(&names(&["order.*"]), "order.id"));
        assert!(!selects(&names(&["order.*"]), "orderid"));
        assert!(selects(&names(&["x", "y"]), "y"));
        assert!(!selects(&names(&[]), "y"));
    }

    fn message(dead_letter_source: Option<&str>) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m".into(),
            receipt_handle: "h".into(),
            body: "b".into(),
            attributes: BTreeMap::new(),
            sent_at: 1,
            receive_count: 1,
            first_received_at: 2,
            dead_letter_source: dead_letter_source.map(str::to_owned),
        }
    }

    #[test]
    fn the_dead_letter_source_arn_is_returned_by_name_or_all_and_only_for_a_dead_letter() {
        let arn = "arn:aws:sqs:us-east-1:000000000000:POC-Queue";
        let system = |m: &ReceivedMessage, names: &[&str], arn: Option<&str>| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            received_json(m, false, &names, &[], "000000000000", arn)["Attributes"].clone()
        };
        let dead = message(Some("orders"));
        assert_eq!(
            system(&dead, &[DEAD_LETTER_QUEUE_SOURCE_ARN], Some(arn)),
            json!({"DeadLetterQueueSourceArn": arn})
        );
        assert_eq!(
            system(&dead, &["All"], Some(arn))[DEAD_LETTER_QUEUE_SOURCE_ARN],
            arn
        );
        assert_eq!(
            system(&dead, &["SentTimestamp"], Some(arn)),
            json!({"SentTimestamp": "1"}),
            "not asked for, not returned"
        );
        let all = system(&message(None), &["All"], None);
        assert_eq!(all.as_object().unwrap().len(), SYSTEM_ATTRIBUTES.len() - 1);
        assert!(all.get(DEAD_LETTER_QUEUE_SOURCE_ARN).is_none());
        assert_eq!(
            system(&message(None), &[DEAD_LETTER_QUEUE_SOURCE_ARN], None),
            Value::Null,
            "a message sent to the queue directly has no source and no Attributes"
        );
    }

    #[test]
    fn typed_attributes_survive_the_round_trip_through_the_store() {
        let attributes = BTreeMap::from([(
            "b".to_owned(),
            Attribute {
                data_type: "Binary".into(),
                value: AttributeValue::Binary(vec![0, 1, 255]),
            },
        )]);
        let stored = encode_attributes(&attributes, true).unwrap();
        assert_eq!(decode_attribute(&stored["b"], true), attributes["b"]);
        assert!(encode_attributes(&attributes, false).is_err());
    }
}
