//! Pure conversions between the two wire formats: no I/O, no clocks.
//!
//! - [`request`]: OpenAI chat request -> Ollama `/api/chat` request.
//! - [`chat_stream`]: Ollama NDJSON lines -> OpenAI SSE chunk frames.
//! - [`framed`]: NDJSON framing + [`chat_stream`], from upstream reads to SSE bytes.
//! - [`chat_aggregate`]: Ollama NDJSON lines -> one OpenAI `chat.completion`.

pub mod chat_aggregate;
pub mod chat_stream;
pub mod framed;
pub mod request;

use std::time::Duration;

use crate::ollama::types::{ChatChunk, decode_string, is_string};
use crate::openai::sse::Usage;

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
}

impl StreamFailure {
    /// The `kind` label of `ollama_bridge_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "error",
            Self::Malformed(_) | Self::LineTooLong(_) => "malformed",
            Self::Disconnected(_) => "disconnected",
            Self::IdleTimeout(_) => "timeout",
        }
    }

    /// The `code` of the error event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "upstream_error",
            Self::Malformed(_) | Self::LineTooLong(_) => "upstream_malformed",
            Self::Disconnected(_) => "upstream_disconnected",
            Self::IdleTimeout(_) => "upstream_timeout",
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
