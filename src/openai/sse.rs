//! SSE frames of OpenAI's `chat.completion.chunk` and `text_completion` streams, written
//! straight into an output buffer.
//!
//! Source: OpenAI API reference, "Chat > The chat completion chunk object" and "Streaming";
//! every event is `data: <json>\n\n`, the last one `data: [DONE]\n\n`.
//!
//! The parts of a chunk that never change within a stream (`id`, `object`, `created`,
//! `model`, `system_fingerprint`) are rendered once in [`ChunkFrames::new`].

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use crate::error::{ErrorBody, ErrorObject};

/// The last event of a successful stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// An SSE comment that keeps idle connections open; clients ignore it.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// `system_fingerprint` of every response.
pub const SYSTEM_FINGERPRINT: &str = "fp_ollama";

/// Token counts of a response. Source: OpenAI "The chat completion object", `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Ollama's `prompt_eval_count`.
    pub prompt_tokens: u64,
    /// Ollama's `eval_count`.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Usage from Ollama's counts (absent counts are 0).
    pub fn new(prompt_eval_count: Option<u64>, eval_count: Option<u64>) -> Self {
        let prompt_tokens = prompt_eval_count.unwrap_or(0);
        let completion_tokens = eval_count.unwrap_or(0);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// The `object` of a streamed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkObject {
    /// `chat.completion.chunk`: choices carry a `delta`.
    ChatCompletionChunk,
    /// `text_completion`: choices carry a `text` (legacy completions).
    TextCompletion,
}

impl ChunkObject {
    fn name(self) -> &'static str {
        match self {
            Self::ChatCompletionChunk => "chat.completion.chunk",
            Self::TextCompletion => "text_completion",
        }
    }
}

/// Writes the chunks of one choice of a stream.
#[derive(Debug, Clone)]
pub struct ChunkFrames {
    /// `data: {"id":…,…,"choices":[`
    head: Vec<u8>,
    /// `head` then `{"index":N,`: the start of every chunk of this choice.
    choice_head: Vec<u8>,
    /// `]}\n\n`, or `],"usage":null}\n\n` with `include_usage`.
    tail: &'static [u8],
    include_usage: bool,
}

