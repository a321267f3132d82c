//! fake-ollama's models: `GET /api/tags` and `POST /api/show`.
//!
//! Source: Ollama `docs/api.md`, "List Local Models" and "Show Model Information".

use http::StatusCode;
use serde_json::{Value, json};

use super::{Shared, lock};

/// `modified_at` of the transcripts and `synth`.
pub const TRANSCRIPT_AT: &str = "2026-01-01T00:00:00Z";
/// `modified_at` of installed models: fractional seconds and an offset, as Ollama writes it.
pub const INSTALLED_AT: &str = "2025-06-01T12:00:00.123456789+02:00";

/// The listed models with their `modified_at`, sorted by name: the transcripts and the
/// installed names (`synth` is answered but not listed).
fn models(shared: &Shared) -> Vec<(String, &'static str)> {
    let mut all: Vec<(String, &'static str)> = shared
        .transcripts
        .keys()
        .map(|name| (name.clone(), TRANSCRIPT_AT))
        .collect();
    all.extend(
        lock(&shared.installed)
            .iter()
            .map(|name| (name.clone(), INSTALLED_AT)),
    );
    all.sort();
    all
}

/// `{"models":[{"name","model","modified_at","size","digest","details"}]}`.
pub(super) fn tags(shared: &Shared) -> (StatusCode, Value) {
    let models: Vec<Value> = models(shared)
        .into_iter()
        .map(|(name, at)| {
            json!({"name": name, "model": name, "modified_at": at, "size": 1,
                   "digest": "0".repeat(64), "details": {"format": "gguf", "family": "fake"}})
        })
        .collect();
    (StatusCode::OK, json!({ "models": models }))
}

/// The model named by `model` (or `name`) in the body, or Ollama's 404.
pub(super) fn show(shared: &Shared, body: &[u8]) -> (StatusCode, Value) {
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
    let asked = body["model"]
        .as_str()
        .or(body["name"].as_str())
        .unwrap_or_default();
    let base = asked.split_once('?').map_or(asked, |(name, _)| name);
    let listed = models(shared).into_iter().find(|(name, _)| name == base);
    match listed
        .map(|(_, at)| at)
        .or((base == "synth").then_some(TRANSCRIPT_AT))
    {
        Some(at) => (
            StatusCode::OK,
            json!({"modified_at": at, "details": {"format": "gguf", "family": "fake"},
                   "capabilities": ["completion"]}),
        ),
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": format!("model '{asked}' not found")}),
        ),
    }
}
