//! `Publish` and `PublishBatch` through the engine's topic: a message published here is
//! stored and fanned out exactly as the pipeline's own `OrderCreated` announcements are
//! (filter policies, raw delivery, retries, the confirmation rule).
//!
//! Any message is accepted, not only an `OrderCreated` event: SNS itself accepts any text,
//! and a subscriber filters what it wants (the pipeline's events carry the `eventType`
//! attribute for that). <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use orderflow_core::{MessageAttribute, Publication, Topic};
use serde_json::Value;

use super::errors;
use super::request::Params;
use super::xml::Xml;
use super::{Answer, Sns};
use crate::awsapi::AwsError;
use crate::awsapi::dynamodb::numbers::Number;

/// SNS: a message, with its attributes, is at most 256 KiB; so is a whole batch.
const MAX_MESSAGE_BYTES: usize = 262_144;
/// SNS: a batch holds 1 to 10 entries.
const MAX_BATCH: usize = 10;
/// SNS: a subject is under 100 characters.
const MAX_SUBJECT_CHARS: usize = 100;

/// A message attribute name: letters, digits, `_`, `-`, `.`; at most 256 characters; no
/// leading, trailing or doubled dot; no `AWS.` or `Amazon.` prefix (reserved).
fn valid_attribute_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// `MessageAttributes.entry.N.{Name, Value.DataType, Value.StringValue}`. The engine
/// carries `String` and `Number` attributes (what the pipeline's own events use); `Binary`,
/// `String.Array` and custom sub-types are refused rather than delivered as another type.
fn parse_attributes(params: &Params) -> Result<BTreeMap<String, MessageAttribute>, AwsError> {
    let mut out = BTreeMap::new();
    for (name, entry) in params.entries("MessageAttributes", "Name") {
        if !valid_attribute_name(&name) {
            return Err(errors::invalid_parameter_value(format!(
                "The message attribute name '{name}' is invalid: letters, digits, '_', '-' and '.', at most 256, no AWS. or Amazon. prefix"
            )));
        }
        let data_type = entry.get("Value.DataType").unwrap_or_default();
        if data_type.is_empty() {
            return Err(errors::invalid_parameter_value(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            )));
        }
        let value = entry.get("Value.StringValue").unwrap_or_default();
        let attribute = match data_type {
            "String" | "Number" if value.is_empty() => {
                return Err(errors::invalid_parameter_value(format!(
                    "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type}'."
                )));
            }
            "String" => MessageAttribute::String(value.to_owned()),
            // "A number can have up to 38 digits of precision, and it can be between 10^-128
            // and 10^+126" (sns-message-attributes.html#SNSMessageAttributes.DataTypes).
            "Number" if Number::read(value).is_ok_and(|n| n.within_powers_of_ten(-128, 126)) => {
                MessageAttribute::Number(value.to_owned())
            }
            "Number" => {
                return Err(errors::invalid_parameter_value(format!(
                    "Could not cast message attribute '{name}' value to number."
                )));
            }
            other => {
                return Err(errors::invalid_parameter_value(format!(
                    "The message attribute '{name}' has type {other}; orderflow serve carries String and Number attributes only."
                )));
            }
        };
        out.insert(name, attribute);
    }
    Ok(out)
}

