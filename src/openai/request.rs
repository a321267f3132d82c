//! OpenAI request bodies.
//!
//! Source: OpenAI API reference, "Chat > Create chat completion" (`POST /v1/chat/completions`).
//! Fields not listed here are accepted and ignored; a listed field of the wrong type is a 400
//! whose `param` names it.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;

/// `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// Model name as the client knows it.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Stream SSE chunks instead of one response. Default `false`.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{"include_usage": bool}`.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Deprecated limit on generated tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Limit on generated tokens, reasoning included; wins over `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Up to 4 stop sequences.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// -2 to 2.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// -2 to 2.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// `{"type":"text"|"json_object"|"json_schema", "json_schema":{…}}`.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Function tools, kept raw to pass on to Ollama unchanged (each is read as a [`Tool`]).
    #[serde(default)]
    pub tools: Option<Vec<Box<RawValue>>>,
    /// `none`, `auto`, `required` or `{"type":"function","function":{"name":…}}`.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// `none`, `minimal`, `low`, `medium`, `high`.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// Return log probabilities of output tokens.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Alternatives per token, 0 to 20; needs `logprobs`.
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// Number of choices; only 1 is served.
    #[serde(default)]
    pub n: Option<u32>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `choices: []` and `usage`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl StreamOptions {
    /// Whether `options` ask for the usage chunk (default no).
    pub fn include_usage(options: Option<&Self>) -> bool {
        options.and_then(|o| o.include_usage).unwrap_or(false)
    }
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// One message of `messages`.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// Text or content parts; may be null for an assistant message with `tool_calls`.
    #[serde(default)]
    pub content: Option<Content>,
    /// Tool calls an assistant made.
    #[serde(default)]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// For `tool` messages: the call this answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Optional participant name (for `tool` messages, some clients put the function here).
    #[serde(default)]
    pub name: Option<String>,
    /// Earlier reasoning of an assistant message, as DeepSeek-style clients send it back.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// The same, under OpenRouter's name.
    #[serde(default)]
    pub reasoning: Option<String>,
}

/// `role` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// System prompt.
    System,
    /// Newer name for system instructions; sent to Ollama as `system`.
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// Message content.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or an array of content parts")]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// `{"type":"text","text":…}`.
    Text {
        /// The text.
        text: String,
    },
    /// `{"type":"image_url","image_url":{"url":…}}` (or the URL as a bare string).
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
}

/// The image of an `image_url` part.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "{\"url\": \"data:…\"} or a URL string")]
pub enum ImageUrl {
    /// `{"url": …, "detail": …}`.
    Object {
        /// A `data:` URL (http URLs are refused).
        url: String,
    },
    /// A bare URL string.
    Url(String),
}

impl ImageUrl {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            Self::Object { url } | Self::Url(url) => url,
        }
    }
}

/// A tool call in an assistant message of the history.
#[derive(Debug, Deserialize)]
pub struct MessageToolCall {
    /// The call's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The function called.
    pub function: MessageFunctionCall,
}

/// The function of a [`MessageToolCall`].
#[derive(Debug, Deserialize)]
pub struct MessageFunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
}

/// A tool definition: `{"type":"function","function":{"name",…}}`.
#[derive(Debug, Deserialize)]
pub struct Tool {
    /// Only `function` is served.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's definition.
    pub function: ToolFunction,
}

/// A function definition; only the name is read, the rest passes through.
#[derive(Debug, Deserialize)]
pub struct ToolFunction {
    /// Function name.
    pub name: String,
}

/// `tool_choice`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}"
)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type":"function","function":{"name":…}}`.
    Named {
        /// The function to call.
        function: ToolFunction,
    },
}

/// `response_format`.
#[derive(Debug, Deserialize)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{"name", "schema", "strict"}`.
    #[serde(default)]
    pub json_schema: Option<JsonSchema>,
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct JsonSchema {
    /// The JSON schema the output must follow.
    #[serde(default)]
    pub schema: Option<Box<RawValue>>,
}

/// Parses a JSON request body, naming the field at fault on error.
///
/// # Errors
/// [`Error::InvalidRequest`]: for malformed JSON with no `param`; for a missing field or a
/// wrong type with `param` set to the field's path, e.g. `messages[1].content`.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let param = match missing_field(&message) {
                    Some(field) if path == "." => field.to_owned(),
                    Some(field) => format!("{path}.{field}"),
                    None => path,
                };
                Error::invalid(format!("invalid value for '{param}': {message}"), param)
            }
            _ => Error::InvalidRequest {
                message: format!("request body is not valid JSON: {inner}"),
                param: None,
            },
        }
    })?;
    de.end().map_err(|e| Error::InvalidRequest {
        message: format!("request body is not valid JSON: {e}"),
        param: None,
    })?;
    Ok(value)
}

/// The field name of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(field, _)| field)
}
