//! Ollama `/api/generate` NDJSON lines -> one choice of an OpenAI `text_completion`, for
//! `stream: false` clients (the bridge always streams from Ollama).

use bytes::BytesMut;

use crate::ollama::generate::parse_generate_chunk;
use crate::ollama::types::decode_string;
use crate::openai::completions::{CompletionChoice, CompletionLogprobs};
use crate::openai::sse::Usage;
use crate::transcode::generate_stream::push_logprobs;
use crate::transcode::{LineTranscoder, Step, StreamFailure, finish_reason};

/// Collects one whole choice.
#[derive(Debug, Default)]
pub struct GenerateAggregate {
    text: String,
    logprobs: Option<(CompletionLogprobs, usize)>,
    finish_reason: Option<&'static str>,
    model: Option<String>,
    failed: bool,
}

impl GenerateAggregate {
    /// An empty choice: its text starts with `echo` (the prompt) when given; `logprobs`
    /// says whether to collect token log probabilities.
    pub fn new(echo: Option<&str>, logprobs: bool) -> Self {
        let text = echo.unwrap_or_default().to_owned();
        let offset = text.chars().count();
        Self {
            text,
            logprobs: logprobs.then(|| (CompletionLogprobs::default(), offset)),
            ..Self::default()
        }
    }

    /// Choice `index` of the response, or `None` before the `done` line.
    pub fn into_choice(self, index: u32) -> Option<CompletionChoice> {
        Some(CompletionChoice {
            finish_reason: self.finish_reason?,
            text: self.text,
            index,
            logprobs: self.logprobs.map(|(logprobs, _)| logprobs),
        })
    }
}

impl LineTranscoder for GenerateAggregate {
    /// Collects one line; writes nothing.
    fn on_line(&mut self, line: &[u8], _out: &mut BytesMut) -> Result<Step, StreamFailure> {
        if self.is_ended() {
            return Ok(Step::Quiet);
        }
        let chunk = parse_generate_chunk(line)?;
        if self.model.is_none() {
            self.model = chunk.model.map(str::to_owned);
        }
        if let (Some((logprobs, offset)), Some(raw)) = (self.logprobs.as_mut(), chunk.logprobs) {
            push_logprobs(raw, offset, logprobs)?;
        }
        let text = chunk.response.and_then(decode_string).unwrap_or_default();
        self.text.push_str(&text);
        if chunk.done {
            self.finish_reason = Some(finish_reason(chunk.done_reason, false));
            return Ok(Step::Done(chunk.stats()));
        }
        Ok(if text.is_empty() {
            Step::Quiet
        } else {
            Step::Delta
        })
    }

    fn fail(&mut self, _failure: &StreamFailure, _out: &mut BytesMut) {
        self.failed = true;
    }

    fn end_stream(&self, _usage: Usage, _out: &mut BytesMut) {}

    fn is_ended(&self) -> bool {
        self.failed || self.finish_reason.is_some()
    }

    fn upstream_model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}
