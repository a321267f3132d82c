//! `POST /v1/embeddings` over Ollama `POST /api/embed`.
//!
//! Source: OpenAI API reference, "Embeddings > Create embeddings"; Ollama `docs/api.md`,
//! "Generate Embeddings".

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::BoxBody;
use crate::error::Error;
use crate::limit::Admission;
use crate::observe::RequestObserver;
use crate::ollama::types::{EmbedRequest, EmbedResponse};
use crate::openai::embeddings::{
    Embedding, EmbeddingData, EmbeddingList, EmbeddingRequest, EmbeddingUsage, input_texts,
};
use crate::openai::request::parse_json;
use crate::routes::{Route, arrival, json_response, read_body};
use crate::server::AppState;
use crate::transcode::FinalStats;

/// Largest `/api/embed` answer read, in bytes (about 2 million floats).
const MAX_EMBED_BYTES: usize = 64 * 1024 * 1024;

/// Embeds every input with one Ollama request; `admission` is held until the answer.
///
/// # Errors
/// 400 naming the field (token arrays, empty input, a bad `dimensions` or
/// `encoding_format`), 413, 429 for the model's cap, 404 for an unknown model, 502/504.
pub async fn embeddings(
    state: &AppState,
    req: Request<Incoming>,
    admission: Option<Admission>,
) -> Result<Response<BoxBody>, Error> {
    let mut observer = RequestObserver::new(
        std::sync::Arc::clone(&state.metrics),
        "embeddings",
        Route::Embeddings.name(),
        arrival(&req),
    );
    observer.hold(admission);
    let result = embed(state, req, &mut observer).await;
    if let Err(e) = &result {
        observer.failed(e);
    }
    result
}

async fn embed(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<Response<BoxBody>, Error> {
    let config = &state.config;
    let body = read_body(req, config.server.max_body_bytes).await?;
    let begin = Instant::now();
    let request: EmbeddingRequest = parse_json(&body)?;
    drop(body);
    let texts = input_texts(&request.input)?;
    if request.dimensions == Some(0) {
        return Err(Error::invalid(
            "dimensions must be at least 1",
            "dimensions",
        ));
    }
    let model = config.upstream_model(&request.model);
    state.take_model_slot(observer, model).await?;
    let upstream = EmbedRequest {
        model,
        input: &texts,
        dimensions: request.dimensions,
    };
    let json = serde_json::to_vec(&upstream).unwrap_or_default();
    observer.overhead_since(begin);
    let timeout = config.upstream.response_timeout();
    let answer = state
        .ollama
        .fetch(
            Method::POST,
            "/api/embed",
            Some(json),
            timeout,
            MAX_EMBED_BYTES,
        )
        .await?;
    let begin = Instant::now();
    let malformed = |why: String| Error::UpstreamStream {
        message: format!("unreadable answer from Ollama /api/embed: {why}"),
        code: "upstream_malformed",
    };
    let answer: EmbedResponse<'_> =
        serde_json::from_slice(&answer).map_err(|e| malformed(e.to_string()))?;
    if answer.embeddings.len() != texts.len() {
        return Err(malformed(format!(
            "{} embeddings for {} inputs",
            answer.embeddings.len(),
            texts.len()
        )));
    }
    observer.set_model(answer.model.unwrap_or(model));
    observer.completed(FinalStats {
        prompt_eval_count: answer.prompt_eval_count,
        load_duration: answer.load_duration,
        ..FinalStats::default()
    });
    let format = request.encoding_format.unwrap_or_default();
    let data = answer
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let embedding = EmbeddingData::encode(raw, format)?;
            Ok(Embedding {
                object: "embedding",
                index,
                embedding,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| malformed(e.to_string()))?;
    let tokens = answer.prompt_eval_count.unwrap_or(0);
    let response = json_response(&EmbeddingList {
        object: "list",
        data,
        model: &request.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    });
    observer.overhead_since(begin);
    Ok(response)
}
