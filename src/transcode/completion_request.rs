//! OpenAI completions request -> Ollama `/api/generate` requests.
//!
//! Sources: OpenAI API reference, "Completions > Create completion"; Ollama `docs/api.md`,
//! "Generate a completion".

use crate::error::Error;
use crate::ollama::generate::GenerateRequest;
use crate::openai::completions::CompletionRequest;
use crate::openai::request::StreamOptions;
use crate::openai::string_or_strings;
use crate::transcode::request::{Sampling, choices, stop_sequences};

/// What the response side needs to know about a completions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionSettings {
    /// The model name the client asked for, echoed in responses.
    pub model: String,
    /// SSE stream or one JSON response.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Choices per prompt.
    pub n: u32,
    /// `echo`: each choice's text starts with its prompt.
    pub echo: bool,
    /// `logprobs`: write completions-style log probabilities.
    pub logprobs: bool,
}

/// Maps a parsed completions request to one Ollama request per prompt (each sent `n`
/// times), and the settings of the response. A request without `max_tokens` gets
/// `default_max_tokens` (0: none).
///
/// # Errors
/// [`Error::InvalidRequest`] naming the field, for: a `prompt` that is not a string or a
/// non-empty array of non-empty strings (token arrays included); `n` (times the prompts)
/// outside 1 to `max_choices`; `best_of` other than 1 or `n`; `logprobs` over 5; a
/// sampling parameter out of OpenAI's range; more than 4 `stop` sequences.
pub fn map_completion_request(
    req: CompletionRequest,
    max_choices: u32,
    default_max_tokens: u32,
) -> Result<(Vec<GenerateRequest>, CompletionSettings), Error> {
    let prompts = string_or_strings(
        &req.prompt,
        "prompt",
        "Ollama completes text, send the prompt as a string",
    )?;
    let n = choices(req.n, prompts.len(), max_choices)?;
    if req.best_of.is_some_and(|b| b != 1 && b != n) {
        return Err(Error::invalid(
            "best_of is not supported (candidates are not ranked); use n for several choices",
            "best_of",
        ));
    }
    if req.logprobs.is_some_and(|k| k > 5) {
        return Err(Error::invalid(
            "logprobs must be between 0 and 5",
            "logprobs",
        ));
    }
    let sampling = Sampling {
        temperature: req.temperature,
        top_p: req.top_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
    };
    sampling.check()?;
    let stop = stop_sequences(req.stop)?;
    let max_tokens = req
        .max_tokens
        .or((default_max_tokens > 0).then_some(default_max_tokens));
    let settings = CompletionSettings {
        model: req.model.clone(),
        stream: req.stream.unwrap_or(false),
        include_usage: StreamOptions::include_usage(req.stream_options.as_ref()),
        n,
        echo: req.echo.unwrap_or(false),
        logprobs: req.logprobs.is_some(),
    };
    let requests = prompts
        .into_iter()
        .map(|prompt| GenerateRequest {
            model: req.model.clone(),
            prompt,
            suffix: req.suffix.clone(),
            stream: true,
            options: sampling.options(max_tokens, stop.clone(), req.seed),
            logprobs: req.logprobs.map(|_| true),
            top_logprobs: req.logprobs,
        })
        .collect();
    Ok((requests, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::request::parse_json;

    fn map(body: &str) -> Result<(Vec<serde_json::Value>, CompletionSettings), Error> {
        let req: CompletionRequest = parse_json(body.as_bytes())?;
        let (requests, settings) = map_completion_request(req, 16, 16)?;
        let json = requests
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        Ok((json, settings))
    }

    fn param_of(body: &str) -> Option<String> {
        match map(body) {
            Err(Error::InvalidRequest { param, .. }) => param,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn fields_map_to_generate_options() {
        let body = r#"{"model":"m","prompt":"Once","suffix":"end","max_tokens":5,
            "temperature":0.5,"top_p":0.9,"stop":"\n","seed":7,"presence_penalty":1,
            "frequency_penalty":-1,"logprobs":2,"stream":true,
            "stream_options":{"include_usage":true},"echo":true,"n":2,"best_of":2}"#;
        let (json, settings) = map(body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            json,
            vec![serde_json::json!({
                "model":"m","prompt":"Once","suffix":"end","stream":true,
                "options":{"temperature":0.5,"top_p":0.9,"num_predict":5,"stop":["\n"],
                    "seed":7,"frequency_penalty":-1.0,"presence_penalty":1.0},
                "logprobs":true,"top_logprobs":2
            })]
        );
        let want = CompletionSettings {
            model: "m".to_owned(),
            stream: true,
            include_usage: true,
            n: 2,
            echo: true,
            logprobs: true,
        };
        assert_eq!(settings, want);
    }

    #[test]
    fn prompts_fan_out_and_max_tokens_defaults_to_16() {
        let (json, settings) =
            map(r#"{"model":"m","prompt":["a","b"]}"#).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(json.len(), 2);
        assert_eq!(json[1]["prompt"], "b");
        assert_eq!(json[0]["options"], serde_json::json!({"num_predict":16}));
        assert!(!settings.stream && settings.n == 1);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (r#"{"model":"m","prompt":[1,2,3]}"#, "prompt"),
            (r#"{"model":"m","prompt":[[1,2],[3]]}"#, "prompt"),
            (r#"{"model":"m","prompt":[]}"#, "prompt"),
            (r#"{"model":"m","prompt":""}"#, "prompt"),
            (r#"{"model":"m","prompt":["a",""]}"#, "prompt[1]"),
            (r#"{"model":"m","prompt":["a",{}]}"#, "prompt[1]"),
            (r#"{"model":"m","prompt":{"text":"a"}}"#, "prompt"),
            (r#"{"model":"m"}"#, "prompt"),
            (r#"{"prompt":"a"}"#, "model"),
            (r#"{"model":"m","prompt":"a","n":0}"#, "n"),
            (r#"{"model":"m","prompt":["a","b","c"],"n":6}"#, "n"),
            (r#"{"model":"m","prompt":"a","best_of":3}"#, "best_of"),
            (r#"{"model":"m","prompt":"a","logprobs":6}"#, "logprobs"),
            (
                r#"{"model":"m","prompt":"a","temperature":-1}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","prompt":"a","max_tokens":"many"}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","prompt":"a","stop":["1","2","3","4","5"]}"#,
                "stop",
            ),
            (r#"{"model":"m","prompt":"a","echo":"yes"}"#, "echo"),
        ];
        for (body, param) in cases {
            assert_eq!(param_of(body).as_deref(), Some(param), "{body}");
        }
    }
}
