//! `POST /v1/completions` bodies (the legacy text completions).
//!
//! Source: OpenAI API reference, "Completions > Create completion" and "The completion
//! object". Fields not listed are accepted and ignored (`logit_bias`, `user`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::openai::request::{Stop, StreamOptions};
use crate::openai::sse::Usage;

/// The request body.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// Model name as the client knows it.
    pub model: String,
    /// A string or an array of strings (token arrays are refused).
    pub prompt: Box<RawValue>,
    /// Text after the insertion point.
    #[serde(default)]
    pub suffix: Option<String>,
    /// Limit on generated tokens; OpenAI's default is 16.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Choices per prompt.
    #[serde(default)]
    pub n: Option<u32>,
    /// Stream SSE chunks instead of one response. Default `false`.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{"include_usage": bool}`.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Log probabilities of the chosen token and of this many alternatives, 0 to 5.
    #[serde(default)]
    pub logprobs: Option<u32>,
    /// Write the prompt before the completion.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Up to 4 stop sequences.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// -2 to 2.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// -2 to 2.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Candidates per prompt to pick the best from; only `n` (no picking) is served.
    #[serde(default)]
    pub best_of: Option<u32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
}

/// `text_completion`: the whole response of a non-streaming request.
#[derive(Debug, Serialize)]
pub struct TextCompletion {
    /// `cmpl-…`.
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model the client asked for.
    pub model: String,
    /// Always `fp_ollama`.
    pub system_fingerprint: &'static str,
    /// One choice per prompt and `n`, prompt-major.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Usage,
}

/// One choice of a [`TextCompletion`].
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// The generated text (after the prompt, with `echo`).
    pub text: String,
    /// Prompt index × `n` + choice number.
    pub index: u32,
    /// With `logprobs`: per token; else `null`.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// The log probabilities of a completion: four arrays, one entry per token.
#[derive(Debug, Default, Serialize)]
pub struct CompletionLogprobs {
    /// The tokens' text.
    pub tokens: Vec<String>,
    /// Each token's log probability.
    pub token_logprobs: Vec<f64>,
    /// Each position's most likely tokens, token -> log probability.
    pub top_logprobs: Vec<TopLogprobs>,
    /// Each token's offset in the choice's text, in characters.
    pub text_offset: Vec<usize>,
}

/// One position's alternatives, written as a JSON object `{token: logprob}`.
#[derive(Debug, Default)]
pub struct TopLogprobs(pub Vec<(String, f64)>);

impl Serialize for TopLogprobs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(token, logprob)| (token, logprob)))
    }
}
