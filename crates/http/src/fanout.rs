//! Subscriptions and what they deliver to: create (every protocol, filter policy, raw
//! delivery, retry policy), list, read, remove, confirm; each subscription's dead-letter
//! store; the pull queues of `queue` subscriptions (SQS semantics over HTTP); and the
//! certificate behind `SigningCertURL`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use orderflow_embedded::fanout::admission::{AdmissionError, Admitted};
use orderflow_embedded::fanout::pull::MAX_WAIT;
use orderflow_embedded::fanout::spec::{MAX_VISIBILITY_TIMEOUT_SECONDS, SubscriptionRequest};
use orderflow_embedded::fanout::tokens::unsubscribe_token_matches;
use orderflow_embedded::queue::{MAX_RECEIVE_BATCH, ReceivedMessage};
use orderflow_embedded::topic::{SubscribeError, Subscription};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, ErrorBody, body_bytes, json_body};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route("/subscriptions/confirm", get(confirm_subscription))
        .route("/subscriptions/unsubscribe", get(unsubscribe_link))
        .route(
            "/subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .route(
            "/subscriptions/{id}/dlq",
            get(list_subscription_dead_letters),
        )
        .route(
            "/subscriptions/{id}/dlq/redrive",
            post(redrive_subscription_dead_letters),
        )
        .route("/queues/{name}", get(queue_stats))
        .route("/queues/{name}/receive", post(receive_messages))
        .route("/queues/{name}/delete", post(delete_messages))
        .route("/queues/{name}/messages/{receipt}", delete(delete_message))
        .route("/queues/{name}/dlq", get(list_queue_dead_letters))
        .route(
            "/queues/{name}/dlq/redrive",
            post(redrive_queue_dead_letters),
        )
        .route("/sns/{file}", get(signing_certificate))
}

async fn create_subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: SubscriptionRequest = json_body(&headers, body)?;
    let spec = request
        .validate(&state.engine.subscription_rules(false))
        .map_err(|details| ApiError::Invalid {
            error: format!(
                "The subscription is invalid: {}",
                details
                    .iter()
                    .map(|d| format!("{} {}", d.field, d.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            details,
        })?;
    if let Err(e) = state.engine.egress().check_subscription(&spec).await {
        return Err(ApiError::invalid_field(&e.field, &e.message));
    }
    let sub = match state.engine.subscribe(spec).await {
        Ok(Admitted::Created(sub)) => sub,
        // SNS's Subscribe is idempotent: the same endpoint and settings give the same
        // subscription, and no second confirmation request.
        Ok(Admitted::Existing(sub)) => return Ok((StatusCode::OK, Json(sub)).into_response()),
        Err(AdmissionError::Subscribe(SubscribeError::Conflict(message))) => {
            return Ok((
                StatusCode::CONFLICT,
                Json(ErrorBody {
                    error: message,
                    details: vec![],
                }),
            )
                .into_response());
        }
        Err(e @ AdmissionError::DifferentSettings(_)) => {
            return Err(ApiError::invalid_field("endpoint", &e.to_string()));
        }
        // SNS answers SubscriptionLimitExceeded with 403.
        Err(e @ AdmissionError::TooMany(_)) => return Err(ApiError::Forbidden(e.to_string())),
        Err(AdmissionError::ConfirmationsThrottled(wait)) => {
            return Err(ApiError::RateLimited(wait));
        }
        Err(AdmissionError::Subscribe(SubscribeError::Db(e))) => {
            return Err(ApiError::internal(e));
        }
    };
    tracing::info!(subscription = %sub.subscription_arn, protocol = sub.protocol.as_str(), endpoint = %sub.endpoint, status = ?sub.status, "subscription created");
    Ok((StatusCode::CREATED, Json(sub)).into_response())
}

async fn list_subscriptions(State(state): State<AppState>) -> Result<Response, ApiError> {
    let subs = state
        .engine
        .topic()
        .health()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"subscriptions": subs})).into_response())
}

async fn find(state: &AppState, id: &str) -> Result<Subscription, ApiError> {
    state
        .engine
        .topic()
        .get(id.to_owned())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("Subscription {id} does not exist")))
}

async fn get_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let sub = find(&state, &id).await?;
    let health = state
        .engine
        .topic()
        .health()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|h| h.subscription.id == sub.id);
    Ok(match health {
        Some(h) => Json(h).into_response(),
        None => Json(sub).into_response(),
    })
}

