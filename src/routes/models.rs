//! `GET /v1/models` over Ollama `GET /api/tags`, and `GET /v1/models/{model}` over
//! `POST /api/show`, with the configured aliases.
//!
//! Source: OpenAI API reference, "Models > List models" and "Retrieve model".

use http::{Method, Response};

use crate::body::BoxBody;
use crate::error::Error;
use crate::ollama::types::{ShowResponse, TagsResponse, namespace, unix_seconds};
use crate::openai::models::{Model, ModelList};
use crate::routes::json_response;
use crate::server::AppState;

/// Largest `/api/tags` or `/api/show` answer read, in bytes.
const MAX_CATALOG_BYTES: usize = 16 * 1024 * 1024;

/// Every Ollama model, then every alias (dated like its target when Ollama has it).
///
/// # Errors
/// Ollama unreachable, failing or answering something unreadable: 502/504 or its status.
pub async fn list(state: &AppState) -> Result<Response<BoxBody>, Error> {
    let tags: TagsResponse = ask(state, Method::GET, "/api/tags", None).await?;
    let mut data: Vec<Model> = tags
        .models
        .into_iter()
        .map(|m| {
            let id = m.model.unwrap_or(m.name);
            let owned_by = namespace(&id).to_owned();
            Model::new(id, unix_seconds(m.modified_at.as_deref()), &owned_by)
        })
        .collect();
    for (alias, target) in &state.config.aliases {
        let created = data
            .iter()
            .find(|m| same_model(&m.id, target))
            .map_or(0, |m| m.created);
        data.push(Model::new(alias, created, namespace(target)));
    }
    Ok(json_response(&ModelList {
        object: "list",
        data,
    }))
}

/// One model by the name a client uses (an alias or an Ollama name, `/` and `:` allowed).
///
/// # Errors
/// 404 `not_found_error` when Ollama does not have it; otherwise as [`list`].
pub async fn retrieve(state: &AppState, id: &str) -> Result<Response<BoxBody>, Error> {
    let target = state.config.upstream_model(id);
    let body = serde_json::json!({ "model": target })
        .to_string()
        .into_bytes();
    let show: ShowResponse = ask(state, Method::POST, "/api/show", Some(body)).await?;
    let created = unix_seconds(show.modified_at.as_deref());
    Ok(json_response(&Model::new(id, created, namespace(target))))
}

async fn ask<T: serde::de::DeserializeOwned>(
    state: &AppState,
    method: Method,
    path: &str,
    json: Option<Vec<u8>>,
) -> Result<T, Error> {
    let timeout = state.config.upstream.response_timeout();
    let bytes = state
        .ollama
        .fetch(method, path, json, timeout, MAX_CATALOG_BYTES)
        .await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::UpstreamStream {
        message: format!("unreadable answer from Ollama {path}: {e}"),
        code: "upstream_malformed",
    })
}

/// Whether two Ollama names are the same model: `llama3.2` is `llama3.2:latest`.
fn same_model(a: &str, b: &str) -> bool {
    let with_tag = |name: &str| -> String {
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') {
            name.to_owned()
        } else {
            format!("{name}:latest")
        }
    };
    with_tag(a) == with_tag(b)
}

#[cfg(test)]
mod tests {
    use super::same_model;
    use crate::ollama::types::{namespace, unix_seconds};

    #[test]
    fn names_namespaces_and_dates_as_ollama_has_them() {
        assert!(same_model("llama3.2", "llama3.2:latest"));
        assert!(!same_model("llama3.2", "llama3.2:3b"));
        assert_eq!(namespace("llama3.2:3b"), "library");
        assert_eq!(namespace("acme/coder:7b"), "acme");
        assert_eq!(
            namespace("hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M"),
            "bartowski"
        );
        assert_eq!(unix_seconds(Some("2026-01-01T00:00:00Z")), 1_767_225_600);
        assert_eq!(
            unix_seconds(Some("2025-06-01T12:00:00.123456789+02:00")),
            1_748_772_000
        );
        assert_eq!(unix_seconds(Some("yesterday")), 0);
    }
}
