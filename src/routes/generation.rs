//! What chat and text completions share once their requests are mapped: sending one
//! Ollama request per choice, and answering with an SSE stream or one JSON body.

use std::sync::Arc;

use http::{HeaderValue, Response};
use serde::Serialize;
use tokio::time::Instant;

use crate::body::{BoxBody, full};
use crate::error::Error;
use crate::lanes::{LaneStart, Lanes, Outcome, PendingResponse};
use crate::observe::RequestObserver;
use crate::openai::sse::Usage;
use crate::server::AppState;
use crate::sse_body::SseBody;
use crate::transcode::LineTranscoder;

/// How a generation endpoint answers: a stream of its lanes, or a whole response.
pub enum Answer<T> {
    /// Stream these (started) lanes as SSE.
    Stream(Lanes<T>),
    /// This response (a non-streaming answer).
    Whole(Response<BoxBody>),
}

/// The response for `answer`; an error is recorded by `observer`, which a stream takes
/// along to measure it to its end.
///
/// # Errors
/// `answer`'s error, unchanged.
pub fn respond_with<T: LineTranscoder + Send + Unpin + 'static>(
    state: &AppState,
    answer: Result<Answer<T>, Error>,
    mut observer: RequestObserver,
) -> Result<Response<BoxBody>, Error> {
    match answer {
        Ok(Answer::Stream(lanes)) => Ok(stream(state, lanes, observer)),
        Ok(Answer::Whole(response)) => Ok(response),
        Err(e) => {
            observer.failed(&e);
            Err(e)
        }
    }
}

/// One choice to generate: the Ollama request body and the choice's transcoder.
pub struct Choice<T> {
    /// The JSON body for Ollama.
    pub body: Vec<u8>,
    /// The choice's transcoder.
    pub transcoder: T,
    /// The prompt it answers (0 for chat).
    pub prompt: u32,
}

/// Sends one request per choice to Ollama's `path` and waits for the first response head.
///
/// # Errors
/// As [`Lanes::start`]: Ollama's status, unreachable, or its response timeout, before any
/// choice started.
pub async fn start<T: LineTranscoder>(
    state: &AppState,
    path: &'static str,
    choices: Vec<Choice<T>>,
    observer: &mut RequestObserver,
) -> Result<Lanes<T>, Error> {
    let starts = choices
        .into_iter()
        .map(|choice| LaneStart {
            response: send(state, path, choice.body),
            transcoder: choice.transcoder,
            prompt: choice.prompt,
        })
        .collect();
    let upstream = &state.config.upstream;
    let mut lanes = Lanes::new(starts, upstream.max_line_bytes, upstream.idle_timeout());
    lanes.start().await?;
    observer.generation_started();
    Ok(lanes)
}

fn send(state: &AppState, path: &'static str, body: Vec<u8>) -> PendingResponse {
    let ollama = state.ollama.clone();
    Box::pin(async move { ollama.post_json(path, body).await })
}

/// The SSE response streaming `lanes`.
pub fn stream<T: LineTranscoder + Send + Unpin + 'static>(
    state: &AppState,
    lanes: Lanes<T>,
    observer: RequestObserver,
) -> Response<BoxBody> {
    let config = &state.config;
    let mut body = SseBody::new(
        lanes,
        config.upstream.keepalive(),
        observer,
        Arc::clone(&state.end_streams),
    );
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

/// Reads every lane to its end, for a non-streaming answer: the transcoders (in choice
/// order) and the usage. Dropping this future (the client went away) drops the lanes and
/// so closes their connections.
///
/// # Errors
/// [`Error::UpstreamStream`] when a lane failed (error line, malformed or too long line,
/// disconnect, idle timeout).
pub async fn collect<T: LineTranscoder>(
    mut lanes: Lanes<T>,
    observer: &mut RequestObserver,
) -> Result<(Vec<T>, Usage), Error> {
    let mut scratch = bytes::BytesMut::new();
    loop {
        std::future::poll_fn(|cx| lanes.poll_read(cx, &mut scratch, usize::MAX, Instant::now()))
            .await;
        scratch.clear();
        if lanes.take_first_delta() {
            observer.set_model(lanes.upstream_model().unwrap_or_default());
            observer.first_token();
        }
        match lanes.outcome() {
            None => {}
            Some(Outcome::Done { stats, usage }) => {
                let usage = *usage;
                observer.set_model(lanes.upstream_model().unwrap_or_default());
                observer.completed(*stats);
                return Ok((lanes.into_transcoders(), usage));
            }
            Some(Outcome::Failed(failure)) => {
                return Err(Error::UpstreamStream {
                    message: failure.to_string(),
                    code: failure.code(),
                });
            }
        }
    }
}

/// A JSON response with `value`, logged with `logging.log_bodies`.
pub fn json_body<V: Serialize>(
    state: &AppState,
    value: &V,
    observer: &mut RequestObserver,
) -> Response<BoxBody> {
    let begin = Instant::now();
    let json = serde_json::to_vec(value).unwrap_or_default();
    if state.config.logging.log_bodies {
        tracing::info!(body = %String::from_utf8_lossy(&json), "response body");
    }
    observer.overhead_since(begin);
    let mut response = Response::new(full(json));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The request observer of a generation endpoint, holding the request's admission.
pub fn observer(
    state: &AppState,
    operation: &'static str,
    endpoint: &'static str,
    arrival: Instant,
    admission: Option<crate::limit::Admission>,
) -> RequestObserver {
    let mut observer =
        RequestObserver::new(Arc::clone(&state.metrics), operation, endpoint, arrival);
    observer.hold(admission);
    observer
}
