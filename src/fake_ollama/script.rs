//! What fake-ollama sends for one request: a recorded transcript or a synthetic stream, and
//! the faults to inject into it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

/// The synthetic stream and its faults. Every field can be set per request by naming the
/// model `synth?key=value&…` (keys as the field names).
#[derive(Debug, Clone, PartialEq)]
pub struct Synth {
    /// Content tokens to send.
    pub tokens: u32,
    /// Tokens per second; 0 sends as fast as possible.
    pub rate: f64,
    /// Thinking tokens sent before the content.
    pub think_tokens: u32,
    /// Send one `get_weather` tool call after the content.
    pub tool_call: bool,
    /// Delay before the response headers and first token, in milliseconds.
    pub delay_ms: u64,
    /// Pause after the response headers, before the first token, in milliseconds.
    pub pause_ms: u64,
    /// `done_reason` of the last line.
    pub done_reason: String,
    /// After this many content tokens, send `{"error":…}` and end the body.
    pub error_after: Option<u32>,
    /// After this many content tokens, break the connection.
    pub drop_after: Option<u32>,
    /// After this many content tokens, send nothing more and keep the connection open.
    pub stall_after: Option<u32>,
    /// After this many content tokens, send a line that is not JSON.
    pub malformed_after: Option<u32>,
    /// After this many content tokens, send one content token of `huge_bytes` bytes.
    pub huge_after: Option<u32>,
    /// Size of the `huge_after` token, in bytes (1 MiB).
    pub huge_bytes: usize,
    /// After this many content tokens, send a content string holding invalid UTF-8.
    pub bad_utf8_after: Option<u32>,
    /// Cut every write into writes of this many bytes (0: whole lines), to split lines.
    pub split_bytes: usize,
    /// Answer with this HTTP status and `{"error":…}` instead of a stream.
    pub status: Option<u16>,
    /// Wait this long before answering with `status`, in milliseconds.
    pub status_delay_ms: u64,
    /// The stream's `content-type` instead of `application/x-ndjson`.
    pub content_type: Option<String>,
    /// Inject the faults above only into the request with this `options.seed` (one choice
    /// of several).
    pub fault_seed: Option<i64>,
}

impl Default for Synth {
    fn default() -> Self {
        Self {
            tokens: 20,
            rate: 0.0,
            think_tokens: 0,
            tool_call: false,
            delay_ms: 0,
            pause_ms: 0,
            done_reason: "stop".to_owned(),
            error_after: None,
            drop_after: None,
            stall_after: None,
            malformed_after: None,
            huge_after: None,
            huge_bytes: 1024 * 1024,
            bad_utf8_after: None,
            split_bytes: 0,
            status: None,
            status_delay_ms: 0,
            content_type: None,
            fault_seed: None,
        }
    }
}

/// What the request asked that shapes a synthetic answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ask {
    /// `/api/generate` (`response` lines) rather than `/api/chat` (`message` lines).
    pub generate: bool,
    /// `options.seed`: content tokens become `s{seed}w{i} `, so choices differ.
    pub seed: Option<i64>,
    /// `top_logprobs` when `logprobs` is on: each content line carries `logprobs`.
    pub logprobs: Option<u32>,
}

impl Ask {
    /// What `body` (an `/api/chat` or `/api/generate` request) asks.
    pub fn of(body: &Value, generate: bool) -> Self {
        Self {
            generate,
            seed: body["options"]["seed"].as_i64(),
            logprobs: (body["logprobs"] == Value::Bool(true))
                .then(|| body["top_logprobs"].as_u64().unwrap_or(0) as u32),
        }
    }

    /// The text of content token `i`.
    pub fn token(&self, i: u32) -> String {
        match self.seed {
            Some(seed) => format!("s{seed}w{i} "),
            None => token_text(i),
        }
    }

    fn line(&self, model: &str, content: &str, thinking: Option<&str>) -> Value {
        let mut line = if self.generate {
            json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "response": content,
                "done": false})
        } else {
            chunk(model, json!({"role":"assistant","content":content}))
        };
        if let Some(thinking) = thinking {
            if self.generate {
                line["thinking"] = json!(thinking);
            } else {
                line["message"]["thinking"] = json!(thinking);
            }
        }
        line
    }

    fn logprobs_of(&self, token: &str, i: u32) -> Option<Value> {
        let top = self.logprobs?;
        let logprob = -f64::from(i + 1) / 8.0;
        let alternatives: Vec<Value> = (0..top)
            .map(|j| match j {
                0 => json!({"token": token, "logprob": logprob}),
                _ => json!({"token": format!("alt{j}"), "logprob": logprob - f64::from(j)}),
            })
            .collect();
        Some(
            json!([{"token": token, "logprob": logprob, "bytes": token.as_bytes(),
            "top_logprobs": alternatives}]),
        )
    }
}

/// One step of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes.
    Send(Bytes),
    /// Wait.
    Sleep(Duration),
    /// Break the connection.
    Drop,
    /// Keep the connection open and send nothing more.
    Stall,
}

