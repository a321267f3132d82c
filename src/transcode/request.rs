//! OpenAI chat request -> Ollama `/api/chat` request.
//!
//! Sources: OpenAI API reference, "Create chat completion"; Ollama `docs/api.md`,
//! "Generate a chat completion" and "Valid Parameters and Values" (`options`).

use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::error::Error;
use crate::ollama::types::{self as ollama, Think};
use crate::openai::request::{
    ChatCompletionRequest, ChatMessage, Content, ContentPart, ResponseFormat, Role, Stop,
    StreamOptions, Tool, ToolChoice,
};

/// What the response side needs to know about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSettings {
    /// The model name the client asked for, echoed in responses.
    pub model: String,
    /// SSE stream or one JSON response.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `logprobs`: pass Ollama's token log probabilities back.
    pub logprobs: bool,
    /// Choices to generate (`n`), each its own Ollama request.
    pub n: u32,
}

/// Maps a parsed OpenAI request to Ollama's, and the settings of the response.
///
/// # Errors
/// [`Error::InvalidRequest`] naming the field, for: `n` outside 1 to `max_choices`; a
/// sampling parameter out of OpenAI's range; an `image_url` that is not a base64 `data:` URL; assistant `tool_calls` whose `arguments` is not a JSON object; a tool
/// that is not a function or a named `tool_choice` that names no tool; an unknown
/// `tool_choice`, `response_format.type` or `reasoning_effort`.
pub fn map_chat_request(
    req: ChatCompletionRequest,
    max_choices: u32,
) -> Result<(ollama::ChatRequest, ResponseSettings), Error> {
    let n = choices(req.n, 1, max_choices)?;
    let sampling = Sampling {
        temperature: req.temperature,
        top_p: req.top_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
    };
    sampling.check()?;
    if req.top_logprobs.is_some_and(|k| k > 20) {
        return Err(Error::invalid(
            "top_logprobs must be between 0 and 20",
            "top_logprobs",
        ));
    }
    let settings = ResponseSettings {
        model: req.model.clone(),
        stream: req.stream.unwrap_or(false),
        include_usage: StreamOptions::include_usage(req.stream_options.as_ref()),
        logprobs: req.logprobs.unwrap_or(false),
        n,
    };
    let options = sampling.options(
        req.max_completion_tokens.or(req.max_tokens),
        stop_sequences(req.stop)?,
        req.seed,
    );
    let ollama_request = ollama::ChatRequest {
        messages: map_messages(&req.messages)?,
        tools: select_tools(req.tools.unwrap_or_default(), req.tool_choice.as_ref())?,
        format: map_format(req.response_format)?,
        think: map_effort(req.reasoning_effort.as_deref())?,
        logprobs: req.logprobs,
        top_logprobs: req.top_logprobs,
        model: req.model,
        stream: true,
        options,
    };
    Ok((ollama_request, settings))
}

/// The number of choices asked for by `n` for each of `prompts` prompts.
///
/// # Errors
/// A 400 naming `n` when it is 0 or the choices would be more than `max_choices`.
pub fn choices(n: Option<u32>, prompts: usize, max_choices: u32) -> Result<u32, Error> {
    let n = n.unwrap_or(1);
    let total = u64::from(n) * prompts as u64;
    if n == 0 || total > u64::from(max_choices) {
        let message = if prompts > 1 {
            format!(
                "n times the number of prompts must be between 1 and {max_choices}; \
                 got {n} x {prompts}"
            )
        } else {
            format!("n must be between 1 and {max_choices}; got {n}")
        };
        return Err(Error::invalid(message, "n"));
    }
    Ok(n)
}

/// The sampling parameters both endpoints share, with OpenAI's ranges.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// 0 to 2.
    pub temperature: Option<f64>,
    /// 0 to 1.
    pub top_p: Option<f64>,
    /// -2 to 2.
    pub frequency_penalty: Option<f64>,
    /// -2 to 2.
    pub presence_penalty: Option<f64>,
}

impl Sampling {
    /// # Errors
    /// A 400 naming the first parameter outside its range.
    pub fn check(&self) -> Result<(), Error> {
        let ranges = [
            ("temperature", self.temperature, 0.0, 2.0),
            ("top_p", self.top_p, 0.0, 1.0),
            ("frequency_penalty", self.frequency_penalty, -2.0, 2.0),
            ("presence_penalty", self.presence_penalty, -2.0, 2.0),
        ];
        for (name, value, low, high) in ranges {
            if value.is_some_and(|v| !(low..=high).contains(&v)) {
                return Err(Error::invalid(
                    format!("{name} must be between {low} and {high}"),
                    name,
                ));
            }
        }
        Ok(())
    }

    /// Ollama's `options` for these and the rest.
    pub fn options(
        self,
        num_predict: Option<u32>,
        stop: Vec<String>,
        seed: Option<i64>,
    ) -> ollama::Options {
        ollama::Options {
            temperature: self.temperature,
            top_p: self.top_p,
            num_predict,
            stop,
            seed,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
        }
    }
}

/// `stop` as a list.
///
/// # Errors
/// A 400 naming `stop` for more than 4 sequences, as OpenAI answers.
pub fn stop_sequences(stop: Option<Stop>) -> Result<Vec<String>, Error> {
    let stop = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(Error::invalid("stop takes at most 4 sequences", "stop"));
    }
    Ok(stop)
}