/// For `MessageStructure=json`: the message "must be a syntactically valid JSON object"
/// with "a top-level JSON key of "default" with a value that is a string". The engine
/// keeps one message per publication, so every subscriber receives `default` (protocol
/// keys such as `sqs` or `email` are not delivered separately; see the README).
fn default_of_structure(message: &str) -> Result<String, AwsError> {
    let invalid = |why: &str| {
        errors::invalid_parameter(format!("Invalid parameter: Message Structure - {why}"))
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(message) else {
        return Err(invalid("JSON message body failed to parse"));
    };
    match map.get("default") {
        Some(Value::String(default)) => Ok(default.clone()),
        _ => Err(invalid("No default entry in JSON message body")),
    }
}

/// One message's parameters (of `Publish`, or of a batch entry) as a publication.
fn publication(params: &Params) -> Result<Publication, AwsError> {
    let message = params.required("Message")?;
    if message.is_empty() {
        return Err(errors::invalid_parameter(
            "Invalid parameter: Empty message",
        ));
    }
    let message = match params.get("MessageStructure") {
        None => message.to_owned(),
        Some("json") => default_of_structure(message)?,
        Some(other) => {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: MessageStructure Reason: must be json, not {other}"
            )));
        }
    };
    let subject = params.get("Subject").unwrap_or_default();
    // "Subjects must be UTF-8 text with no line breaks or control characters, and less than
    // 100 characters long" (API_Publish.html).
    let subject_ok =
        subject.chars().count() < MAX_SUBJECT_CHARS && !subject.chars().any(char::is_control);
    if params.get("Subject").is_some() && (subject.trim().is_empty() || !subject_ok) {
        return Err(errors::invalid_parameter(
            "Invalid parameter: Subject Reason: must be text under 100 characters, without line breaks or control characters",
        ));
    }
    for fifo_only in ["MessageDeduplicationId", "MessageGroupId"] {
        if params.get(fifo_only).is_some() {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: {fifo_only} Reason: The request includes {fifo_only} parameter that is not valid for this topic type"
            )));
        }
    }
    let attributes = parse_attributes(params)?;
    let size = message.len()
        + attributes
            .iter()
            .map(|(k, a)| k.len() + a.data_type().len() + a.value().len())
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(errors::invalid_parameter(format!(
            "Invalid parameter: Message too long (at most {MAX_MESSAGE_BYTES} bytes with its attributes)"
        )));
    }
    Ok(Publication {
        // A standard topic does not deduplicate: each Publish is a new message.
        dedup_id: uuid::Uuid::new_v4().to_string(),
        subject: subject.to_owned(),
        message,
        attributes,
    })
}

/// What a batch entry adds to the batch's size: "the combined size of all messages in the
/// batch, including each message's body and attributes" (API_PublishBatch.html), counted
/// as `publication` counts one message (the attributes' names, types and values).
fn entry_bytes(entry: &Params) -> usize {
    let attributes: usize = entry
        .entries("MessageAttributes", "Name")
        .iter()
        .map(|(name, value)| {
            name.len()
                + value.get("Value.DataType").map_or(0, str::len)
                + value.get("Value.StringValue").map_or(0, str::len)
        })
        .sum();
    entry.get("Message").map_or(0, str::len) + attributes
}

