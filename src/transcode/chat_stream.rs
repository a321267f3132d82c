//! Ollama `/api/chat` NDJSON lines -> OpenAI `chat.completion.chunk` SSE frames.
//!
//! A pure state machine: [`ChatStream::on_line`] takes one complete NDJSON line and appends
//! zero or more SSE frames to the output buffer. It does no I/O and keeps no clock; the
//! stream adapter in `routes::chat` feeds it. Content, reasoning and tool-call names are
//! copied as raw JSON string literals from Ollama's line into the frame, never decoded.

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use crate::config::ReasoningField;
use crate::ids;
use crate::ollama::types::{ChatChunk, ChunkToolCall, is_empty_string, is_string};
use crate::openai::sse::{self, ChunkFrames};
use crate::transcode::{FinalStats, StreamFailure, finish_reason, parse_chunk};

/// What a line did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing visible was written (an empty chunk).
    Quiet,
    /// At least one content, reasoning or tool-call delta was written.
    Delta,
    /// The last line: the finish chunk, the usage chunk if asked, and `[DONE]` were written.
    Done(FinalStats),
}

/// The per-stream state of the chat transcoder.
#[derive(Debug)]
pub struct ChatStream {
    frames: ChunkFrames,
    reasoning_keys: &'static [&'static str],
    logprobs: bool,
    role_sent: bool,
    tool_calls_sent: u32,
    ended: bool,
    /// The model Ollama reported on its first line.
    model: Option<String>,
}

impl ChatStream {
    /// A stream for response `id` (`chatcmpl-…`), created at `created` (Unix seconds),
    /// reporting `model`.
    pub fn new(
        id: &str,
        created: u64,
        model: &str,
        include_usage: bool,
        logprobs: bool,
        reasoning: ReasoningField,
    ) -> Self {
        Self {
            frames: ChunkFrames::new(id, created, model, include_usage),
            reasoning_keys: reasoning.keys(),
            logprobs,
            role_sent: false,
            tool_calls_sent: 0,
            ended: false,
            model: None,
        }
    }

    /// The model Ollama reported, once a line named it.
    pub fn upstream_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether the stream has ended (finished or failed); later input is ignored.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Transcodes one NDJSON line (without its `\n`), appending frames to `out`.
    ///
    /// # Errors
    /// [`StreamFailure::Malformed`] for a line that is not a chat chunk,
    /// [`StreamFailure::Upstream`] for an `{"error":…}` line. Nothing is written for them;
    /// call [`ChatStream::fail`] to write the error event.
    pub fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<Step, StreamFailure> {
        if self.ended {
            return Ok(Step::Quiet);
        }
        let chunk = parse_chunk(line)?;
        if self.model.is_none() {
            self.model = chunk.model.map(str::to_owned);
        }
        let mut step = Step::Quiet;
        if let Some(message) = &chunk.message {
            let content = message.content.filter(|c| !is_empty_string(c));
            let thinking = message.thinking.filter(|t| !is_empty_string(t));
            if content.is_some() || thinking.is_some() {
                self.text_delta(out, thinking, content, self.chunk_logprobs(&chunk));
                step = Step::Delta;
            }
            for call in message.tool_calls.iter().flatten() {
                self.tool_call(out, call);
                step = Step::Delta;
            }
        }
        if chunk.done {
            return Ok(Step::Done(self.finish(out, &chunk)));
        }
        Ok(step)
    }

    /// Writes the error event for `failure` and ends the stream. What was sent stays sent.
    pub fn fail(&mut self, failure: &StreamFailure, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            sse::error_event(out, &failure.to_string(), failure.code());
        }
    }

    fn chunk_logprobs<'a>(&self, chunk: &ChatChunk<'a>) -> Option<&'a RawValue> {
        chunk.logprobs.filter(|_| self.logprobs)
    }

    fn role(&mut self, delta: &mut sse::DeltaWriter<'_>) {
        if !self.role_sent {
            self.role_sent = true;
            delta.raw("role", "\"assistant\"");
        }
    }

    fn text_delta(
        &mut self,
        out: &mut BytesMut,
        thinking: Option<&RawValue>,
        content: Option<&RawValue>,
        logprobs: Option<&RawValue>,
    ) {
        let mut delta = self.frames.begin_choice(out);
        self.role(&mut delta);
        if let Some(thinking) = thinking {
            for key in self.reasoning_keys {
                delta.raw(key, thinking.get());
            }
        }
        if let Some(content) = content {
            delta.raw("content", content.get());
        }
        self.frames.end_choice(out, logprobs, None);
    }

    /// A header fragment (index, id, type, name, empty arguments), then one arguments fragment.
    fn tool_call(&mut self, out: &mut BytesMut, call: &ChunkToolCall<'_>) {
        let index = self.tool_calls_sent;
        self.tool_calls_sent += 1;
        let mut delta = self.frames.begin_choice(out);
        self.role(&mut delta);
        let buf = delta.open("tool_calls");
        buf.put_slice(b"[{\"index\":");
        buf.put_slice(itoa::Buffer::new().format(index).as_bytes());
        buf.put_slice(b",\"id\":");
        match call.id.filter(|id| is_string(id) && !is_empty_string(id)) {
            Some(id) => buf.put_slice(id.get().as_bytes()),
            None => sse::put_json_str(buf, &ids::tool_call_id()),
        }
        buf.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        buf.put_slice(call.function.name.get().as_bytes());
        buf.put_slice(b",\"arguments\":\"\"}}]");
        self.frames.end_choice(out, None, None);

        let mut delta = self.frames.begin_choice(out);
        let buf = delta.open("tool_calls");
        buf.put_slice(b"[{\"index\":");
        buf.put_slice(itoa::Buffer::new().format(index).as_bytes());
        buf.put_slice(b",\"function\":{\"arguments\":");
        put_arguments(buf, call.function.arguments);
        buf.put_slice(b"}}]");
        self.frames.end_choice(out, None, None);
    }

    fn finish(&mut self, out: &mut BytesMut, chunk: &ChatChunk<'_>) -> FinalStats {
        self.ended = true;
        if !self.role_sent {
            let mut delta = self.frames.begin_choice(out);
            self.role(&mut delta);
            delta.raw("content", "\"\"");
            self.frames.end_choice(out, None, None);
        }
        let reason = finish_reason(chunk.done_reason, self.tool_calls_sent > 0);
        self.frames.begin_choice(out);
        self.frames.end_choice(out, None, Some(reason));
        let stats = FinalStats::of(chunk);
        if self.frames.include_usage() {
            self.frames.usage(out, stats.usage());
        }
        out.put_slice(sse::DONE);
        stats
    }
}

/// OpenAI wants `arguments` as a string holding JSON; Ollama sends an object. A string from
/// upstream is passed as it is.
fn put_arguments(out: &mut BytesMut, arguments: &RawValue) {
    if is_string(arguments) {
        out.put_slice(arguments.get().as_bytes());
    } else {
        sse::put_json_str(out, arguments.get());
    }
}

#[cfg(test)]
#[path = "chat_stream_tests.rs"]
mod tests;