async fn delete_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state
        .engine
        .topic()
        .unsubscribe(id.clone())
        .await
        .map_err(ApiError::internal)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!(
            "Subscription {id} does not exist"
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfirmQuery {
    token: Option<String>,
    topic_arn: Option<String>,
    /// SNS's flag: "true" makes the subscription removable only with the API key.
    authenticate_on_unsubscribe: Option<String>,
}

fn sns_xml(action: &str, result: &str) -> Response {
    let request_id = uuid::Uuid::new_v4();
    let body = format!(
        "<{action}Response xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>\n"
    );
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// The `SubscribeURL` of the confirmation handshake; answers like SNS's ConfirmSubscription.
async fn confirm_subscription(
    State(state): State<AppState>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, ApiError> {
    let token = q
        .token
        .ok_or_else(|| ApiError::invalid_field("Token", "is required"))?;
    if q.topic_arn
        .as_deref()
        .is_some_and(|arn| !state.engine.topic().is_named(arn))
    {
        return Err(ApiError::NotFound("No such topic".into()));
    }
    match state
        .engine
        .topic()
        .confirm(
            token,
            q.authenticate_on_unsubscribe
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        )
        .await
        .map_err(ApiError::internal)?
    {
        Some(sub) => {
            tracing::info!(subscription = %sub.subscription_arn, "subscription confirmed");
            Ok(sns_xml(
                "ConfirmSubscription",
                &format!(
                    "<ConfirmSubscriptionResult><SubscriptionArn>{}</SubscriptionArn></ConfirmSubscriptionResult>",
                    sub.subscription_arn
                ),
            ))
        }
        None => Err(ApiError::NotFound(
            "Unknown or expired confirmation token".into(),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UnsubscribeQuery {
    subscription_arn: String,
    /// The subscription's unsubscribe token, which only its `UnsubscribeURL` carries.
    token: Option<String>,
}

/// The `UnsubscribeURL` in every notification. It removes the subscription with the link's
/// token, or with the API key; a bare id or ARN, which shows up in logs and listings,
/// removes nothing. A subscription with `authenticateOnUnsubscribe` needs the API key.
async fn unsubscribe_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Response, ApiError> {
    let with_key = crate::auth::has_api_key(&state, &headers);
    let sub = state
        .engine
        .topic()
        .get(q.subscription_arn.clone())
        .await
        .map_err(ApiError::internal)?;
    let refused = || {
        // The same answer whether the subscription exists or not: the link is no oracle.
        ApiError::Forbidden(
            "This link does not unsubscribe: it needs the Token of the subscription's UnsubscribeURL, or the API key".into(),
        )
    };
    let sub = match sub {
        Some(sub) => sub,
        None if with_key => {
            return Err(ApiError::NotFound(format!(
                "Subscription {} does not exist",
                q.subscription_arn
            )));
        }
        None => return Err(refused()),
    };
    let token_ok = q
        .token
        .as_deref()
        .is_some_and(|t| unsubscribe_token_matches(&sub.token, t));
    if sub.settings.authenticate_on_unsubscribe && !with_key {
        return Err(ApiError::Forbidden(
            "This subscription is removed only with the API key (authenticateOnUnsubscribe)".into(),
        ));
    }
    if !(with_key || token_ok) {
        return Err(refused());
    }
    if state
        .engine
        .topic()
        .unsubscribe(sub.id.clone())
        .await
        .map_err(ApiError::internal)?
    {
        tracing::info!(subscription = %sub.subscription_arn, "unsubscribed by link");
        Ok(sns_xml("Unsubscribe", ""))
    } else {
        Err(ApiError::NotFound(format!(
            "Subscription {} does not exist",
            q.subscription_arn
        )))
    }
}

async fn list_subscription_dead_letters(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state
        .engine
        .topic()
        .dead_letters(id.clone(), 1000)
        .await
        .map_err(ApiError::internal)?
    {
        Some(deliveries) => Ok(Json(json!({"deliveries": deliveries})).into_response()),
        None => Err(ApiError::NotFound(format!(
            "Subscription {id} does not exist"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeliveryIds {
    #[serde(default)]
    delivery_ids: Option<Vec<i64>>,
}

async fn redrive_subscription_dead_letters(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let ids = if bytes.is_empty() {
        None
    } else {
        json_body::<DeliveryIds>(&headers, Ok(bytes))?.delivery_ids
    };
    match state
        .engine
        .topic()
        .redrive(id.clone(), ids)
        .await
        .map_err(ApiError::internal)?
    {
        Some(n) => {
            tracing::info!(subscription = %id, redriven = n, "dead-lettered deliveries redriven");
            Ok(Json(json!({"redriven": n})).into_response())
        }
        None => Err(ApiError::NotFound(format!(
            "Subscription {id} does not exist"
        ))),
    }
}

async fn queue_subscription(state: &AppState, name: &str) -> Result<Subscription, ApiError> {
    state
        .engine
        .topic()
        .by_queue(name.to_owned())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("Queue {name} does not exist")))
}

async fn queue_stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let stats = state
        .engine
        .pull_queues()
        .stats(&sub)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "name": name,
        "subscriptionArn": sub.subscription_arn,
        "visibilityTimeoutSeconds": sub.settings.visibility_timeout_seconds,
        "maxReceiveCount": sub.settings.max_receive_count,
        "rawMessageDelivery": sub.settings.raw_message_delivery,
        "stats": stats,
    }))
    .into_response())
}

/// `ReceiveMessage`: SQS's parameter names, in camelCase.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReceiveRequest {
    max_number_of_messages: Option<usize>,
    visibility_timeout: Option<u32>,
    wait_time_seconds: Option<u64>,
}

fn received_json(m: &ReceivedMessage) -> Value {
    let attributes: serde_json::Map<String, Value> = m
        .attributes
        .iter()
        .map(|(k, v)| {
            let value = serde_json::from_str::<Value>(v).unwrap_or(Value::Null);
            (
                k.clone(),
                json!({"dataType": value["Type"], "stringValue": value["Value"]}),
            )
        })
        .collect();
    json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": m.receive_count.to_string(),
            "SentTimestamp": m.sent_at.to_string(),
            "ApproximateFirstReceiveTimestamp": m.first_received_at.to_string(),
        },
        "messageAttributes": attributes,
    })
}

async fn receive_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let bytes = body_bytes(body)?;
    let request: ReceiveRequest = if bytes.is_empty() {
        ReceiveRequest::default()
    } else {
        json_body(&headers, Ok(bytes))?
    };
    let max = request.max_number_of_messages.unwrap_or(1);
    if !(1..=MAX_RECEIVE_BATCH).contains(&max) {
        return Err(ApiError::invalid_field(
            "maxNumberOfMessages",
            &format!("must be between 1 and {MAX_RECEIVE_BATCH}"),
        ));
    }
    if let Some(v) = request.visibility_timeout
        && v > MAX_VISIBILITY_TIMEOUT_SECONDS
    {
        return Err(ApiError::invalid_field(
            "visibilityTimeout",
            &format!("must be between 0 and {MAX_VISIBILITY_TIMEOUT_SECONDS} seconds"),
        ));
    }
    let wait = Duration::from_secs(request.wait_time_seconds.unwrap_or(0));
    if wait > MAX_WAIT {
        return Err(ApiError::invalid_field(
            "waitTimeSeconds",
            &format!("must be between 0 and {}", MAX_WAIT.as_secs()),
        ));
    }
    let messages = state
        .engine
        .pull_queues()
        .receive(
            &sub,
            max,
            request
                .visibility_timeout
                .map(|s| Duration::from_secs(u64::from(s))),
            wait,
        )
        .await
        .map_err(ApiError::internal)?;
    let messages: Vec<Value> = messages.iter().map(received_json).collect();
    Ok(Json(json!({"messages": messages})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteRequest {
    receipt_handles: Vec<String>,
}

async fn delete_messages(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let request: DeleteRequest = json_body(&headers, body)?;
    if request.receipt_handles.is_empty() || request.receipt_handles.len() > MAX_RECEIVE_BATCH {
        return Err(ApiError::invalid_field(
            "receiptHandles",
            &format!("must list 1 to {MAX_RECEIVE_BATCH} receipt handles"),
        ));
    }
    let deleted = state
        .engine
        .pull_queues()
        .delete(&sub, request.receipt_handles)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"deleted": deleted})).into_response())
}

