//! `POST /v1/embeddings` bodies.
//!
//! Source: OpenAI API reference, "Embeddings > Create embeddings" and "The embedding
//! object". Fields not listed are accepted and ignored.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// The request body.
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    /// Model name as the client knows it.
    pub model: String,
    /// A string or an array of strings (token arrays are refused, see [`input_texts`]).
    pub input: Box<RawValue>,
    /// Length of each embedding, for models that can shorten theirs.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: Option<EncodingFormat>,
}

/// How embeddings are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of the little-endian `f32` bytes.
    Base64,
}

/// The texts of `input`: one string, or an array of strings, none empty.
///
/// # Errors
/// A 400 naming `input` (or `input[i]`): token arrays, an empty array or string, anything
/// else that is not a string.
pub fn input_texts(input: &RawValue) -> Result<Vec<String>, Error> {
    super::string_or_strings(
        input,
        "input",
        "Ollama embeds text, send the input as strings",
    )
}

/// `{"object":"list","data":[…],"model","usage"}`.
#[derive(Debug, Serialize)]
pub struct EmbeddingList<'a> {
    /// Always `list`.
    pub object: &'static str,
    /// One embedding per input, in input order.
    pub data: Vec<Embedding<'a>>,
    /// The model name the client asked for.
    pub model: &'a str,
    /// Prompt tokens (Ollama's `prompt_eval_count`); `total_tokens` is the same.
    pub usage: EmbeddingUsage,
}

/// One embedding object.
#[derive(Debug, Serialize)]
pub struct Embedding<'a> {
    /// Always `embedding`.
    pub object: &'static str,
    /// The input's position.
    pub index: usize,
    /// The vector.
    pub embedding: EmbeddingData<'a>,
}

/// An embedding as numbers (Ollama's own text, unchanged) or as base64.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingData<'a> {
    /// The JSON array Ollama sent.
    Float(&'a RawValue),
    /// Base64 of the little-endian `f32` bytes.
    Base64(String),
}

impl<'a> EmbeddingData<'a> {
    /// `raw` (a JSON array of numbers) in `format`.
    ///
    /// # Errors
    /// When `raw` is not an array of numbers (base64 only; floats pass through).
    pub fn encode(raw: &'a RawValue, format: EncodingFormat) -> Result<Self, serde_json::Error> {
        match format {
            EncodingFormat::Float => Ok(Self::Float(raw)),
            EncodingFormat::Base64 => {
                let floats: Vec<f32> = serde_json::from_str(raw.get())?;
                let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
                Ok(Self::Base64(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                ))
            }
        }
    }
}

/// `usage` of an embeddings response.
#[derive(Debug, Serialize)]
pub struct EmbeddingUsage {
    /// Tokens of all inputs.
    pub prompt_tokens: u64,
    /// The same as `prompt_tokens`.
    pub total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn inputs_are_strings_and_token_arrays_are_refused_by_name() {
        assert_eq!(input_texts(&raw(r#""a""#)).unwrap(), ["a"]);
        assert_eq!(input_texts(&raw(r#"["a","b"]"#)).unwrap(), ["a", "b"]);
        let param = |json: &str| match input_texts(&raw(json)) {
            Err(Error::InvalidRequest { param, .. }) => param.unwrap_or_default(),
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(param("[1,2,3]"), "input");
        assert_eq!(param("[[1,2],[3]]"), "input");
        assert_eq!(param("[]"), "input");
        assert_eq!(param(r#""""#), "input");
        assert_eq!(param(r#"["a",""]"#), "input[1]");
        assert_eq!(param(r#"["a",{}]"#), "input[1]");
        assert_eq!(param("{}"), "input");
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let vector = raw("[1.0,-0.5]");
        let data = EmbeddingData::encode(&vector, EncodingFormat::Base64).unwrap();
        let EmbeddingData::Base64(text) = data else {
            panic!("not base64")
        };
        // 1.0f32 = 00 00 80 3f, -0.5f32 = 00 00 00 bf
        assert_eq!(text, "AACAPwAAAL8=");
        let vector = raw("[0.1, 2]");
        let floats = EmbeddingData::encode(&vector, EncodingFormat::Float).unwrap();
        assert_eq!(serde_json::to_string(&floats).unwrap(), "[0.1, 2]");
    }
}
