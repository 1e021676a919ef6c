//! Correlation ids that follow one order through every stage: the API's request id, and
//! the AWS X-Ray trace header where the pipeline runs on Lambda.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The HTTP header a client may set, and the API always answers with.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The queue message attribute, stored field and topic message attribute that carry it.
pub const REQUEST_ID_ATTRIBUTE: &str = "requestId";
/// The SQS system attribute with the producer's X-Ray trace header.
pub const AWS_TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";
/// The environment variable Lambda sets to the current invocation's trace header.
pub const AWS_TRACE_ID_ENV: &str = "_X_AMZN_TRACE_ID";

/// A request id: 1-128 characters of `A-Z a-z 0-9 - _ . : / + = @`. A client's id that is
/// not one is replaced, never echoed: it ends up in headers, logs and message attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Option<Self> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:/+=@".contains(c);
        (!s.is_empty() && s.len() <= Self::MAX_LEN && s.chars().all(ok))
            .then(|| RequestId(s.to_owned()))
    }

    /// A new random id (UUIDv4).
    pub fn generate() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    /// The client's id when it is valid, else a new one.
    pub fn from_client(header: Option<&str>) -> Self {
        header
            .and_then(|h| RequestId::parse(h.trim()))
            .unwrap_or_else(RequestId::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        RequestId::parse(&s).ok_or_else(|| serde::de::Error::custom("not a valid request id"))
    }
}

/// The X-Ray trace header of the current Lambda invocation, if any.
pub fn aws_trace_id_from_env() -> Option<String> {
    std::env::var(AWS_TRACE_ID_ENV)
        .ok()
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_client_id_is_kept_and_anything_else_replaced() {
        assert_eq!(
            RequestId::from_client(Some("req-42.a:b/c")).as_str(),
            "req-42.a:b/c"
        );
        for bad in ["", "has space", "new\nline", "quote\"", &"x".repeat(129)] {
            let id = RequestId::from_client(Some(bad));
            assert_ne!(id.as_str(), bad);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        }
        assert!(RequestId::parse(&"x".repeat(128)).is_some());
    }
}