impl Synth {
    /// `base` with the `key=value&…` overrides of `query` applied.
    ///
    /// # Errors
    /// The text of the first key or value that is not understood.
    pub fn with_query(mut self, query: &str) -> Result<Self, String> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            let bad = || format!("bad synth parameter {key}={value}");
            let int = || value.parse::<u64>().map_err(|_| bad());
            match key {
                "tokens" => self.tokens = int()? as u32,
                "rate" => self.rate = value.parse().map_err(|_| bad())?,
                "think_tokens" => self.think_tokens = int()? as u32,
                "tool_call" => self.tool_call = value.parse().map_err(|_| bad())?,
                "delay_ms" => self.delay_ms = int()?,
                "pause_ms" => self.pause_ms = int()?,
                "done_reason" => value.clone_into(&mut self.done_reason),
                "error_after" => self.error_after = Some(int()? as u32),
                "drop_after" => self.drop_after = Some(int()? as u32),
                "stall_after" => self.stall_after = Some(int()? as u32),
                "malformed_after" => self.malformed_after = Some(int()? as u32),
                "huge_after" => self.huge_after = Some(int()? as u32),
                "huge_bytes" => self.huge_bytes = int()? as usize,
                "bad_utf8_after" => self.bad_utf8_after = Some(int()? as u32),
                "split_bytes" => self.split_bytes = int()? as usize,
                "status" => self.status = Some(int()? as u16),
                "status_delay_ms" => self.status_delay_ms = int()?,
                "content_type" => self.content_type = Some(value.to_owned()),
                "fault_seed" => self.fault_seed = Some(value.parse().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        Ok(self)
    }

    /// The steps of the body for `model`, shaped by what the request asked.
    ///
    /// Without a rate, consecutive lines go out in writes of up to 16 KiB, as a fast
    /// server's lines reach a reader that is busy: the upstream is then no bottleneck.
    pub fn steps(&self, model: &str, ask: Ask) -> Vec<Step> {
        let mut steps = self.lines(model, ask);
        if self.rate == 0.0 {
            steps = coalesce(steps, 16 * 1024);
        }
        if self.split_bytes > 0 {
            steps = split(steps, self.split_bytes);
        }
        steps
    }

    /// Whether the faults apply to a request that asked `ask` (see `fault_seed`).
    pub fn faulty(&self, ask: Ask) -> bool {
        self.fault_seed.is_none_or(|seed| ask.seed == Some(seed))
    }

    fn lines(&self, model: &str, ask: Ask) -> Vec<Step> {
        let gap = (self.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.rate));
        let mut steps = Vec::new();
        if self.pause_ms > 0 {
            steps.push(Step::Sleep(Duration::from_millis(self.pause_ms)));
        }
        let push = |line: serde_json::Value, steps: &mut Vec<Step>| {
            if let Some(gap) = gap {
                if steps.iter().any(|s| matches!(s, Step::Send(_))) {
                    steps.push(Step::Sleep(gap));
                }
            }
            steps.push(Step::Send(ndjson(&line)));
        };
        for i in 0..self.think_tokens {
            push(ask.line(model, "", Some(&format!("t{i} "))), &mut steps);
        }
        let faulty = self.faulty(ask);
        let fault_at = |i| if faulty { self.fault_at(i) } else { None };
        for i in 0..self.tokens {
            if let Some(fault) = fault_at(i) {
                steps.push(fault);
                return steps;
            }
            if let Some(line) = faulty.then(|| self.odd_line(model, ask, i)).flatten() {
                steps.push(Step::Send(line));
            }
            let token = ask.token(i);
            let mut line = ask.line(model, &token, None);
            if let Some(logprobs) = ask.logprobs_of(&token, i) {
                line["logprobs"] = logprobs;
            }
            push(line, &mut steps);
        }
        if let Some(fault) = fault_at(self.tokens) {
            steps.push(fault);
            return steps;
        }
        if self.tool_call && !ask.generate {
            let call = json!({"id":"call_fake0001","function":{"index":0,"name":"get_weather",
                "arguments":{"city":"Paris","unit":"celsius"}}});
            push(
                chunk(
                    model,
                    json!({"role":"assistant","content":"","tool_calls":[call]}),
                ),
                &mut steps,
            );
        }
        let mut last = ask.line(model, "", None);
        if ask.generate {
            last["context"] = json!([1, 2, 3]);
        }
        last["done"] = json!(true);
        last["done_reason"] = json!(self.done_reason);
        last["prompt_eval_count"] = json!(10);
        last["eval_count"] = json!(self.tokens + self.think_tokens + u32::from(self.tool_call));
        last["total_duration"] = json!(1_000_000);
        last["eval_duration"] = json!(900_000);
        push(last, &mut steps);
        steps
    }

