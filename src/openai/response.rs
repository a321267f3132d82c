//! OpenAI non-streaming response bodies.
//!
//! Source: OpenAI API reference, "Chat > The chat completion object".

use serde::Serialize;
use serde_json::value::RawValue;

use crate::openai::sse::Usage;

/// `chat.completion`.
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model the client asked for.
    pub model: String,
    /// Always `fp_ollama`.
    pub system_fingerprint: &'static str,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Serialize)]
pub struct Choice {
    /// 0.
    pub index: u32,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// `{"content":[…],"refusal":null}` when `logprobs` was asked, else `null`.
    pub logprobs: Option<Logprobs>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: &'static str,
}

/// Token log probabilities: Ollama's entries (`token`, `logprob`, `bytes`, `top_logprobs`)
/// match OpenAI's and are passed through.
#[derive(Debug, Serialize)]
pub struct Logprobs {
    /// One entry per output token.
    pub content: Vec<Box<RawValue>>,
    /// Always `null`.
    pub refusal: Option<String>,
}

/// The `message` of a [`Choice`].
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text; `""` when there is none (also with tool calls).
    pub content: String,
    /// Reasoning text, under the configured name(s); absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning text, OpenRouter's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The calls made; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Always `null`.
    pub refusal: Option<String>,
}

/// A tool call of an [`AssistantMessage`].
#[derive(Debug, Serialize)]
pub struct ToolCall {
    /// `call_…`.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name and arguments.
    pub function: FunctionCall,
}

/// The function of a [`ToolCall`].
#[derive(Debug, Serialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments, a string holding a JSON object.
    pub arguments: String,
}
