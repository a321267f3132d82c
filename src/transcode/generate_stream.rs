//! Ollama `/api/generate` NDJSON lines -> OpenAI `text_completion` SSE frames, one choice.
//!
//! The text is copied as a raw JSON string literal from Ollama's `response` into the frame.
//! Ollama's `done` line becomes the chunk with `finish_reason` (its text, usually empty,
//! included), as OpenAI ends a choice. `thinking` text has no place in a text completion
//! and is left out.

use bytes::BytesMut;
use serde_json::value::RawValue;

use crate::ollama::generate::{parse_generate_chunk, token_logprobs};
use crate::ollama::types::is_empty_string;
use crate::openai::completions::{CompletionLogprobs, TopLogprobs};
use crate::openai::sse::{self, ChunkFrames, Usage};
use crate::transcode::{LineTranscoder, Step, StreamFailure, finish_reason};

/// The state of one choice of a streamed text completion.
#[derive(Debug)]
pub struct GenerateStream {
    frames: ChunkFrames,
    /// The prompt as a JSON string literal, written before the first text with `echo`.
    echo: Option<String>,
    /// Characters written so far (for `text_offset`), when `logprobs` was asked.
    logprobs: Option<usize>,
    ended: bool,
    model: Option<String>,
}

impl GenerateStream {
    /// A choice written with `frames` (a `text_completion` stream's, for this choice's
    /// index); `echo` is the prompt to write first, `logprobs` whether to pass Ollama's
    /// token log probabilities on (as completions `logprobs` objects).
    pub fn new(frames: ChunkFrames, echo: Option<&str>, logprobs: bool) -> Self {
        let offset = echo.map_or(0, |prompt| prompt.chars().count());
        Self {
            frames,
            echo: echo.map(|prompt| serde_json::to_string(prompt).unwrap_or_default()),
            logprobs: logprobs.then_some(offset),
            ended: false,
            model: None,
        }
    }
}

impl LineTranscoder for GenerateStream {
    fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<Step, StreamFailure> {
        if self.ended {
            return Ok(Step::Quiet);
        }
        let chunk = parse_generate_chunk(line)?;
        if self.model.is_none() {
            self.model = chunk.model.map(str::to_owned);
        }
        let logprobs = match (self.logprobs.as_mut(), chunk.logprobs) {
            (Some(offset), Some(raw)) => {
                let mut rendered = CompletionLogprobs::default();
                push_logprobs(raw, offset, &mut rendered)?;
                Some(serde_json::to_vec(&rendered).unwrap_or_default())
            }
            _ => None,
        };
        if let Some(echo) = self.echo.take() {
            self.frames.text(out, &echo, None, None);
        }
        let text = chunk.response.filter(|r| !is_empty_string(r));
        if chunk.done {
            self.ended = true;
            let text = chunk.response.map_or("\"\"", RawValue::get);
            let reason = finish_reason(chunk.done_reason, false);
            self.frames
                .text(out, text, logprobs.as_deref(), Some(reason));
            return Ok(Step::Done(chunk.stats()));
        }
        if text.is_none() && logprobs.is_none() {
            return Ok(Step::Quiet);
        }
        let text = text.map_or("\"\"", RawValue::get);
        self.frames.text(out, text, logprobs.as_deref(), None);
        Ok(Step::Delta)
    }

    fn fail(&mut self, failure: &StreamFailure, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            sse::error_event(out, &failure.to_string(), failure.code());
        }
    }

    fn end_stream(&self, usage: Usage, out: &mut BytesMut) {
        self.frames.end_stream(out, usage);
    }

    fn is_ended(&self) -> bool {
        self.ended
    }

    fn upstream_model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// Appends Ollama's `logprobs` entries to completions-style arrays; `offset` counts the
