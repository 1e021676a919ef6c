//! SNS's error codes and statuses, as its API reference and botocore's model declare them
//! (`NotFound` 404, `InvalidParameter` 400, `ParameterValueInvalid` 400,
//! `AuthorizationError` 403, ...): <https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html>

use axum::http::StatusCode;

use crate::awsapi::AwsError;

/// A sender-fault SNS error. `type_name` is the JSON protocols' field; the Query protocol
/// carries only the code.
pub fn sns(status: StatusCode, code: &str, message: impl Into<String>) -> AwsError {
    AwsError {
        status,
        type_name: String::new(),
        query_code: code.to_owned(),
        sender_fault: true,
        message: message.into(),
        // Rendered as XML by the SNS module; the JSON shape is never used.
        shape: Default::default(),
    }
}

pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    sns(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

/// `InvalidParameterValueException`, whose code is `ParameterValueInvalid`.
pub fn invalid_parameter_value(message: impl Into<String>) -> AwsError {
    sns(StatusCode::BAD_REQUEST, "ParameterValueInvalid", message)
}

pub fn not_found(message: impl Into<String>) -> AwsError {
    sns(StatusCode::NOT_FOUND, "NotFound", message)
}

pub fn authorization_error(message: impl Into<String>) -> AwsError {
    sns(StatusCode::FORBIDDEN, "AuthorizationError", message)
}
