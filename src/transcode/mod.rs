//! Pure conversions between the two wire formats: no I/O, no clocks.
//!
//! - [`request`]: OpenAI chat request -> Ollama `/api/chat` request.
//! - [`completion_request`]: OpenAI completions request -> Ollama `/api/generate` requests.
//! - [`chat_stream`]: Ollama `/api/chat` lines -> `chat.completion.chunk` SSE frames.
//! - [`generate_stream`]: Ollama `/api/generate` lines -> `text_completion` SSE frames.
//! - [`framed`]: NDJSON framing + a [`LineTranscoder`], from upstream reads to SSE bytes.
//! - [`chat_aggregate`], [`generate_aggregate`]: the same lines -> one whole response.

pub mod chat_aggregate;
pub mod chat_stream;
pub mod completion_request;
pub mod framed;
pub mod generate_aggregate;
pub mod generate_stream;
pub mod request;

use std::time::Duration;

use bytes::BytesMut;

use crate::ollama::types::{ChatChunk, decode_string, is_string};
use crate::openai::sse::Usage;

/// What a line did to one choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing visible was written (an empty chunk).
    Quiet,
    /// At least one content, reasoning or tool-call delta was written (or collected).
    Delta,
    /// The last line: the choice's finish chunk was written.
    Done(FinalStats),
}

/// Turns the NDJSON lines of one upstream generation into one choice of the response:
/// SSE frames (`chat_stream`, `generate_stream`) or a collected whole (`*_aggregate`,
/// which write nothing).
pub trait LineTranscoder {
    /// Transcodes one NDJSON line (without its `\n`), appending frames to `out`.
    ///
    /// # Errors
    /// [`StreamFailure::Malformed`] for a line that is not a chunk of this endpoint,
    /// [`StreamFailure::Upstream`] for an `{"error":…}` line. Nothing is written for them;
    /// call [`LineTranscoder::fail`] to write the error event.
    fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<Step, StreamFailure>;

    /// Writes the error event for `failure` and ends the choice. What was sent stays sent.
    fn fail(&mut self, failure: &StreamFailure, out: &mut BytesMut);

    /// After every choice is done: the usage chunk if asked, and `[DONE]`.
    fn end_stream(&self, usage: Usage, out: &mut BytesMut);

    /// Whether the choice ended (finished or failed); later input is ignored.
    fn is_ended(&self) -> bool;

    /// The model Ollama reported, once a line named it.
    fn upstream_model(&self) -> Option<&str>;
}

/// The counts and durations of Ollama's last line (`done: true`), under Ollama's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct FinalStats {
    /// Prompt tokens (`prompt_eval_count`).
    pub prompt_eval_count: Option<u64>,
    /// Output tokens (`eval_count`).
    pub eval_count: Option<u64>,
    /// `load_duration`, nanoseconds.
    pub load_duration: Option<u64>,
    /// `prompt_eval_duration`, nanoseconds.
    pub prompt_eval_duration: Option<u64>,
    /// `eval_duration`, nanoseconds.
    pub eval_duration: Option<u64>,
}

impl FinalStats {
    /// The stats of a `done` chunk.
    pub fn of(chunk: &ChatChunk<'_>) -> Self {
        Self {
            prompt_eval_count: chunk.prompt_eval_count,
            eval_count: chunk.eval_count,
            load_duration: chunk.load_duration,
            prompt_eval_duration: chunk.prompt_eval_duration,
            eval_duration: chunk.eval_duration,
        }
    }

    /// OpenAI's usage object for these counts.
    pub fn usage(&self) -> Usage {
        Usage::new(self.prompt_eval_count, self.eval_count)
    }

    /// The counts and durations of `self` and `other` together (for `n` > 1).
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        Self {
            prompt_eval_count: add(self.prompt_eval_count, other.prompt_eval_count),
            eval_count: add(self.eval_count, other.eval_count),
            load_duration: add(self.load_duration, other.load_duration),
            prompt_eval_duration: add(self.prompt_eval_duration, other.prompt_eval_duration),
            eval_duration: add(self.eval_duration, other.eval_duration),
        }
    }
}

/// Why an upstream stream ended without its `done` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// Ollama wrote an `{"error":…}` line; the text is Ollama's.
    Upstream(String),
    /// A line is not a valid chat chunk.
    Malformed(String),
    /// A line is longer than `upstream.max_line_bytes`.
    LineTooLong(usize),
    /// The connection broke, or closed before the `done` line.
    Disconnected(String),
    /// No bytes arrived for `upstream.idle_timeout_ms`.
    IdleTimeout(Duration),
    /// The bridge is shutting down and `server.shutdown_grace_ms` is over.
    ShuttingDown,
}

impl StreamFailure {
    /// The `kind` label of `ollama_bridge_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "error",
            Self::Malformed(_) | Self::LineTooLong(_) => "malformed",
            Self::Disconnected(_) => "disconnected",
            Self::IdleTimeout(_) => "timeout",
            Self::ShuttingDown => "shutdown",
        }
    }

    /// The `code` of the error event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "upstream_error",
            Self::Malformed(_) | Self::LineTooLong(_) => "upstream_malformed",
            Self::Disconnected(_) => "upstream_disconnected",
            Self::IdleTimeout(_) => "upstream_timeout",
            Self::ShuttingDown => "server_shutting_down",
        }
    }
}

impl std::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upstream(msg) => write!(f, "upstream error: {msg}"),
            Self::Malformed(why) => write!(f, "upstream sent a malformed stream line: {why}"),
            Self::LineTooLong(limit) => {
                write!(f, "upstream sent a stream line longer than {limit} bytes")
            }
            Self::Disconnected(why) => write!(f, "upstream connection lost: {why}"),
            Self::IdleTimeout(after) => {
                write!(f, "upstream sent nothing for {} ms", after.as_millis())
            }
            Self::ShuttingDown => f.write_str(
                "the server is shutting down and its grace period for open streams is over",
            ),
        }
    }
}

/// Parses one `/api/chat` line, turning an `{"error":…}` line into a failure.
///
/// # Errors
/// [`StreamFailure::Malformed`] when the line is not a chat chunk (or a text field is not a
/// string); [`StreamFailure::Upstream`] for an error line.
pub fn parse_chunk(line: &[u8]) -> Result<ChatChunk<'_>, StreamFailure> {
    let chunk: ChatChunk<'_> =
        serde_json::from_slice(line).map_err(|e| StreamFailure::Malformed(e.to_string()))?;
    if let Some(error) = chunk.error {
        let text = decode_string(error).unwrap_or_else(|| error.get().to_owned());
        return Err(StreamFailure::Upstream(text));
    }
    if let Some(message) = &chunk.message {
        let fields = [("content", message.content), ("thinking", message.thinking)];
        for (name, value) in fields {
            if value.is_some_and(|v| !is_string(v)) {
                return Err(StreamFailure::Malformed(format!(
                    "message.{name} is not a string"
                )));
            }
        }
        for call in message.tool_calls.iter().flatten() {
            if !is_string(call.function.name) {
                return Err(StreamFailure::Malformed(
                    "tool_calls[].function.name is not a string".to_owned(),
                ));
            }
        }
    }
    Ok(chunk)
}

/// OpenAI's `finish_reason` for Ollama's `done_reason`: `length` stays; anything else is
/// `tool_calls` when a call was made, `stop` otherwise. Never a value outside OpenAI's set.
pub fn finish_reason(done_reason: Option<&str>, made_tool_calls: bool) -> &'static str {
    match done_reason {
        Some("length") => "length",
        _ if made_tool_calls => "tool_calls",
        _ => "stop",
    }
}
