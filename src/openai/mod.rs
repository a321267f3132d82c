//! OpenAI's wire format: request bodies, response bodies, SSE chunk frames.

pub mod completions;
pub mod embeddings;
pub mod models;
pub mod request;
pub mod response;
pub mod sse;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;

/// The texts of a field that takes one string or an array of strings (`input`, `prompt`),
/// none empty.
///
/// # Errors
/// A 400 naming `field` (or `field[i]`): token arrays (`why_text` says what to send
/// instead), an empty array or string, anything else that is not a string.
pub fn string_or_strings(
    raw: &RawValue,
    field: &str,
    why_text: &str,
) -> Result<Vec<String>, Error> {
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| Error::invalid(format!("invalid {field}: {e}"), field))?;
    let token_arrays =
        || Error::invalid(format!("token arrays are not supported: {why_text}"), field);
    let texts = match value {
        Value::String(text) => vec![text],
        Value::Array(items) if items.is_empty() => {
            return Err(Error::invalid(
                format!("{field} must not be an empty array"),
                field,
            ));
        }
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(text) => texts.push(text),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays()),
                    _ => {
                        return Err(Error::invalid(
                            format!("each {field} must be a string"),
                            format!("{field}[{i}]"),
                        ));
                    }
                }
            }
            texts
        }
        Value::Number(_) => return Err(token_arrays()),
        _ => {
            return Err(Error::invalid(
                format!("{field} must be a string or an array of strings"),
                field,
            ));
        }
    };
    if let Some(i) = texts.iter().position(String::is_empty) {
        let param = if texts.len() == 1 {
            field.to_owned()
        } else {
            format!("{field}[{i}]")
        };
        return Err(Error::invalid(
            format!("{field} must not be an empty string"),
            param,
        ));
    }
    Ok(texts)
}