/// characters of the choice's text so far.
///
/// # Errors
/// [`StreamFailure::Malformed`] when `raw` is not an array of `{token, logprob}` entries.
pub fn push_logprobs(
    raw: &RawValue,
    offset: &mut usize,
    into: &mut CompletionLogprobs,
) -> Result<(), StreamFailure> {
    for entry in token_logprobs(raw)? {
        into.text_offset.push(*offset);
        *offset += entry.token.chars().count();
        into.token_logprobs.push(entry.logprob);
        into.top_logprobs.push(TopLogprobs(
            entry
                .top_logprobs
                .into_iter()
                .map(|top| (top.token, top.logprob))
                .collect(),
        ));
        into.tokens.push(entry.token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::sse::ChunkObject;

    fn stream(echo: Option<&str>, logprobs: bool) -> GenerateStream {
        let frames = ChunkFrames::new(ChunkObject::TextCompletion, "cmpl-1", 7, "m", false);
        GenerateStream::new(frames.choice(2), echo, logprobs)
    }

    fn feed(s: &mut GenerateStream, lines: &[&str]) -> (Vec<serde_json::Value>, Vec<Step>) {
        let mut out = BytesMut::new();
        let mut steps = Vec::new();
        for line in lines {
            steps.push(s.on_line(line.as_bytes(), &mut out).unwrap_or(Step::Quiet));
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let frames = text
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let json = f.strip_prefix("data: ").unwrap_or(f);
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{f}: {e}"))
            })
            .collect();
        (frames, steps)
    }

    #[test]
    fn text_chunks_and_the_done_line_with_finish_reason() {
        let mut s = stream(None, false);
        let (frames, steps) = feed(
            &mut s,
            &[
                r#"{"model":"m","response":"He","done":false}"#,
                r#"{"model":"m","response":"","done":false}"#,
                r#"{"model":"m","response":"llo\n","done":false}"#,
                r#"{"model":"m","response":"","done":true,"done_reason":"length","eval_count":2,"prompt_eval_count":3,"context":[1,2]}"#,
            ],
        );
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            serde_json::json!({"id":"cmpl-1","object":"text_completion","created":7,"model":"m",
                "system_fingerprint":"fp_ollama",
                "choices":[{"index":2,"text":"He","logprobs":null,"finish_reason":null}]})
        );
        assert_eq!(frames[1]["choices"][0]["text"], "llo\n");
        assert_eq!(frames[2]["choices"][0]["text"], "");
        assert_eq!(frames[2]["choices"][0]["finish_reason"], "length");
        assert!(matches!(steps[3], Step::Done(stats) if stats.eval_count == Some(2)));
        assert_eq!(steps[1], Step::Quiet);
        assert_eq!(s.upstream_model(), Some("m"));
    }

    #[test]
    fn echo_comes_first_and_logprobs_count_characters() {
        let mut s = stream(Some("Say é"), true);
        let (frames, _) = feed(
            &mut s,
            &[
                r#"{"model":"m","response":"ok","done":false,"logprobs":[{"token":"ok","logprob":-0.5,"top_logprobs":[{"token":"ok","logprob":-0.5},{"token":"no","logprob":-1.5}]}]}"#,
                r#"{"model":"m","response":"!","done":true,"done_reason":"stop","logprobs":[{"token":"!","logprob":-0.1}]}"#,
            ],
        );
        assert_eq!(frames[0]["choices"][0]["text"], "Say é");
        assert_eq!(
            frames[1]["choices"][0]["logprobs"],
            serde_json::json!({"tokens":["ok"],"token_logprobs":[-0.5],
                "top_logprobs":[{"ok":-0.5,"no":-1.5}],"text_offset":[5]})
        );
        assert_eq!(frames[2]["choices"][0]["text"], "!");
        assert_eq!(
            frames[2]["choices"][0]["logprobs"]["text_offset"],
            serde_json::json!([7])
        );
        assert_eq!(frames[2]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn bad_lines_fail() {
        let mut s = stream(None, false);
        let mut out = BytesMut::new();
        let error = s.on_line(br#"{"error":"boom"}"#, &mut out);
        assert_eq!(error, Err(StreamFailure::Upstream("boom".to_owned())));
        let error = s.on_line(br#"{"response":5,"done":false}"#, &mut out);
        assert!(matches!(error, Err(StreamFailure::Malformed(_))));
        assert!(out.is_empty());
    }
}
