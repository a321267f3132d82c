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

/// `POST /api/embed`: a deterministic vector per input (default 8 numbers, `dimensions`
/// when given), each `k / 1024` with `k` in -1024..=1024, so it is exact as an `f32`;
/// `prompt_eval_count` counts words. An unknown model is Ollama's 404.
pub(super) fn embed(shared: &Shared, body: &Value) -> (StatusCode, Value) {
    let model = body["model"].as_str().unwrap_or_default();
    if show(shared, json!({ "model": model }).to_string().as_bytes()).0 != StatusCode::OK {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": format!("model '{model}' not found")}),
        );
    }
    let inputs: Vec<&str> = match &body["input"] {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let dimensions = body["dimensions"].as_u64().unwrap_or(8);
    let embeddings: Vec<Vec<f64>> = inputs.iter().map(|text| vector(text, dimensions)).collect();
    let words: usize = inputs
        .iter()
        .map(|t| t.split_whitespace().count().max(1))
        .sum();
    (
        StatusCode::OK,
        json!({"model": model, "embeddings": embeddings, "total_duration": 1_000_000,
               "load_duration": 1_000, "prompt_eval_count": words}),
    )
}

/// The fake embedding of `text`: `dimensions` numbers `k / 1024`, from an FNV-1a hash.
pub fn vector(text: &str, dimensions: u64) -> Vec<f64> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dimensions)
        .map(|j| {
            let k = (hash.wrapping_add(j.wrapping_mul(7_919)) % 2_049) as f64 - 1_024.0;
            k / 1_024.0
        })
        .collect()
}
