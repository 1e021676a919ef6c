//! The AWS wire protocols on `orderflow serve`'s own listener: a `POST /` that names an
//! operation in `X-Amz-Target` is an AWS request (the JSON protocols of SQS and DynamoDB),
//! checked for SigV4, answered in the protocol's own shapes; every other request goes on to
//! our API.
//!
//! AWS requests skip our API-key and JSON content-type checks: SigV4 replaces the key, and
//! their content type (`application/x-amz-json-1.0`) and `X-Amz-Target` header are not
//! ones a form or a no-cors `fetch` can send, so a browser asks first (CORS preflight) and
//! this server allows no cross-origin requests. The Host check, rate limit, header limit and
//! request timeout stay in front of them.

mod crc32;
mod dynamodb;
mod error;
mod md5;
pub mod sigv4;
mod sns;
mod sqs;
mod streams;

use std::fmt;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use error::AwsError;

use crate::AppState;

/// SQS's JSON protocol (AWS JSON 1.0), as botocore's SQS model declares it
/// (`"protocol": "json", "jsonVersion": "1.0", "targetPrefix": "AmazonSQS"`).
pub const AMZ_JSON_1_0: &str = "application/x-amz-json-1.0";

/// Largest AWS request body: a batch of ten messages whose bodies and attributes reach
/// SQS's 256 KiB total, with room for JSON escaping.
pub const MAX_AWS_BODY_BYTES: usize = 1024 * 1024;

/// The one DynamoDB table this server holds (the seed's name, as on AWS).
pub const TABLE_NAME: &str = "orders";

/// The one SNS topic this server holds (the seed's name, as on AWS).
pub const TOPIC_NAME: &str = "POC-Topic";

/// The label of the table's one stream. DynamoDB labels a stream with the time it was
/// enabled; the local table's stream is enabled with the table and never replaced, so its
/// label is fixed and its ARN stays the same across restarts and data directories.
pub const STREAM_LABEL: &str = "1970-01-01T00:00:00.000";

/// The account, region and credentials the AWS protocols answer with and check.
#[derive(Clone)]
pub struct AwsSettings {
    pub region: String,
    pub account_id: String,
    /// The access key id a signed request must name when a secret is set.
    pub access_key_id: String,
    /// Queue URLs say `https` (the listener serves TLS).
    pub tls: bool,
    /// The most recent `StartMessageMoveTask`s, newest first (`ListMessageMoveTasks`).
    pub(crate) move_tasks: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// The queues purged within SQS's interval between purges.
    pub(crate) purges: std::sync::Arc<sqs::purges::RecentPurges>,
    /// The API key: with it, requests must be signed with it as the secret access key.
    secret: Option<String>,
}

impl AwsSettings {
    pub const DEFAULT_REGION: &str = "us-east-1";
    pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
    pub const DEFAULT_ACCESS_KEY_ID: &str = "orderflow";

    pub fn new(region: &str, account_id: &str, access_key_id: &str) -> Self {
        AwsSettings {
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            access_key_id: access_key_id.to_owned(),
            tls: false,
            move_tasks: Default::default(),
            purges: Default::default(),
            secret: None,
        }
    }

    /// Requires SigV4 signatures made with `secret` (the API key) from now on.
    pub fn with_secret(mut self, secret: Option<String>) -> Self {
        self.secret = secret;
        self
    }

    /// How long after a `PurgeQueue` another of the same queue is refused (SQS: 60 s, the
    /// default); zero allows every purge, for test suites that purge between tests.
    pub fn with_purge_interval(mut self, interval: std::time::Duration) -> Self {
        self.purges = std::sync::Arc::new(sqs::purges::RecentPurges::new(interval));
        self
    }

    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// `arn:aws:<service>:<region>:<account>:<resource>`, the form every ARN here takes.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account_id
        )
    }

    /// The `orders` table's ARN.
    pub fn table_arn(&self) -> String {
        self.arn("dynamodb", &format!("table/{TABLE_NAME}"))
    }

    /// The ARN of the `orders` table's stream (DynamoDB Streams).
    pub fn stream_arn(&self) -> String {
        format!("{}/stream/{STREAM_LABEL}", self.table_arn())
    }

    /// The `POC-Topic` topic's ARN.
    pub fn topic_arn(&self) -> String {
        self.arn("sns", TOPIC_NAME)
    }

    /// How the embedded pollers' Lambda events name the orders queue, the stream and the
    /// region: as `GetQueueAttributes` (`QueueArn`) and `DescribeStream` (`StreamArn`) do.
    pub fn event_sources(&self) -> orderflow_embedded::EventSources {
        orderflow_embedded::EventSources {
            region: self.region.clone(),
            queue_arn: self.arn("sqs", sqs::ORDERS_QUEUE),
            stream_arn: self.stream_arn(),
        }
    }

    pub(crate) fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings::new(
            Self::DEFAULT_REGION,
            Self::DEFAULT_ACCOUNT_ID,
            Self::DEFAULT_ACCESS_KEY_ID,
        )
    }
}

