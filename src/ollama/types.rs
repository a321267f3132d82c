//! Ollama's native wire types, as far as the bridge reads or writes them.
//!
//! Source: Ollama `docs/api.md`, "Generate a chat completion" (`POST /api/chat`): request
//! fields `model`, `messages` (`role`, `content`, `thinking`, `images`, `tool_calls`,
//! `tool_name`), `tools`, `format`, `options`, `stream`, `think`, `logprobs`, `top_logprobs`;
//! response chunk fields `model`, `message`, `done`, `done_reason`, `prompt_eval_count`,
//! `eval_count` and the `*_duration` stats (nanoseconds).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// One line of an `/api/chat` stream, borrowed from the line's bytes.
///
/// String fields are kept as raw JSON (`&RawValue`, quotes and escapes included) so they can
/// be copied into OpenAI frames without decoding and re-encoding.
#[derive(Debug, Deserialize)]
pub struct ChatChunk<'a> {
    /// The model that answered, as Ollama names it.
    #[serde(borrow, default)]
    pub model: Option<&'a str>,
    /// The assistant message fragment.
    #[serde(borrow, default)]
    pub message: Option<ChunkMessage<'a>>,
    /// `true` on the last line, which carries the stats.
    #[serde(default)]
    pub done: bool,
    /// Why generation ended: `stop`, `length`, `load`, `unload`; only when `done`.
    #[serde(borrow, default)]
    pub done_reason: Option<&'a str>,
    /// Prompt tokens evaluated.
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    /// Tokens generated.
    #[serde(default)]
    pub eval_count: Option<u64>,
    /// Time spent loading the model, in nanoseconds.
    #[serde(default)]
    pub load_duration: Option<u64>,
    /// Time spent evaluating the prompt, in nanoseconds.
    #[serde(default)]
    pub prompt_eval_duration: Option<u64>,
    /// Time spent generating, in nanoseconds.
    #[serde(default)]
    pub eval_duration: Option<u64>,
    /// Token log probabilities for this chunk: `[{token, logprob, bytes, top_logprobs}]`,
    /// present when the request set `logprobs`.
    #[serde(borrow, default)]
    pub logprobs: Option<&'a RawValue>,
    /// An error reported mid-stream: `{"error":"…"}` (any JSON value is accepted).
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

/// The `message` of a chunk.
#[derive(Debug, Deserialize)]
pub struct ChunkMessage<'a> {
    /// Content text, a raw JSON string literal.
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
    /// Reasoning text, a raw JSON string literal.
    #[serde(borrow, default)]
    pub thinking: Option<&'a RawValue>,
    /// Complete tool calls; Ollama sends each call whole, in one chunk. Up to two are kept
    /// inline, so a tool-call chunk needs no heap allocation.
    #[serde(borrow, default)]
    pub tool_calls: Option<SmallVec<[ChunkToolCall<'a>; 2]>>,
}

/// One tool call in a chunk.
#[derive(Debug, Deserialize)]
pub struct ChunkToolCall<'a> {
    /// `call_…` id, in Ollama 0.12 and later; absent in older versions.
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    /// The function called.
    #[serde(borrow)]
    pub function: ChunkFunction<'a>,
}

/// The function of a tool call.
#[derive(Debug, Deserialize)]
pub struct ChunkFunction<'a> {
    /// Function name, a raw JSON string literal.
    #[serde(borrow)]
    pub name: &'a RawValue,
    /// Arguments: a JSON object (or, from some servers, a string holding JSON).
    #[serde(borrow)]
    pub arguments: &'a RawValue,
}

/// Whether a raw JSON value is a string literal.
pub fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

/// Whether a raw JSON string literal is `""`.
pub fn is_empty_string(raw: &RawValue) -> bool {
    raw.get() == "\"\""
}

