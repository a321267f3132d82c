//! Ollama `/api/chat` NDJSON lines -> one OpenAI `chat.completion`, for `stream: false`
//! clients (the bridge always streams from Ollama).

use serde_json::value::RawValue;

use crate::config::ReasoningField;
use crate::ids;
use crate::ollama::types::decode_string;
use crate::openai::response::{
    AssistantMessage, ChatCompletion, Choice, FunctionCall, Logprobs, ToolCall,
};
use crate::openai::sse::SYSTEM_FINGERPRINT;
use crate::transcode::{FinalStats, StreamFailure, finish_reason, parse_chunk};

/// Collects a whole response.
#[derive(Debug, Default)]
pub struct ChatAggregate {
    content: String,
    thinking: String,
    tool_calls: Vec<ToolCall>,
    logprobs: Option<Vec<Box<RawValue>>>,
    end: Option<(&'static str, FinalStats)>,
    model: Option<String>,
    saw_output: bool,
}

impl ChatAggregate {
    /// An empty response; `logprobs` says whether to collect token log probabilities.
    pub fn new(logprobs: bool) -> Self {
        Self {
            logprobs: logprobs.then(Vec::new),
            ..Self::default()
        }
    }

    /// The model Ollama reported, once a line named it.
    pub fn upstream_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether any content, reasoning or tool call has arrived.
    pub fn saw_output(&self) -> bool {
        self.saw_output
    }

    /// Whether the `done` line has been seen.
    pub fn is_done(&self) -> bool {
        self.end.is_some()
    }

    /// Adds one NDJSON line.
    ///
    /// # Errors
    /// As `transcode::parse_chunk`: a malformed line or an `{"error":…}` line.
    pub fn on_line(&mut self, line: &[u8]) -> Result<(), StreamFailure> {
        if self.is_done() {
            return Ok(());
        }
        let chunk = parse_chunk(line)?;
        if self.model.is_none() {
            self.model = chunk.model.map(str::to_owned);
        }
        if let Some(message) = &chunk.message {
            for (field, buffer) in [
                (message.content, &mut self.content),
                (message.thinking, &mut self.thinking),
            ] {
                if let Some(text) = field.and_then(decode_string) {
                    self.saw_output |= !text.is_empty();
                    buffer.push_str(&text);
                }
            }
            for call in message.tool_calls.iter().flatten() {
                self.saw_output = true;
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
            self.end = Some((reason, FinalStats::of(&chunk)));
        }
        Ok(())
    }

    /// Ollama's final stats, once the `done` line arrived.
    pub fn stats(&self) -> Option<FinalStats> {
        self.end.map(|(_, stats)| stats)
    }

    /// The response, or `None` before the `done` line.
    pub fn finish(
        self,
        id: String,
        created: u64,
        model: String,
        reasoning: ReasoningField,
    ) -> Option<ChatCompletion> {
        let (finish_reason, stats) = self.end?;
        let usage = stats.usage();
        let thinking = (!self.thinking.is_empty()).then_some(self.thinking);
        let (reasoning_content, reasoning) = match reasoning {
            ReasoningField::ReasoningContent => (thinking, None),
            ReasoningField::Reasoning => (None, thinking),
            ReasoningField::Both => (thinking.clone(), thinking),
        };
        Some(ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: vec![Choice {
                index: 0,
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
            }],
            usage,
        })
    }
}