/// The seed of choice `choice`: the request's seed plus the choice number, so `n` choices
/// with a seed are reproducible and still differ.
pub fn choice_seed(seed: Option<i64>, choice: u32) -> Option<i64> {
    seed.map(|s| s.wrapping_add(i64::from(choice)))
}

fn map_messages(messages: &[ChatMessage]) -> Result<Vec<ollama::Message>, Error> {
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, msg) in messages.iter().enumerate() {
        let mut m = ollama::Message {
            role: match msg.role {
                Role::System | Role::Developer => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            },
            thinking: msg
                .reasoning_content
                .clone()
                .or_else(|| msg.reasoning.clone()),
            ..Default::default()
        };
        match &msg.content {
            None => {}
            Some(Content::Text(text)) => m.content.clone_from(text),
            Some(Content::Parts(parts)) => map_parts(parts, i, &mut m)?,
        }
        for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
            let arguments = parse_arguments(&call.function.arguments).ok_or_else(|| {
                Error::invalid(
                    "tool call arguments must be a JSON object encoded as a string",
                    format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?;
            if let Some(id) = &call.id {
                call_names.insert(id, &call.function.name);
            }
            m.tool_calls.push(ollama::ToolCall {
                function: ollama::ToolCallFunction {
                    name: call.function.name.clone(),
                    arguments,
                },
            });
        }
        if msg.role == Role::Tool {
            m.tool_call_id.clone_from(&msg.tool_call_id);
            m.tool_name = msg
                .tool_call_id
                .as_deref()
                .and_then(|id| call_names.get(id))
                .map(|name| (*name).to_owned())
                .or_else(|| msg.name.clone());
        }
        out.push(m);
    }
    Ok(out)
}

/// Text parts are joined with `\n`; images become base64 strings in `images`.
fn map_parts(parts: &[ContentPart], i: usize, m: &mut ollama::Message) -> Result<(), Error> {
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => {
                if !m.content.is_empty() {
                    m.content.push('\n');
                }
                m.content.push_str(text);
            }
            ContentPart::ImageUrl { image_url } => {
                let param = || format!("messages[{i}].content[{j}].image_url");
                let data =
                    image_data(image_url.url()).map_err(|why| Error::invalid(why, param()))?;
                m.images.push(data.to_owned());
            }
        }
    }
    Ok(())
}

/// The base64 payload of a `data:[<mime>];base64,<data>` URL.
fn image_data(url: &str) -> Result<&str, &'static str> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(
            "only base64 data URLs (data:image/...;base64,...) are accepted for images; \
                    http(s) image URLs are not fetched",
        );
    };
    match rest.split_once(',') {
        Some((meta, data)) if meta.ends_with(";base64") && !data.is_empty() => Ok(data),
        _ => Err("image data URL must be base64 encoded (data:image/...;base64,...)"),
    }
}

/// Parses an arguments string into a JSON object; `None` if it is not one.
fn parse_arguments(arguments: &str) -> Option<Box<RawValue>> {
    let raw: Box<RawValue> = serde_json::from_str(arguments.trim()).ok()?;
    raw.get().starts_with('{').then_some(raw)
}

fn select_tools(
    tools: Vec<Box<RawValue>>,
    choice: Option<&ToolChoice>,
) -> Result<Vec<Box<RawValue>>, Error> {
    let mut names = Vec::with_capacity(tools.len());
    for (i, raw) in tools.iter().enumerate() {
        let tool: Tool = serde_json::from_str(raw.get())
            .map_err(|e| Error::invalid(format!("invalid tool: {e}"), format!("tools[{i}]")))?;
        if tool.kind != "function" {
            return Err(Error::invalid(
                format!(
                    "unsupported tool type '{}'; only 'function' is supported",
                    tool.kind
                ),
                format!("tools[{i}].type"),
            ));
        }
        names.push(tool.function.name);
    }
    match choice {
        None => Ok(tools),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" | "required" => Ok(tools),
            "none" => Ok(Vec::new()),
            other => Err(Error::invalid(
                format!("invalid tool_choice '{other}': want none, auto, required or a function"),
                "tool_choice",
            )),
        },
        Some(ToolChoice::Named { function }) => {
            let keep = names
                .iter()
                .position(|n| *n == function.name)
                .ok_or_else(|| {
                    Error::invalid(
                        format!(
                            "tool_choice names '{}', which is not in tools",
                            function.name
                        ),
                        "tool_choice.function.name",
                    )
                })?;
            Ok(tools.into_iter().nth(keep).into_iter().collect())
        }
    }
}

fn map_format(format: Option<ResponseFormat>) -> Result<Option<Box<RawValue>>, Error> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(RawValue::from_string("\"json\"".to_owned()).ok()),
        "json_schema" => format
            .json_schema
            .and_then(|s| s.schema)
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(
                    "json_schema needs a schema",
                    "response_format.json_schema.schema",
                )
            }),
        other => Err(Error::invalid(
            format!(
                "invalid response_format type '{other}': want text, json_object or json_schema"
            ),
            "response_format.type",
        )),
    }
}

fn map_effort(effort: Option<&str>) -> Result<Option<Think>, Error> {
    Ok(match effort {
        None => None,
        Some("none") => Some(Think::Enabled(false)),
        Some("minimal" | "low") => Some(Think::Level("low")),
        Some("medium") => Some(Think::Level("medium")),
        Some("high") => Some(Think::Level("high")),
        Some(other) => {
            return Err(Error::invalid(
                format!(
                    "invalid reasoning_effort '{other}': want none, minimal, low, medium or high"
                ),
                "reasoning_effort",
            ));
        }
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