async fn delete_message(
    State(state): State<AppState>,
    Path((name, receipt)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let deleted = state
        .engine
        .pull_queues()
        .delete(&sub, vec![receipt])
        .await
        .map_err(ApiError::internal)?;
    if deleted == 1 {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(
            "No message is in flight with this receipt handle (deleted already, or its visibility timeout ran out and it was received again)".into(),
        ))
    }
}

async fn list_queue_dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let messages = state
        .engine
        .pull_queues()
        .dead_letters(&sub)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"messages": messages})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageIds {
    #[serde(default)]
    message_ids: Option<Vec<String>>,
}

async fn redrive_queue_dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let sub = queue_subscription(&state, &name).await?;
    let bytes = body_bytes(body)?;
    let ids = if bytes.is_empty() {
        None
    } else {
        json_body::<MessageIds>(&headers, Ok(bytes))?.message_ids
    };
    let n = state
        .engine
        .pull_queues()
        .redrive(&sub, ids)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"redriven": n})).into_response())
}

/// `SigningCertURL`: the PEM certificate whose key signs every envelope.
async fn signing_certificate(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    match state.engine.signer() {
        Some(signer) if signer.cert_name() == file => Ok((
            [
                (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            signer.cert_pem().to_owned(),
        )
            .into_response()),
        _ => Err(ApiError::NotFound("No such certificate".into())),
    }
}
