//! SNS's Query protocol on `orderflow serve`'s topic `POC-Topic`: a form-encoded
//! `POST /` naming an `Action`, checked for SigV4 (signing name `sns`), answered in XML.
//! Operations, parameters and errors follow the SNS API reference:
//! <https://docs.aws.amazon.com/sns/latest/api/API_Operations.html>

mod delivery_policy;
mod errors;
mod publish;
mod request;
mod subscriptions;
mod topics;
mod xml;

use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use self::request::Params;
use self::xml::Xml;
use super::{AwsError, AwsSettings, MAX_AWS_BODY_BYTES, Service, sigv4};
use crate::AppState;

/// The Query protocol's content type (botocore's query serializer sends it).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// An operation's XML answer.
type Answer = Result<String, AwsError>;

/// Whether a request is SNS's: `POST /` with a form body and no `X-Amz-Target`.
pub(super) fn is_query_request(request: &Request) -> bool {
    let mime = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim();
    request.method() == Method::POST
        && request.uri().path() == "/"
        && !request.headers().contains_key("x-amz-target")
        && mime.eq_ignore_ascii_case(FORM_CONTENT_TYPE)
}

/// Answers one SNS request.
pub(super) async fn serve(state: &AppState, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (status, body) = match answer(state, request, &request_id).await {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (e.status, xml::error(&e, &request_id)),
    };
    let mut response = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn answer(state: &AppState, request: Request, request_id: &str) -> Answer {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_AWS_BODY_BYTES)
        .await
        .map_err(|_| {
            errors::invalid_parameter(format!(
                "The request is larger than {MAX_AWS_BODY_BYTES} bytes or could not be read"
            ))
        })?;
    // A cross-site HTML form can send this content type without a CORS preflight, but it
    // cannot set `Authorization`. So even when any credentials are accepted (no key), a
    // request must carry a SigV4 `Authorization` header, as every SDK and the CLI send.
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(AwsError::auth(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    }
    sigv4::verify(
        &state.aws,
        Service::Sns.signing_name(),
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
    )?;
    if !state.accepting.load(Ordering::Relaxed) {
        return Err(AwsError::service_unavailable());
    }
    let params = Params::parse(&bytes);
    let action = params.get("Action").unwrap_or_default().to_owned();
    Sns { state, request_id }.call(&action, &params).await
}

pub(super) struct Sns<'a> {
    state: &'a AppState,
    request_id: &'a str,
}

impl Sns<'_> {
    fn settings(&self) -> &AwsSettings {
        &self.state.aws
    }

    fn answer(&self, action: &str, result: &dyn Fn(&mut Xml)) -> Answer {
        Ok(xml::success(action, self.request_id, Some(result)))
    }

    async fn call(&self, action: &str, params: &Params) -> Answer {
        match action {
            "CreateTopic" => self.create_topic(params).await,
            "ListTopics" => self.list_topics(params).await,
            "GetTopicAttributes" => self.get_topic_attributes(params).await,
            "Subscribe" => self.subscribe(params).await,
            "ConfirmSubscription" => self.confirm_subscription(params).await,
            "Unsubscribe" => self.unsubscribe(params).await,
            "ListSubscriptions" => self.list_subscriptions(params, false).await,
            "ListSubscriptionsByTopic" => self.list_subscriptions(params, true).await,
            "GetSubscriptionAttributes" => self.get_subscription_attributes(params).await,
            "SetSubscriptionAttributes" => self.set_subscription_attributes(params).await,
            "Publish" => self.publish(params).await,
            "PublishBatch" => self.publish_batch(params).await,
            "" => Err(errors::sns(
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "The request must contain the parameter Action.",
            )),
            other => Err(errors::sns(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!(
                    "The action {other} is not valid for this web service (orderflow serve answers the SNS actions its README lists)."
                ),
            )),
        }
    }
}