    /// The odd but well-framed line to send before content token `i`, if any: the huge
    /// token, or a content string with invalid UTF-8 (bytes `ff fe`).
    fn odd_line(&self, model: &str, ask: Ask, i: u32) -> Option<Bytes> {
        if self.huge_after == Some(i) {
            return Some(ndjson(&ask.line(model, &"x".repeat(self.huge_bytes), None)));
        }
        if self.bad_utf8_after == Some(i) {
            let line = ndjson(&ask.line(model, "\u{1}", None));
            let at = memchr::memmem::find(&line, b"\\u0001")?;
            let mut bytes = line.to_vec();
            bytes.splice(at..at + 6, [0xff, 0xfe]);
            return Some(Bytes::from(bytes));
        }
        None
    }

    fn fault_at(&self, i: u32) -> Option<Step> {
        if self.error_after == Some(i) {
            return Some(Step::Send(ndjson(
                &json!({"error":"synthetic upstream failure"}),
            )));
        }
        if self.drop_after == Some(i) {
            return Some(Step::Drop);
        }
        if self.stall_after == Some(i) {
            return Some(Step::Stall);
        }
        if self.malformed_after == Some(i) {
            return Some(Step::Send(Bytes::from_static(
                b"{\"model\":\"synth\",\"message\":{\n",
            )));
        }
        None
    }
}

/// The text of synthetic content token `i`: `w0 `, `w1 `, …
pub fn token_text(i: u32) -> String {
    format!("w{i} ")
}

fn chunk(model: &str, message: serde_json::Value) -> serde_json::Value {
    json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": message, "done": false})
}

/// `steps` with each run of consecutive sends joined into writes of up to `max` bytes.
fn coalesce(steps: Vec<Step>, max: usize) -> Vec<Step> {
    let mut out = Vec::new();
    let mut pending = BytesMut::new();
    for step in steps {
        match step {
            Step::Send(bytes) => {
                if !pending.is_empty() && pending.len() + bytes.len() > max {
                    out.push(Step::Send(pending.split().freeze()));
                }
                pending.extend_from_slice(&bytes);
            }
            other => {
                if !pending.is_empty() {
                    out.push(Step::Send(pending.split().freeze()));
                }
                out.push(other);
            }
        }
    }
    if !pending.is_empty() {
        out.push(Step::Send(pending.freeze()));
    }
    out
}

/// `steps` with every send cut into sends of at most `size` bytes.
fn split(steps: Vec<Step>, size: usize) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Send(bytes) => out.extend(
                (0..bytes.len())
                    .step_by(size)
                    .map(|at| Step::Send(bytes.slice(at..bytes.len().min(at + size)))),
            ),
            other => out.push(other),
        }
    }
    out
}

fn ndjson(value: &serde_json::Value) -> Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

/// A recorded transcript, one step per line, or per `chunk_bytes` bytes when that is set
/// (to exercise line framing), with `gap` between writes.
pub fn replay(transcript: &Bytes, chunk_bytes: usize, gap: Duration) -> Vec<Step> {
    let pieces: Vec<Bytes> = if chunk_bytes == 0 {
        let mut pieces = Vec::new();
        let mut rest = transcript.clone();
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', &rest).map_or(rest.len(), |i| i + 1);
            pieces.push(rest.split_to(end));
        }
        pieces
    } else {
        transcript
            .chunks(chunk_bytes)
            .map(Bytes::copy_from_slice)
            .collect()
    };
    let mut steps = Vec::with_capacity(pieces.len() * 2);
    for piece in pieces {
        if !gap.is_zero() && !steps.is_empty() {
            steps.push(Step::Sleep(gap));
        }
        steps.push(Step::Send(piece));
    }
    steps
}

/// The lines `steps` send, merged as Ollama answers `"stream": false`: the last line, with
/// the `content` (`response` for `/api/generate`) and `thinking` of every line joined. Pauses and faults are ignored.
pub fn whole(steps: &[Step]) -> Value {
    let mut bytes = Vec::new();
    for step in steps {
        if let Step::Send(data) = step {
            bytes.extend_from_slice(data);
        }
    }
    let lines: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let joined = |at: fn(&Value) -> &Value| -> String {
        lines.iter().filter_map(|l| at(l).as_str()).collect()
    };
    let mut last = lines.last().cloned().unwrap_or_default();
    if last.get("response").is_some() {
        last["response"] = json!(joined(|l| &l["response"]));
        let thinking = joined(|l| &l["thinking"]);
        if !thinking.is_empty() {
            last["thinking"] = json!(thinking);
        }
        return last;
    }
    last["message"]["content"] = json!(joined(|l| &l["message"]["content"]));
    let thinking = joined(|l| &l["message"]["thinking"]);
    if !thinking.is_empty() {
        last["message"]["thinking"] = json!(thinking);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_overrides_and_faults() {
        let s = Synth::default().with_query("tokens=3&drop_after=1&rate=10");
        let s = s.unwrap_or_default();
        assert_eq!((s.tokens, s.drop_after, s.rate), (3, Some(1), 10.0));
        let steps = s.steps("m", Ask::default());
        assert_eq!(steps.last(), Some(&Step::Drop));
        assert!(Synth::default().with_query("nope=1").is_err());
    }
}
