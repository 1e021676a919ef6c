//! Dead letters beyond listing: one orders-queue dead letter by id, and the stream's
//! on-failure destination (one record, redrive, purge).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, AppState, body_bytes, json_body};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/queue/dlq/{message_id}", get(show_dead_letter))
        .route(
            "/stream/failures/{sequence_number}",
            get(show_stream_failure),
        )
        .route("/stream/failures/redrive", post(redrive_stream_failures))
}

async fn show_dead_letter(
    State(state): State<AppState>,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    match state
        .engine
        .queue()
        .dead_letter(message_id.clone())
        .await
        .map_err(ApiError::internal)?
    {
        Some(message) => Ok(Json(message).into_response()),
        None => Err(ApiError::NotFound(format!(
            "No dead letter with messageId {message_id}"
        ))),
    }
}

fn parse_sequence_number(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(seq) if seq > 0 && raw.len() <= 21 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(seq),
        _ => Err(ApiError::invalid_field(
            "sequenceNumber",
            "must be a stream sequence number (digits)",
        )),
    }
}

async fn show_stream_failure(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let seq = parse_sequence_number(&raw)?;
    match state
        .engine
        .stream()
        .failure(seq)
        .await
        .map_err(ApiError::internal)?
    {
        Some(failure) => Ok(Json(failure).into_response()),
        None => Err(ApiError::NotFound(format!(
            "No stream failure with sequenceNumber {raw}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SequenceNumbers {
    #[serde(default)]
    sequence_numbers: Option<Vec<String>>,
}

/// The optional `{"sequenceNumbers": [...]}` body: `None` means all.
pub(crate) fn optional_sequence_numbers(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Vec<i64>>, ApiError> {
    let bytes = body_bytes(body)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let request: SequenceNumbers = json_body(headers, Ok(bytes))?;
    request
        .sequence_numbers
        .map(|raw| raw.iter().map(|s| parse_sequence_number(s)).collect())
        .transpose()
}

async fn redrive_stream_failures(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let seqs = optional_sequence_numbers(&headers, body)?;
    let report = state
        .engine
        .redrive_stream_failures(seqs)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report).into_response())
}

pub(crate) async fn purge_stream_failures(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let seqs = optional_sequence_numbers(&headers, body)?;
    let purged = state
        .engine
        .stream()
        .purge_failures(seqs)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"purged": purged})).into_response())
}
