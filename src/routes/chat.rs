//! `POST /v1/chat/completions` over Ollama `POST /api/chat`, streamed or not, `n` choices.
//!
//! Source: OpenAI API reference, "Chat > Create chat completion".

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::BoxBody;
use crate::error::Error;
use crate::ids;
use crate::limit::Admission;
use crate::observe::RequestObserver;
use crate::openai::request::{ChatCompletionRequest, parse_json};
use crate::openai::response::ChatCompletion;
use crate::openai::sse::{ChunkFrames, ChunkObject, SYSTEM_FINGERPRINT};
use crate::routes::generation::{self, Answer, Choice};
use crate::routes::{Route, arrival, read_body};
use crate::server::AppState;
use crate::transcode::chat_aggregate::ChatAggregate;
use crate::transcode::chat_stream::ChatStream;
use crate::transcode::request::{ResponseSettings, choice_seed, map_chat_request};

/// Handles one chat completion, measured from the request's arrival to the end of its
/// response (also when the client goes away). `admission` (its slots, its token budget)
/// is held until the response ends, then charged with Ollama's `eval_count`.
///
/// # Errors
/// Before any response byte: 400/413 for the request, 429 when the model's concurrency cap
/// is full, 502/504 or Ollama's own status for the upstream (see [`Error`]). A failure
/// after the stream started is an SSE error event.
pub async fn chat_completions(
    state: &AppState,
    req: Request<Incoming>,
    admission: Option<Admission>,
) -> Result<Response<BoxBody>, Error> {
    let endpoint = Route::ChatCompletions.name();
    let mut observer = generation::observer(state, "chat", endpoint, arrival(&req), admission);
    let answer = respond(state, req, &mut observer).await;
    generation::respond_with(state, answer, observer)
}

async fn respond(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<Answer<ChatStream>, Error> {
    let (bodies, settings) = prepare(state, req, observer).await?;
    let id = ids::chat_completion_id();
    let created = ids::unix_seconds();
    let reasoning = state.config.openai.reasoning_field;
    if settings.stream {
        let frames = ChunkFrames::new(
            ChunkObject::ChatCompletionChunk,
            &id,
            created,
            &settings.model,
            settings.include_usage,
        );
        let choices = with_transcoders(bodies, |i| {
            ChatStream::new(frames.clone().choice(i), settings.logprobs, reasoning)
        });
        let lanes = generation::start(state, "/api/chat", choices, observer).await?;
        return Ok(Answer::Stream(lanes));
    }
    let choices = with_transcoders(bodies, |_| ChatAggregate::new(settings.logprobs));
    let lanes = generation::start(state, "/api/chat", choices, observer).await?;
    let (aggregates, usage) = generation::collect(lanes, observer).await?;
    let choices = aggregates
        .into_iter()
        .zip(0..)
        .filter_map(|(aggregate, i)| aggregate.into_choice(i, reasoning))
        .collect();
    let completion = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: settings.model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices,
        usage,
    };
    Ok(Answer::Whole(generation::json_body(
        state,
        &completion,
        observer,
    )))
}

fn with_transcoders<T>(
    bodies: Vec<Vec<u8>>,
    mut transcoder: impl FnMut(u32) -> T,
) -> Vec<Choice<T>> {
    bodies
        .into_iter()
        .zip(0..)
        .map(|(body, i)| Choice {
            body,
            transcoder: transcoder(i),
            prompt: 0,
        })
        .collect()
}

/// Reads, parses and maps the request: Ollama's body for each of the `n` choices.
async fn prepare(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<(Vec<Vec<u8>>, ResponseSettings), Error> {
    let config = &state.config;
    let body = read_body(req, config.server.max_body_bytes).await?;
    let begin = Instant::now();
    if config.logging.log_bodies {
        tracing::info!(body = %String::from_utf8_lossy(&body), "request body");
    }
    let parsed: ChatCompletionRequest = parse_json(&body)?;
    drop(body);
    let (mut upstream_request, settings) = map_chat_request(parsed, config.openai.max_choices)?;
    config
        .upstream_model(&settings.model)
        .clone_into(&mut upstream_request.model);
    state
        .take_model_slot(observer, &upstream_request.model)
        .await?;
    let seed = upstream_request.options.seed;
    let mut bodies = Vec::with_capacity(settings.n as usize);
    for choice in 0..settings.n {
        upstream_request.options.seed = choice_seed(seed, choice);
        bodies.push(
            serde_json::to_vec(&upstream_request).map_err(|e| Error::InvalidRequest {
                message: format!("cannot encode the upstream request: {e}"),
                param: None,
            })?,
        );
    }
    observer.overhead_since(begin);
    Ok((bodies, settings))
}