/// A batch entry id: 1-80 letters, digits, hyphens or underscores.
fn valid_entry_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sns<'_> {
    pub(super) async fn publish(&self, params: &Params) -> Answer {
        if params.get("PhoneNumber").is_some() {
            return Err(errors::invalid_parameter(
                "Invalid parameter: PhoneNumber Reason: orderflow serve does not send SMS",
            ));
        }
        let arn = params
            .get("TopicArn")
            .or_else(|| params.get("TargetArn"))
            .ok_or_else(|| {
                errors::invalid_parameter(
                    "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
                )
            })?;
        self.check_topic(arn, "Publish")?;
        let publication = publication(params)?;
        let id = self
            .state
            .engine
            .topic()
            .publish(&publication)
            .await
            .map_err(AwsError::internal)?;
        self.answer("Publish", &|x: &mut Xml| {
            x.text("MessageId", &id);
        })
    }

    pub(super) async fn publish_batch(&self, params: &Params) -> Answer {
        self.check_topic(params.required("TopicArn")?, "PublishBatch")?;
        let entries = params.members("PublishBatchRequestEntries");
        if entries.is_empty() {
            return Err(errors::sns(
                StatusCode::BAD_REQUEST,
                "EmptyBatchRequest",
                "The batch request doesn't contain any entries.",
            ));
        }
        if entries.len() > MAX_BATCH {
            return Err(errors::sns(
                StatusCode::BAD_REQUEST,
                "TooManyEntriesInBatchRequest",
                format!("The batch request contains more entries than permissible ({MAX_BATCH})."),
            ));
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        for entry in &entries {
            let id = entry.get("Id").unwrap_or_default();
            if !valid_entry_id(id) {
                return Err(errors::sns(
                    StatusCode::BAD_REQUEST,
                    "InvalidBatchEntryId",
                    "The Id of a batch entry in a batch request doesn't abide by the specification: 1-80 letters, digits, hyphens or underscores.",
                ));
            }
            if !seen.insert(id) {
                return Err(errors::sns(
                    StatusCode::BAD_REQUEST,
                    "BatchEntryIdsNotDistinct",
                    format!("Two or more batch entries in the request have the same Id ({id})."),
                ));
            }
            total += entry_bytes(entry);
        }
        if total > MAX_MESSAGE_BYTES {
            return Err(errors::sns(
                StatusCode::BAD_REQUEST,
                "BatchRequestTooLong",
                format!(
                    "The length of all the messages put together is more than the limit ({MAX_MESSAGE_BYTES} bytes)."
                ),
            ));
        }
        // Each entry stands on its own: a bad one fails alone, the rest go out together.
        let mut failed: Vec<(String, AwsError)> = Vec::new();
        let mut ids = Vec::new();
        let mut publications = Vec::new();
        for entry in &entries {
            let id = entry.get("Id").unwrap_or_default().to_owned();
            match publication(entry) {
                Ok(p) => {
                    ids.push(id);
                    publications.push(p);
                }
                Err(e) => failed.push((id, e)),
            }
        }
        let mut results = self
            .state
            .engine
            .topic()
            .publish_batch(&publications)
            .await
            .into_iter();
        let mut successful = Vec::new();
        for id in ids {
            match results.next() {
                Some(Ok(message_id)) => successful.push((id, message_id)),
                Some(Err(e)) => failed.push((id, AwsError::internal(e))),
                None => failed.push((
                    id,
                    AwsError::internal(std::io::Error::other(
                        "an earlier entry of the batch failed to publish",
                    )),
                )),
            }
        }
        self.answer("PublishBatch", &|x: &mut Xml| {
            x.open("Successful");
            for (id, message_id) in &successful {
                x.open("member")
                    .text("Id", id)
                    .text("MessageId", message_id)
                    .close("member");
            }
            x.close("Successful").open("Failed");
            for (id, e) in &failed {
                x.open("member")
                    .text("Id", id)
                    .text("Code", &e.query_code)
                    .text("Message", &e.message)
                    .text("SenderFault", if e.sender_fault { "true" } else { "false" })
                    .close("member");
            }
            x.close("Failed");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_structure_delivers_its_default_and_needs_one() {
        assert_eq!(
            default_of_structure(r#"{"default": "hi", "email": "mail"}"#).unwrap(),
            "hi"
        );
        assert!(default_of_structure(r#"{"email": "mail"}"#).is_err());
        assert!(default_of_structure(r#"{"default": 1}"#).is_err());
        assert!(default_of_structure("not json").is_err());
    }

    #[test]
    fn a_batch_entry_counts_its_attributes_toward_the_batch_size() {
        let entry = Params::parse(
            b"Id=a&Message=hello&MessageAttributes.entry.1.Name=kind\
              &MessageAttributes.entry.1.Value.DataType=String\
              &MessageAttributes.entry.1.Value.StringValue=note",
        );
        assert_eq!(
            entry_bytes(&entry),
            "hello".len() + "kind".len() + "String".len() + 4
        );
    }

    #[test]
    fn a_number_attribute_has_38_digits_between_1e_minus_128_and_1e126() {
        let number = |v: &str| {
            let body = format!(
                "MessageAttributes.entry.1.Name=n&MessageAttributes.entry.1.Value.DataType=Number&MessageAttributes.entry.1.Value.StringValue={v}"
            );
            parse_attributes(&Params::parse(body.as_bytes()))
        };
        for good in [
            "1.50",
            "-3",
            "1E126",
            "1E-128",
            "12345678901234567890123456789012345678",
        ] {
            assert!(number(good).is_ok(), "{good}");
        }
        for bad in [
            "1E300",
            "1E-129",
            "123456789012345678901234567890123456789",
            "NaN",
            "inf",
            "0x1",
        ] {
            let e = number(bad).unwrap_err();
            assert_eq!(
                e.message, "Could not cast message attribute 'n' value to number.",
                "{bad}"
            );
        }
    }

    #[test]
    fn attribute_names_follow_sns_s_rules() {
        assert!(valid_attribute_name("eventType"));
        assert!(valid_attribute_name("a.b-c_d"));
        for bad in ["", ".a", "a.", "a..b", "AWS.x", "amazon.y", "a b"] {
            assert!(!valid_attribute_name(bad), "{bad:?}");
        }
    }
}
