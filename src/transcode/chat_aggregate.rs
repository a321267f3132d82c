//! Ollama `/api/chat` NDJSON lines -> one choice of an OpenAI `chat.completion`, for
//! `stream: false` clients (the bridge always streams from Ollama).

use bytes::BytesMut;
use serde_json::value::RawValue;

use crate::config::ReasoningField;
use crate::ids;
use crate::ollama::types::decode_string;
use crate::openai::response::{AssistantMessage, Choice, FunctionCall, Logprobs, ToolCall};
use crate::openai::sse::Usage;
use crate::transcode::{
    FinalStats, LineTranscoder, Step, StreamFailure, finish_reason, parse_chunk,
};

/// Collects one whole choice.
#[derive(Debug, Default)]
pub struct ChatAggregate {
    content: String,
    thinking: String,
    tool_calls: Vec<ToolCall>,
    logprobs: Option<Vec<Box<RawValue>>>,
    finish_reason: Option<&'static str>,
    model: Option<String>,
    failed: bool,
}

impl ChatAggregate {
    /// An empty response; `logprobs` says whether to collect token log probabilities.
    pub fn new(logprobs: bool) -> Self {
        Self {
            logprobs: logprobs.then(Vec::new),
            ..Self::default()
        }
    }

    /// Choice `index` of the response, or `None` before the `done` line.
    pub fn into_choice(self, index: u32, reasoning: ReasoningField) -> Option<Choice> {
        let finish_reason = self.finish_reason?;
        let thinking = (!self.thinking.is_empty()).then_some(self.thinking);
        let (reasoning_content, reasoning) = match reasoning {
            ReasoningField::ReasoningContent => (thinking, None),
            ReasoningField::Reasoning => (None, thinking),
            ReasoningField::Both => (thinking.clone(), thinking),
        };
        Some(Choice {
            index,
            message: AssistantMessage {
                role: "assistant",
                content: self.content,
                reasoning_content,
                reasoning,
                tool_calls: self.tool_calls,
                refusal: None,
            },
            logprobs: self.logprobs.map(|content| Logprobs {
                content,
                refusal: None,
            }),
            finish_reason,
        })
    }
}

impl LineTranscoder for ChatAggregate {
    /// Collects one line; writes nothing.
    fn on_line(&mut self, line: &[u8], _out: &mut BytesMut) -> Result<Step, StreamFailure> {
        if self.is_ended() {
            return Ok(Step::Quiet);
        }
        let chunk = parse_chunk(line)?;
        if self.model.is_none() {
            self.model = chunk.model.map(str::to_owned);
        }
        let mut step = Step::Quiet;
        if let Some(message) = &chunk.message {
            for (field, buffer) in [
                (message.content, &mut self.content),
                (message.thinking, &mut self.thinking),
            ] {
                if let Some(text) = field.and_then(decode_string) {
                    if !text.is_empty() {
                        step = Step::Delta;
                    }
                    buffer.push_str(&text);
                }
            }
            for call in message.tool_calls.iter().flatten() {
                step = Step::Delta;
                let arguments = match decode_string(call.function.arguments) {
                    Some(text) => text,
                    None => call.function.arguments.get().to_owned(),
                };
                self.tool_calls.push(ToolCall {
                    id: call
                        .id
                        .and_then(decode_string)
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(ids::tool_call_id),
                    kind: "function",
                    function: FunctionCall {
                        name: decode_string(call.function.name).unwrap_or_default(),
                        arguments,
                    },
                });
            }
        }
        if let (Some(all), Some(raw)) = (self.logprobs.as_mut(), chunk.logprobs) {
            let entries: Vec<Box<RawValue>> = serde_json::from_str(raw.get())
                .map_err(|e| StreamFailure::Malformed(format!("logprobs: {e}")))?;
            all.extend(entries);
        }
        if chunk.done {
            let reason = finish_reason(chunk.done_reason, !self.tool_calls.is_empty());
            let stats = FinalStats::of(&chunk);
            self.finish_reason = Some(reason);
            return Ok(Step::Done(stats));
        }
        Ok(step)
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
