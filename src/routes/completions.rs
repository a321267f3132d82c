//! `POST /v1/completions` over Ollama `POST /api/generate`, streamed or not: `n` choices
//! for each prompt.
//!
//! Source: OpenAI API reference, "Completions > Create completion".

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::BoxBody;
use crate::error::Error;
use crate::ids;
use crate::limit::Admission;
use crate::observe::RequestObserver;
use crate::openai::completions::{CompletionRequest, TextCompletion};
use crate::openai::request::parse_json;
use crate::openai::sse::{ChunkFrames, ChunkObject, SYSTEM_FINGERPRINT};
use crate::routes::generation::{self, Answer, Choice};
use crate::routes::{Route, arrival, read_body};
use crate::server::AppState;
use crate::transcode::completion_request::{CompletionSettings, map_completion_request};
use crate::transcode::generate_aggregate::GenerateAggregate;
use crate::transcode::generate_stream::GenerateStream;
use crate::transcode::request::choice_seed;

/// Handles one text completion request, measured and limited as a chat completion.
///
/// # Errors
/// Before any response byte: 400/413 for the request, 429 when the model's concurrency cap
/// is full, 502/504 or Ollama's own status for the upstream (see [`Error`]). A failure
/// after the stream started is an SSE error event.
pub async fn completions(
    state: &AppState,
    req: Request<Incoming>,
    admission: Option<Admission>,
) -> Result<Response<BoxBody>, Error> {
    let endpoint = Route::Completions.name();
    let mut observer =
        generation::observer(state, "text_completion", endpoint, arrival(&req), admission);
    let answer = respond(state, req, &mut observer).await;
    generation::respond_with(state, answer, observer)
}

/// One choice to generate, before its transcoder: its body, prompt and choice index.
struct Planned {
    body: Vec<u8>,
    prompt: u32,
    echo: Option<String>,
}

async fn respond(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<Answer<GenerateStream>, Error> {
    let (planned, settings) = prepare(state, req, observer).await?;
    let id = ids::completion_id();
    let created = ids::unix_seconds();
    if settings.stream {
        let frames = ChunkFrames::new(
            ChunkObject::TextCompletion,
            &id,
            created,
            &settings.model,
            settings.include_usage,
        );
        let choices = with_transcoders(planned, |i, echo| {
            GenerateStream::new(frames.clone().choice(i), echo, settings.logprobs)
        });
        let lanes = generation::start(state, "/api/generate", choices, observer).await?;
        return Ok(Answer::Stream(lanes));
    }
    let choices = with_transcoders(planned, |_, echo| {
        GenerateAggregate::new(echo, settings.logprobs)
    });
    let lanes = generation::start(state, "/api/generate", choices, observer).await?;
    let (aggregates, usage) = generation::collect(lanes, observer).await?;
    let completion = TextCompletion {
        id,
        object: "text_completion",
        created,
        model: settings.model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: aggregates
            .into_iter()
            .zip(0..)
            .filter_map(|(aggregate, i)| aggregate.into_choice(i))
            .collect(),
        usage,
    };
    Ok(Answer::Whole(generation::json_body(
        state,
        &completion,
        observer,
    )))
}

fn with_transcoders<T>(
    planned: Vec<Planned>,
    mut transcoder: impl FnMut(u32, Option<&str>) -> T,
) -> Vec<Choice<T>> {
    planned
        .into_iter()
        .zip(0..)
        .map(|(plan, i)| Choice {
            transcoder: transcoder(i, plan.echo.as_deref()),
            body: plan.body,
            prompt: plan.prompt,
        })
        .collect()
}

/// Reads, parses and maps the request: Ollama's body for each choice, prompt-major (the
/// choices of prompt `p` are `p * n .. p * n + n`, as OpenAI numbers them).
async fn prepare(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<(Vec<Planned>, CompletionSettings), Error> {
    let config = &state.config;
    let body = read_body(req, config.server.max_body_bytes).await?;
    let begin = Instant::now();
    if config.logging.log_bodies {
        tracing::info!(body = %String::from_utf8_lossy(&body), "request body");
    }
    let parsed: CompletionRequest = parse_json(&body)?;
    drop(body);
    let (requests, settings) = map_completion_request(
        parsed,
        config.openai.max_choices,
        config.openai.completions_default_max_tokens,
    )?;
    let model = config.upstream_model(&settings.model).to_owned();
    state.take_model_slot(observer, &model).await?;
    let mut planned = Vec::with_capacity(requests.len() * settings.n as usize);
    for (mut request, prompt) in requests.into_iter().zip(0..) {
        request.model.clone_from(&model);
        let seed = request.options.seed;
        for choice in 0..settings.n {
            request.options.seed = choice_seed(seed, choice);
            let body = serde_json::to_vec(&request).map_err(|e| Error::InvalidRequest {
                message: format!("cannot encode the upstream request: {e}"),
                param: None,
            })?;
            let echo = settings.echo.then(|| request.prompt.clone());
            planned.push(Planned { body, prompt, echo });
        }
    }
    observer.overhead_since(begin);
    Ok((planned, settings))
}