impl fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .field("tls", &self.tls)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The services whose JSON protocols this listener answers, told apart by the
/// `X-Amz-Target` prefix each one's botocore model declares (`targetPrefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Sqs,
    DynamoDb,
    DynamoDbStreams,
    /// SNS speaks the Query protocol (form body, `Action`), not `X-Amz-Target`.
    Sns,
}

impl Service {
    /// The service and the operation named by `X-Amz-Target: <prefix>.<Operation>`.
    fn of_target(target: &str) -> Option<(Service, &str)> {
        let (prefix, operation) = target.split_once('.')?;
        let service = match prefix {
            "AmazonSQS" => Service::Sqs,
            "DynamoDB_20120810" => Service::DynamoDb,
            "DynamoDBStreams_20120810" => Service::DynamoDbStreams,
            _ => return None,
        };
        Some((service, operation))
    }

    /// The name a SigV4 credential scope must carry for this service.
    fn signing_name(self) -> &'static str {
        match self {
            Service::Sqs => "sqs",
            Service::DynamoDb => "dynamodb",
            // botocore's dynamodbstreams model: `"signingName": "dynamodb"`.
            Service::DynamoDbStreams => "dynamodb",
            Service::Sns => "sns",
        }
    }

    /// `e` in this service's own error shape (the checks before dispatch speak SQS's).
    fn error_shape(self, e: AwsError) -> AwsError {
        match self {
            Service::Sqs | Service::Sns => e,
            // DynamoDB Streams is DynamoDB's endpoint family: the same error protocol.
            Service::DynamoDb | Service::DynamoDbStreams => dynamodb::error_shape(e),
        }
    }
}

/// Whether a request is for the AWS protocols: `POST /` naming an operation.
fn is_aws_request(request: &Request) -> bool {
    request.method() == Method::POST
        && request.uri().path() == "/"
        && request.headers().contains_key("x-amz-target")
}

/// Answers AWS requests; hands every other request on to our API.
pub async fn serve_aws_protocols(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if sns::is_query_request(&request) {
        return sns::serve(&state, request).await;
    }
    if !is_aws_request(&request) {
        return next.run(request).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let service = Service::of_target(header_str(request.headers(), "x-amz-target")).map(|(s, _)| s);
    let mut response = match answer(&state, service, request).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, AMZ_JSON_1_0)],
            body.to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    };
    if service == Some(Service::DynamoDb) {
        response = with_crc32(response).await;
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// What `POST /` answers when it names no AWS operation. The route exists so that the AWS
/// answers this layer gives in front of it come from a route that takes `POST`: axum adds
/// `Allow: GET,HEAD` to anything a route's method fallback answers, and no AWS service
/// sends that header.
pub async fn no_operation() -> crate::error::ApiError {
    crate::error::ApiError::BadRequest(
        "POST / takes AWS requests: name the operation in X-Amz-Target (AWS JSON 1.0) \
         or in Action (an SNS Query form)"
            .into(),
    )
}

/// `response` with DynamoDB's `x-amz-crc32` of its body, on errors as on successes (the
/// SDKs check any answer that carries it).
async fn with_crc32(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // The body is one we just rendered, in memory: reading it back cannot fail or be long.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts
        .headers
        .insert(crc32::HEADER, HeaderValue::from(crc32::of(&bytes)));
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn answer(
    state: &AppState,
    service: Option<Service>,
    request: Request,
) -> Result<serde_json::Value, AwsError> {
    let result = answer_in_sqs_shape(state, request).await;
    match service {
        Some(service) => result.map_err(|e| service.error_shape(e)),
        None => result,
    }
}

async fn answer_in_sqs_shape(
    state: &AppState,
    request: Request,
) -> Result<serde_json::Value, AwsError> {
    let (parts, body) = request.into_parts();
    let target = header_str(&parts.headers, "x-amz-target").to_owned();
    let bytes = axum::body::to_bytes(body, MAX_AWS_BODY_BYTES)
        .await
        .map_err(|_| {
            AwsError::invalid_parameter(format!(
                "The request is larger than {MAX_AWS_BODY_BYTES} bytes or could not be read"
            ))
        })?;
    let Some((service, operation)) = Service::of_target(&target) else {
        return Err(AwsError::unknown_operation(&target));
    };
    sigv4::verify(
        &state.aws,
        service.signing_name(),
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
    )?;
    let mime = header_str(&parts.headers, header::CONTENT_TYPE.as_str())
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != AMZ_JSON_1_0 {
        return Err(AwsError::invalid_parameter(format!(
            "The content type must be {AMZ_JSON_1_0} (the AWS JSON 1.0 protocol)"
        )));
    }
    let input: serde_json::Value = if bytes.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            AwsError::serialization(format!("The request body is not valid JSON: {e}"))
        })?
    };
    if !state.accepting.load(Ordering::Relaxed) {
        return Err(AwsError::service_unavailable());
    }
    let host = header_str(&parts.headers, header::HOST.as_str()).to_owned();
    match service {
        Service::Sqs => sqs::Sqs::new(state, &host).call(operation, input).await,
        Service::DynamoDb => dynamodb::DynamoDb::new(state).call(operation, input).await,
        Service::DynamoDbStreams => streams::Streams::new(state).call(operation, input).await,
        Service::Sns => Err(AwsError::unknown_operation(&target)),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests;
