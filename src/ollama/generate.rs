//! Ollama's `/api/generate` wire types.
//!
//! Source: Ollama `docs/api.md`, "Generate a completion" (`POST /api/generate`): request
//! fields `model`, `prompt`, `suffix`, `stream`, `options`, `logprobs`, `top_logprobs`;
//! response chunk fields `model`, `response`, `thinking`, `done`, `done_reason`,
//! `prompt_eval_count`, `eval_count`, the `*_duration` stats (nanoseconds), `logprobs`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ollama::types::{Options, decode_string, is_string};
use crate::transcode::{FinalStats, StreamFailure};

/// The body of `POST /api/generate`.
#[derive(Debug, Serialize)]
pub struct GenerateRequest {
    /// Model name, e.g. `llama3.2:3b`.
    pub model: String,
    /// The text to complete; the model's template is applied to it, as Ollama's own
    /// `/v1/completions` does.
    pub prompt: String,
    /// Text after the insertion point, for fill-in-the-middle models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Always `true`: the bridge streams from Ollama also for non-streaming clients.
    pub stream: bool,
    /// Sampling options.
    pub options: Options,
    /// Return log probabilities of output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many alternatives per token (0 to 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

/// One line of an `/api/generate` stream, borrowed from the line's bytes; `response` stays
/// a raw JSON string literal so it can be copied into frames without re-encoding.
#[derive(Debug, Deserialize)]
pub struct GenerateChunk<'a> {
    /// The model that answered, as Ollama names it.
    #[serde(borrow, default)]
    pub model: Option<&'a str>,
    /// Generated text, a raw JSON string literal.
    #[serde(borrow, default)]
    pub response: Option<&'a RawValue>,
    /// `true` on the last line, which carries the stats.
    #[serde(default)]
    pub done: bool,
    /// Why generation ended: `stop`, `length`, …; only when `done`.
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
    /// Token log probabilities: `[{token, logprob, bytes, top_logprobs}]`.
    #[serde(borrow, default)]
    pub logprobs: Option<&'a RawValue>,
    /// An error reported mid-stream: `{"error":"…"}`.
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl GenerateChunk<'_> {
    /// The counts and durations of a `done` line.
    pub fn stats(&self) -> FinalStats {
        FinalStats {
            prompt_eval_count: self.prompt_eval_count,
            eval_count: self.eval_count,
            load_duration: self.load_duration,
            prompt_eval_duration: self.prompt_eval_duration,
            eval_duration: self.eval_duration,
        }
    }
}

/// Parses one `/api/generate` line, turning an `{"error":…}` line into a failure.
///
/// # Errors
/// [`StreamFailure::Malformed`] when the line is not a generate chunk or `response` is not
/// a string; [`StreamFailure::Upstream`] for an error line.
pub fn parse_generate_chunk(line: &[u8]) -> Result<GenerateChunk<'_>, StreamFailure> {
    let chunk: GenerateChunk<'_> =
        serde_json::from_slice(line).map_err(|e| StreamFailure::Malformed(e.to_string()))?;
    if let Some(error) = chunk.error {
        let text = decode_string(error).unwrap_or_else(|| error.get().to_owned());
        return Err(StreamFailure::Upstream(text));
    }
    if chunk.response.is_some_and(|r| !is_string(r)) {
        return Err(StreamFailure::Malformed(
            "response is not a string".to_owned(),
        ));
    }
    Ok(chunk)
}

/// One entry of Ollama's `logprobs` array.
#[derive(Debug, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// The most likely tokens at this position.
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative of [`TokenLogprob::top_logprobs`].
#[derive(Debug, Deserialize)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
}

/// Reads a chunk's `logprobs` array.
///
/// # Errors
/// [`StreamFailure::Malformed`] when it is not an array of `{token, logprob}` entries.
pub fn token_logprobs(raw: &RawValue) -> Result<Vec<TokenLogprob>, StreamFailure> {
    serde_json::from_str(raw.get()).map_err(|e| StreamFailure::Malformed(format!("logprobs: {e}")))
}
