//! Ollama `/api/chat` NDJSON lines -> OpenAI `chat.completion.chunk` SSE frames.
//!
//! A pure state machine for one choice: [`LineTranscoder::on_line`] takes one complete
//! NDJSON line and appends zero or more SSE frames to the output buffer. It does no I/O and
//! keeps no clock; `lanes` feeds it. Content, reasoning and tool-call names are copied as
//! raw JSON string literals from Ollama's line into the frame, never decoded.

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use crate::config::ReasoningField;
use crate::ids;
use crate::ollama::types::{ChatChunk, ChunkToolCall, is_empty_string, is_string};
use crate::openai::sse::{self, ChunkFrames, Usage};
use crate::transcode::{
    FinalStats, LineTranscoder, Step, StreamFailure, finish_reason, parse_chunk,
};

/// The state of one choice of a streamed chat completion.
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
    /// A choice written with `frames` (a `chat.completion.chunk` stream's, for this
    /// choice's index); `logprobs` passes Ollama's token log probabilities on.
    pub fn new(frames: ChunkFrames, logprobs: bool, reasoning: ReasoningField) -> Self {
        Self {
            frames,
            reasoning_keys: reasoning.keys(),
            logprobs,
            role_sent: false,
            tool_calls_sent: 0,
            ended: false,
            model: None,
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
        FinalStats::of(chunk)
    }
}

impl LineTranscoder for ChatStream {
    fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<Step, StreamFailure> {
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

    fn fail(&mut self, failure: &StreamFailure, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            sse::error_event(out, &failure.to_string(), failure.code());
        }
    }

    fn end_stream(&self, usage: Usage, out: &mut BytesMut) {
        self.frames.end_stream(out, usage);
    }

    fn is_ended(&self) -> bool {
        self.ended
    }

    fn upstream_model(&self) -> Option<&str> {
        self.model.as_deref()
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
