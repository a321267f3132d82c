//! Probes and metrics: `GET /healthz` (the process serves), `GET /readyz` (Ollama answers),
//! and the Prometheus endpoint.

use http::{Response, StatusCode};

use crate::body::{BoxBody, full};
use crate::server::AppState;

/// A JSON response with `status`.
fn json(status: StatusCode, body: &serde_json::Value) -> Response<BoxBody> {
    let mut response = super::json_response(body);
    *response.status_mut() = status;
    response
}

/// `200 {"status":"ok"}`.
pub fn healthz() -> Response<BoxBody> {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `200 {"status":"ready","ollama_version":…}` when Ollama answered `GET /api/version`
/// within `upstream.ready_timeout_ms`, else `503 {"status":"not ready","error":…}`.
pub async fn readyz(state: &AppState) -> Response<BoxBody> {
    let timeout = state.config.upstream.ready_timeout();
    match state.ollama.get("/api/version", timeout).await {
        Ok(body) => {
            let version = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("version").cloned())
                .unwrap_or(serde_json::Value::Null);
            json(
                StatusCode::OK,
                &serde_json::json!({"status": "ready", "ollama_version": version}),
            )
        }
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready", "error": e.to_string()}),
        ),
    }
}

/// The Prometheus text exposition of every metric.
pub fn metrics(state: &AppState) -> Response<BoxBody> {
    let mut response = Response::new(full(state.metrics.encode()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