impl ChunkFrames {
    /// Renders the fixed part of every chunk of choice 0. `created` is in Unix seconds.
    pub fn new(
        object: ChunkObject,
        id: &str,
        created: u64,
        model: &str,
        include_usage: bool,
    ) -> Self {
        let mut head = Vec::with_capacity(160 + model.len());
        head.extend_from_slice(b"data: {\"id\":");
        push_json_str(&mut head, id);
        head.extend_from_slice(b",\"object\":\"");
        head.extend_from_slice(object.name().as_bytes());
        head.extend_from_slice(b"\",\"created\":");
        head.extend_from_slice(created.to_string().as_bytes());
        head.extend_from_slice(b",\"model\":");
        push_json_str(&mut head, model);
        head.extend_from_slice(b",\"system_fingerprint\":");
        push_json_str(&mut head, SYSTEM_FINGERPRINT);
        head.extend_from_slice(b",\"choices\":[");
        let tail: &'static [u8] = if include_usage {
            b"],\"usage\":null}\n\n"
        } else {
            b"]}\n\n"
        };
        Self {
            choice_head: Vec::new(),
            head,
            tail,
            include_usage,
        }
        .choice(0)
    }

    /// The same stream's frames for choice `index`.
    #[must_use]
    pub fn choice(mut self, index: u32) -> Self {
        self.choice_head.clone_from(&self.head);
        self.choice_head.extend_from_slice(b"{\"index\":");
        self.choice_head
            .extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        self.choice_head.push(b',');
        self
    }

    /// Starts a chat chunk with this choice, up to the opening `{` of its `delta`; the
    /// caller writes the delta's fields with a [`DeltaWriter`] and ends with
    /// [`Self::end_choice`].
    pub fn begin_choice<'o>(&self, out: &'o mut BytesMut) -> DeltaWriter<'o> {
        out.put_slice(&self.choice_head);
        out.put_slice(b"\"delta\":{");
        DeltaWriter { out, empty: true }
    }

    /// Closes the delta and the chat chunk. `logprobs` is Ollama's raw array for this
    /// chunk; `finish_reason` is one of OpenAI's values or `None` for `null`.
    pub fn end_choice(
        &self,
        out: &mut BytesMut,
        logprobs: Option<&RawValue>,
        finish_reason: Option<&str>,
    ) {
        out.put_slice(b"},\"logprobs\":");
        match logprobs {
            Some(content) => {
                out.put_slice(b"{\"content\":");
                out.put_slice(content.get().as_bytes());
                out.put_slice(b",\"refusal\":null}");
            }
            None => out.put_slice(b"null"),
        }
        self.end(out, finish_reason);
    }

    /// A whole `text_completion` chunk of this choice: `text` is a JSON string literal,
    /// `logprobs` a rendered completions logprobs object (or `None` for `null`).
    ///
    /// Source: OpenAI API reference, "Completions > The completion object".
    pub fn text(
        &self,
        out: &mut BytesMut,
        text: &str,
        logprobs: Option<&[u8]>,
        finish_reason: Option<&str>,
    ) {
        out.put_slice(&self.choice_head);
        out.put_slice(b"\"text\":");
        out.put_slice(text.as_bytes());
        out.put_slice(b",\"logprobs\":");
        out.put_slice(logprobs.unwrap_or(b"null"));
        self.end(out, finish_reason);
    }

    /// `,"finish_reason":…}` and the chunk's tail.
    fn end(&self, out: &mut BytesMut, finish_reason: Option<&str>) {
        out.put_slice(b",\"finish_reason\":");
        match finish_reason {
            Some(reason) => {
                out.put_u8(b'"');
                out.put_slice(reason.as_bytes());
                out.put_u8(b'"');
            }
            None => out.put_slice(b"null"),
        }
        out.put_u8(b'}');
        out.put_slice(self.tail);
    }

    /// The end of a successful stream: the `include_usage` chunk (`choices: []` and
    /// `usage`) when asked, then `[DONE]`.
    pub fn end_stream(&self, out: &mut BytesMut, usage: Usage) {
        if self.include_usage {
            out.put_slice(&self.head);
            let _ = write!(
                out,
                "],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n",
                usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
            );
        }
        out.put_slice(DONE);
    }
}

/// Writes the fields of one `delta` object, commas included.
#[derive(Debug)]
pub struct DeltaWriter<'o> {
    out: &'o mut BytesMut,
    empty: bool,
}

impl DeltaWriter<'_> {
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.put_u8(b',');
        }
        self.empty = false;
        self.out.put_u8(b'"');
        self.out.put_slice(key.as_bytes());
        self.out.put_slice(b"\":");
    }

    /// `"key":<raw>`, with `raw` already valid JSON (a string literal from Ollama).
    pub fn raw(&mut self, key: &str, raw: &str) {
        self.key(key);
        self.out.put_slice(raw.as_bytes());
    }

    /// The buffer, to write a value after [`Self::raw`]-less keys (for tool calls).
    pub fn open(&mut self, key: &str) -> &mut BytesMut {
        self.key(key);
        self.out
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// Appends `s` as a JSON string literal to a `BytesMut`.
pub fn put_json_str(out: &mut BytesMut, s: &str) {
    let _ = serde_json::to_writer(out.writer(), s);
}

/// A mid-stream error event: `data: {"error":{"message","type":"api_error","param":null,"code"}}`.
pub fn error_event(out: &mut BytesMut, message: &str, code: &str) {
    let body = ErrorBody {
        error: ErrorObject {
            message,
            kind: "api_error",
            param: None,
            code: Some(code),
        },
    };
    out.put_slice(b"data: ");
    let _ = serde_json::to_writer(out.writer(), &body);
    out.put_slice(b"\n\n");
}
