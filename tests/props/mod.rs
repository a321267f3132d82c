//! Properties checked on arbitrary input, shared by the proptest suite
//! (`tests/fuzz_properties.rs`) and the `cargo fuzz` targets (`fuzz/fuzz_targets/`), so both
//! hold the code to the same rules. Each `check_*` panics with the rule it saw broken.

#![allow(
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "a broken property is a panic, which is what the fuzzer looks for; each fuzz \
              target uses one of the checks"
)]

use bytes::{Bytes, BytesMut};
use ollama_bridge::config::ReasoningField;
use ollama_bridge::openai::completions::CompletionRequest;
use ollama_bridge::openai::request::{ChatCompletionRequest, parse_json};
use ollama_bridge::openai::sse::{ChunkFrames, ChunkObject};
use ollama_bridge::transcode::LineTranscoder;
use ollama_bridge::transcode::chat_stream::ChatStream;
use ollama_bridge::transcode::completion_request::map_completion_request;
use ollama_bridge::transcode::framed::{Framed, Progress};
use ollama_bridge::transcode::request::map_chat_request;

/// Longest upstream line the checks accept; small, so that inputs reach the limit.
const MAX_LINE: usize = 4096;

/// Upstream bytes -> SSE, read in one piece and again in reads of 1, 2, … 17 bytes: both give
/// the same output, and that output is a well-formed ending stream: every event is
/// `data: <JSON object>\n\n`, and the last is `data: [DONE]\n\n` (after a `done` line) or the
/// one error event (after a failure), which appears nowhere else.
pub fn check_upstream_bytes(data: &[u8]) {
    let (whole, progress) = transcode(data, &mut std::iter::once(data.len()));
    let mut sizes = (1..=17).cycle();
    let (pieces, split_progress) = transcode(data, &mut sizes);
    assert_eq!(
        without_new_call_ids(&whole),
        without_new_call_ids(&pieces),
        "output depends on how the input was read"
    );
    assert_eq!(progress, split_progress, "outcome depends on the reads");
    check_sse(&whole, &progress);
}

fn transcode(data: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> (Bytes, Progress) {
    let frames = ChunkFrames::new(ChunkObject::ChatCompletionChunk, "chatcmpl-f", 1, "m", true);
    let mut framed = Framed::new(
        ChatStream::new(frames, true, ReasoningField::Both),
        MAX_LINE,
    );
    let mut out = BytesMut::new();
    let mut progress = Progress::Open;
    let mut rest = data;
    while !rest.is_empty() && !framed.is_ended() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (read, after) = rest.split_at(size);
        rest = after;
        progress = framed.on_read(Bytes::copy_from_slice(read), &mut out);
    }
    if !framed.is_ended() {
        progress = framed.on_eof(&mut out);
    }
    if let Progress::Done(stats) = &progress {
        framed.transcoder().end_stream(stats.usage(), &mut out);
    }
    (out.freeze(), progress)
}

/// `out` with the tool-call ids the bridge makes up (for calls Ollama sent without one,
/// `call_` and 24 random hex digits) zeroed, so two runs compare equal.
fn without_new_call_ids(out: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"\"id\":\"call_";
    const DIGITS: usize = 24;
    let mut copy = out.to_vec();
    let mut at = 0;
    while let Some(found) = copy[at..].windows(PREFIX.len()).position(|w| w == PREFIX) {
        let start = at + found + PREFIX.len();
        let end = start + DIGITS;
        if copy
            .get(start..end)
            .is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit))
            && copy.get(end) == Some(&b'"')
        {
            copy[start..end].fill(b'0');
        }
        at = start;
    }
    copy
}

fn check_sse(out: &[u8], progress: &Progress) {
    let text = std::str::from_utf8(out).expect("SSE output is UTF-8");
    assert!(text.ends_with("\n\n"), "output ends mid-event: {text:?}");
    let events: Vec<&str> = text[..text.len() - 2].split("\n\n").collect();
    let (last, before) = events.split_last().expect("at least one event");
    for event in before {
        let json = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data event: {event:?}"));
        let chunk = event_of(json);
        assert_eq!(
            chunk.object.as_deref(),
            Some("chat.completion.chunk"),
            "{json}"
        );
        assert!(chunk.error.is_none(), "error event before the end");
    }
    match progress {
        Progress::Done(_) => {
            assert_eq!(*last, "data: [DONE]", "a finished stream ends with [DONE]")
        }
        Progress::Failed(_) => {
            let json = last.strip_prefix("data: ").expect("error event");
            let error = event_of(json).error.expect("error event");
            assert_eq!(error.kind, "api_error", "{json}");
        }
        Progress::Open => panic!("the stream neither finished nor failed"),
    }
}

/// What the checks read of an event. Typed, the rest skipped rather than read into a
/// `serde_json::Value`: a `Value` refuses an object whose key is serde_json's own
/// `$serde_json::private::RawValue` token, which is valid JSON and may come from upstream
/// (inside `logprobs`, passed on as it came).
#[derive(serde::Deserialize)]
struct Event {
    object: Option<String>,
    error: Option<ErrorObject>,
}

/// `message` and `code` are read to check that they are strings.
#[derive(serde::Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "message")]
    _message: String,
    #[serde(rename = "code")]
    _code: String,
}

fn event_of(json: &str) -> Event {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not an event ({e}): {json:?}"))
}

/// A request body for `/v1/chat/completions` and `/v1/completions`: parsed, mapped and
/// encoded for Ollama as the routes do, it is either a mapping or an error that answers 400
/// with OpenAI's error body; never a panic, never a 5xx.
pub fn check_request_body(body: &[u8]) {
    let chat = parse_json::<ChatCompletionRequest>(body)
        .and_then(|req| map_chat_request(req, 16))
        .map(|(request, _)| serde_json::to_vec(&request).expect("mapped request encodes"));
    if let Err(error) = chat {
        check_client_error(error);
    }
    let completion = parse_json::<CompletionRequest>(body)
        .and_then(|req| map_completion_request(req, 16, 16))
        .map(|(requests, _)| {
            for request in requests {
                serde_json::to_vec(&request).expect("mapped request encodes");
            }
        });
    if let Err(error) = completion {
        check_client_error(error);
    }
}

fn check_client_error(error: ollama_bridge::error::Error) {
    let response = error.into_response();
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    let body = futures_body(response.into_body());
    let body: serde_json::Value = serde_json::from_slice(&body).expect("error body is JSON");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert!(
        error["param"].is_null() || error["param"].is_string(),
        "{body}"
    );
    assert!(error.get("code").is_some(), "{body}");
}

/// The bytes of a whole in-memory body, read without a runtime.
fn futures_body(body: ollama_bridge::body::BoxBody) -> Bytes {
    use http_body_util::BodyExt;
    let mut collect = std::pin::pin!(body.collect());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match collect.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        _ => panic!("an error body is whole in memory"),
    }
}
