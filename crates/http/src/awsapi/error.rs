//! Errors in the shape of AWS's JSON protocol: a `__type` naming the error shape and a
//! `message`. SQS's JSON protocol is query-compatible, so its errors also carry the
//! `x-amzn-query-error: <Query error code>;<Sender|Receiver>` header that query-compatible
//! SDKs (botocore's `_do_query_compatible_error_parse`) turn into the error code and the
//! modeled exception.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-json-api-responses.html>
//! Plain JSON protocols (DynamoDB) have no such header, and some of their error shapes carry
//! more members than `message` (`Item` of `ConditionalCheckFailedException`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AMZ_JSON_1_0;

#[derive(Debug)]
pub struct AwsError {
    pub status: StatusCode,
    /// The value of `__type`, e.g. `com.amazonaws.sqs#QueueDoesNotExist`.
    pub type_name: String,
    /// The Query protocol's code, e.g. `AWS.SimpleQueueService.NonExistentQueue`.
    pub query_code: String,
    /// `Sender` when the request was at fault, `Receiver` when we were.
    pub sender_fault: bool,
    pub message: String,
    /// How the error is written on the wire.
    pub shape: Shape,
}

/// The wire form of an error, by protocol.
#[derive(Debug, Default)]
pub enum Shape {
    /// SQS: `__type` and `message`, and the `x-amzn-query-error` header.
    #[default]
    QueryCompatibleJson,
    /// AWS JSON 1.0 without query compatibility (DynamoDB): `__type`, `message` and the
    /// error shape's other members.
    Json(Map<String, Value>),
}

impl AwsError {
    /// A modeled SQS error: `shape` is its name in the SQS model, `query_code` the code
    /// the Query protocol used for it.
    pub fn sqs(shape: &str, query_code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            type_name: format!("com.amazonaws.sqs#{shape}"),
            query_code: query_code.to_owned(),
            sender_fault: true,
            message: message.into(),
            shape: Shape::default(),
        }
    }

    /// A modeled DynamoDB Streams error: its shapes live in DynamoDB's namespace, and its
    /// protocol is not query-compatible, so no `x-amzn-query-error` header goes with it.
    pub fn streams(shape: &str, message: impl Into<String>) -> Self {
        AwsError::json(
            StatusCode::BAD_REQUEST,
            format!("com.amazonaws.dynamodb.v20120810#{shape}"),
            message,
        )
    }

    pub fn queue_does_not_exist() -> Self {
        AwsError::sqs(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    pub fn receipt_handle_is_invalid(handle: &str) -> Self {
        AwsError::sqs(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }

    /// A parameter outside its range or format (not a modeled shape in the SQS model).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        AwsError::sqs("InvalidParameterValue", "InvalidParameterValue", message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        AwsError::sqs(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        AwsError::sqs("SerializationException", "SerializationException", message)
    }

    pub fn unknown_operation(target: &str) -> Self {
        AwsError::sqs(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            format!("orderflow serve does not serve the operation {target:?} (yet)."),
        )
    }

    pub fn service_unavailable() -> Self {
        AwsError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            type_name: "com.amazonaws.sqs#ServiceUnavailable".into(),
            query_code: "ServiceUnavailable".into(),
            sender_fault: false,
            message: "The server is shutting down; retry shortly.".into(),
            shape: Shape::default(),
        }
    }

    pub fn internal(e: impl std::error::Error + 'static) -> Self {
        tracing::error!(error = %orderflow_core::error_chain(&e), "an AWS request failed");
        AwsError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            type_name: "com.amazonaws.sqs#InternalError".into(),
            query_code: "InternalError".into(),
            sender_fault: false,
            message: "We encountered an internal error. Please try again.".into(),
            shape: Shape::default(),
        }
    }

    /// An authentication failure (403): `code` is `InvalidClientTokenId`,
    /// `SignatureDoesNotMatch`, `MissingAuthenticationToken` or `IncompleteSignature`.
    pub fn auth(code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::FORBIDDEN,
            type_name: format!("com.amazon.coral.service#{code}Exception"),
            query_code: code.to_owned(),
            sender_fault: true,
            message: message.into(),
            shape: Shape::default(),
        }
    }

    /// The error in a plain JSON protocol's shape: `type_name` is the full `__type`.
    pub fn json(status: StatusCode, type_name: String, message: impl Into<String>) -> Self {
        let query_code = type_name
            .rsplit_once('#')
            .map_or(type_name.as_str(), |(_, code)| code)
            .to_owned();
        AwsError {
            status,
            sender_fault: status.is_client_error(),
            type_name,
            query_code,
            message: message.into(),
            shape: Shape::Json(Map::new()),
        }
    }

    /// Adds a member the error shape models beside `message` (plain JSON protocols only).
    pub fn with_member(mut self, name: &str, value: Value) -> Self {
        if let Shape::Json(members) = &mut self.shape {
            members.insert(name.to_owned(), value);
        }
        self
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        if let Shape::Json(mut members) = self.shape {
            members.insert("__type".into(), Value::String(self.type_name));
            members.insert("message".into(), Value::String(self.message));
            let body = Value::Object(members).to_string();
            return (self.status, [(header::CONTENT_TYPE, AMZ_JSON_1_0)], body).into_response();
        }
        let fault = if self.sender_fault {
            "Sender"
        } else {
            "Receiver"
        };
        let body = json!({"__type": self.type_name, "message": self.message}).to_string();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, AMZ_JSON_1_0)], body).into_response();
        if self.query_code.is_empty() {
            return response;
        }
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.query_code)) {
            response.headers_mut().insert("x-amzn-query-error", v);
        }
        response
    }
}
