//! The OpenAPI 3.1 document of this API (`openapi.yaml` at the repository root), served as
//! JSON at `/openapi.json` for clients and for schemathesis.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    let doc: serde_json::Value = serde_norway::from_str(OPENAPI_YAML)
        .expect("openapi.yaml is valid YAML (checked by tests)");
    doc.to_string()
});

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON.as_str(),
    )
        .into_response()
}
