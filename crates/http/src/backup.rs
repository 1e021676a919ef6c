//! `POST /backup`: streams a consistent snapshot of the running database (a write method,
//! so it takes the API key whenever one is configured).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::AsyncReadExt;

use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/backup", post(backup))
}

/// Media type of an SQLite database file (IANA registration).
const SQLITE_MEDIA_TYPE: &str = "application/vnd.sqlite3";

async fn backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Written beside the database (same file system, owner-only directory), then unlinked
    // once open: the stream reads the open file, and nothing is left behind if the client
    // goes away.
    let path = state
        .engine
        .config()
        .data_dir
        .join(format!(".backup-{}.db", uuid::Uuid::new_v4().simple()));
    let size = state.engine.snapshot(path.clone()).await.map_err(|e| {
        let _ = std::fs::remove_file(&path);
        ApiError::internal(e)
    })?;
    let file = tokio::fs::File::open(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    let file = file.map_err(ApiError::internal)?;
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    tracing::info!(bytes = size, "backup snapshot streamed");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, SQLITE_MEDIA_TYPE.to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"orderflow-backup.db\"".to_owned(),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
