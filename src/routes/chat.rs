//! `POST /v1/chat/completions` over Ollama `POST /api/chat`, streamed or not.
//!
//! Source: OpenAI API reference, "Chat > Create chat completion".

use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{BoxBody, full};
use crate::error::Error;
use crate::ids;
use crate::limit::Admission;
use crate::observe::RequestObserver;
use crate::ollama::client::error_chain;
use crate::ollama::ndjson::NdjsonFramer;
use crate::openai::request::{ChatCompletionRequest, parse_json};
use crate::routes::{Route, arrival, read_body};
use crate::server::AppState;
use crate::sse_body::{SseBody, StreamTimers};
use crate::transcode::StreamFailure;
use crate::transcode::chat_aggregate::ChatAggregate;
use crate::transcode::chat_stream::ChatStream;
use crate::transcode::framed::FramedChat;
use crate::transcode::request::{ResponseSettings, map_chat_request};

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
    let arrival = arrival(&req);
    let metrics = Arc::clone(&state.metrics);
    let mut observer =
        RequestObserver::new(metrics, "chat", Route::ChatCompletions.name(), arrival);
    observer.hold(admission);
    match start(state, req, &mut observer).await {
        Ok((upstream, settings)) => {
            observer.generation_started();
            let id = ids::chat_completion_id();
            let created = ids::unix_seconds();
            if settings.stream {
                Ok(stream_response(
                    state, upstream, &settings, &id, created, observer,
                ))
            } else {
                aggregate_response(state, upstream, settings, id, created, observer).await
            }
        }
        Err(e) => {
            observer.failed(&e);
            Err(e)
        }
    }
}

/// Reads, parses and maps the request, then sends it to Ollama.
async fn start(
    state: &AppState,
    req: Request<Incoming>,
    observer: &mut RequestObserver,
) -> Result<(Incoming, ResponseSettings), Error> {
    let config = &state.config;
    let body = read_body(req, config.server.max_body_bytes).await?;
    let begin = Instant::now();
    if config.logging.log_bodies {
        tracing::info!(body = %String::from_utf8_lossy(&body), "request body");
    }
    let parsed: ChatCompletionRequest = parse_json(&body)?;
    drop(body);
    let (mut upstream_request, settings) = map_chat_request(parsed)?;
    config
        .upstream_model(&settings.model)
        .clone_into(&mut upstream_request.model);
    state
        .take_model_slot(observer, &upstream_request.model)
        .await?;
    let json = serde_json::to_vec(&upstream_request).map_err(|e| Error::InvalidRequest {
        message: format!("cannot encode the upstream request: {e}"),
        param: None,
    })?;
    drop(upstream_request);
    observer.overhead_since(begin);
    let upstream = state.ollama.post_json("/api/chat", json).await?.into_body();
    Ok((upstream, settings))
}

fn stream_response(
    state: &AppState,
    upstream: Incoming,
    settings: &ResponseSettings,
    id: &str,
    created: u64,
    observer: RequestObserver,
) -> Response<BoxBody> {
    let config = &state.config;
    let chat = ChatStream::new(
        id,
        created,
        &settings.model,
        settings.include_usage,
        settings.logprobs,
        config.openai.reasoning_field,
    );
    let timers = StreamTimers {
        idle_timeout: config.upstream.idle_timeout(),
        keepalive: config.upstream.keepalive(),
    };
    let transcoder = FramedChat::new(chat, config.upstream.max_line_bytes);
    let mut body = SseBody::new(upstream, transcoder, timers, observer);
    body.log_frames(config.logging.log_bodies);
    let mut response = Response::new(BoxBody::new(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Reads the whole upstream stream into one `chat.completion`. Dropping this future (the
/// client went away) drops the upstream body and so closes its connection.
async fn aggregate_response(
    state: &AppState,
    upstream: Incoming,
    settings: ResponseSettings,
    id: String,
    created: u64,
    mut observer: RequestObserver,
) -> Result<Response<BoxBody>, Error> {
    let result = aggregate(state, upstream, settings, id, created, &mut observer).await;
    if let Err(e) = &result {
        observer.failed(e);
    }
    result
}

async fn aggregate(
    state: &AppState,
    mut upstream: Incoming,
    settings: ResponseSettings,
    id: String,
    created: u64,
    observer: &mut RequestObserver,
) -> Result<Response<BoxBody>, Error> {
    let config = &state.config;
    let idle_timeout = config.upstream.idle_timeout();
    let mut framer = NdjsonFramer::new(config.upstream.max_line_bytes);
    let mut aggregate = ChatAggregate::new(settings.logprobs);
    let failed = |failure: StreamFailure| Error::UpstreamStream {
        message: failure.to_string(),
        code: failure.code(),
    };
    while !aggregate.is_done() {
        let frame = tokio::time::timeout(idle_timeout, upstream.frame())
            .await
            .map_err(|_| failed(StreamFailure::IdleTimeout(idle_timeout)))?;
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let begin = Instant::now();
                framer.push(data);
                while let Some(line) = framer
                    .next_line()
                    .map_err(|e| failed(StreamFailure::LineTooLong(e.limit)))?
                {
                    aggregate.on_line(&line).map_err(failed)?;
                }
                if aggregate.saw_output() {
                    observer.set_model(aggregate.upstream_model().unwrap_or_default());
                    observer.first_token();
                }
                observer.overhead_since(begin);
            }
            Some(Err(e)) => return Err(failed(StreamFailure::Disconnected(error_chain(&e)))),
            None => {
                if let Some(line) = framer.finish() {
                    aggregate.on_line(&line).map_err(failed)?;
                }
                break;
            }
        }
    }
    // One more poll usually sees the end of the body, which returns the connection to the
    // pool; if the end is not there yet, dropping the body closes the connection.
    let _ = tokio::time::timeout(std::time::Duration::ZERO, upstream.frame()).await;
    let begin = Instant::now();
    if let Some(stats) = aggregate.stats() {
        observer.set_model(aggregate.upstream_model().unwrap_or_default());
        observer.completed(stats);
    }
    let completion = aggregate
        .finish(id, created, settings.model, config.openai.reasoning_field)
        .ok_or_else(|| {
            failed(StreamFailure::Disconnected(
                "upstream closed the stream before its last chunk".to_owned(),
            ))
        })?;
    let json = serde_json::to_vec(&completion).unwrap_or_default();
    if config.logging.log_bodies {
        tracing::info!(body = %String::from_utf8_lossy(&json), "response body");
    }
    observer.overhead_since(begin);
    let mut response = Response::new(full(json));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