/// The text of a raw JSON string literal, decoded.
pub fn decode_string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// The body of `POST /api/chat`.
#[derive(Debug, Serialize)]
pub struct ChatRequest {
    /// Model name, e.g. `llama3.2:3b`.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Always `true`: the bridge streams from Ollama also for non-streaming clients.
    pub stream: bool,
    /// Tool definitions, passed through (same shape as OpenAI's `tools`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Box<RawValue>>,
    /// `"json"` or a JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Box<RawValue>>,
    /// Sampling options.
    pub options: Options,
    /// `true`/`false`, or `"low"`/`"medium"`/`"high"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Return log probabilities of output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many alternatives per token (0 to 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

/// A message of the conversation.
#[derive(Debug, Default, Serialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: &'static str,
    /// Text.
    pub content: String,
    /// Earlier reasoning of an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Base64 images (no data-URL prefix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Tool calls of an earlier assistant message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the function whose result this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// For `tool` messages: the id of the call answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A tool call in a request's history.
#[derive(Debug, Serialize)]
pub struct ToolCall {
    /// The function.
    pub function: ToolCallFunction,
}

/// The function of a [`ToolCall`].
#[derive(Debug, Serialize)]
pub struct ToolCallFunction {
    /// Name.
    pub name: String,
    /// Arguments as a JSON object.
    pub arguments: Box<RawValue>,
}

/// Ollama `options` (Modelfile parameters); only those given are sent.
#[derive(Debug, Default, Serialize)]
pub struct Options {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Maximum tokens to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<u32>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Random seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
}

/// Ollama's `think`: a switch, or an effort level for models that take one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Think {
    /// On or off.
    Enabled(bool),
    /// `low`, `medium` or `high`.
    Level(&'static str),
}

/// `GET /api/tags`: the models Ollama has. Only what the bridge reads.
///
/// Source: Ollama `docs/api.md`, "List Local Models".
#[derive(Debug, Deserialize)]
pub struct TagsResponse {
    /// Every local model.
    #[serde(default)]
    pub models: Vec<TagModel>,
}

/// One entry of [`TagsResponse`].
#[derive(Debug, Deserialize)]
pub struct TagModel {
    /// `name:tag`, e.g. `llama3.2:3b`.
    pub name: String,
    /// The same as `name` in current Ollama; absent in older ones.
    #[serde(default)]
    pub model: Option<String>,
    /// When it was pulled or created, RFC 3339.
    #[serde(default)]
    pub modified_at: Option<String>,
}

/// `POST /api/show`: one model's details. Only what the bridge reads.
///
/// Source: Ollama `docs/api.md`, "Show Model Information".
#[derive(Debug, Deserialize)]
pub struct ShowResponse {
    /// When it was pulled or created, RFC 3339.
    #[serde(default)]
    pub modified_at: Option<String>,
}

/// The namespace of an Ollama model name, `[host/][namespace/]model[:tag]`: `library` when
/// there is none, as Ollama's own `/v1/models` reports it in `owned_by`.
pub fn namespace(name: &str) -> &str {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.len() {
        0 | 1 => "library",
        n => parts[n - 2],
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time (Ollama's `modified_at`); 0 when it
/// cannot be read.
pub fn unix_seconds(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, time::OffsetDateTime::unix_timestamp)
}

/// `POST /api/embed` body.
///
/// Source: Ollama `docs/api.md`, "Generate Embeddings".
#[derive(Debug, Serialize)]
pub struct EmbedRequest<'a> {
    /// Model name.
    pub model: &'a str,
    /// The texts, one embedding each.
    pub input: &'a [String],
    /// Output length, for models that can shorten their embeddings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
}

/// `POST /api/embed` answer: the vectors stay raw JSON (passed on unchanged as floats).
#[derive(Debug, Deserialize)]
pub struct EmbedResponse<'a> {
    /// The model that answered.
    #[serde(default, borrow)]
    pub model: Option<&'a str>,
    /// One JSON array of numbers per input.
    #[serde(borrow)]
    pub embeddings: Vec<&'a RawValue>,
    /// Tokens of all inputs.
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    /// Time to load the model, nanoseconds.
    #[serde(default)]
    pub load_duration: Option<u64>,
}
