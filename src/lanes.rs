//! The upstream generations of one response, read together.
//!
//! A response has one choice per upstream generation: one for a plain request, `n` for
//! `n` > 1, `n` per prompt for a completions request with several prompts. Each choice is a
//! lane: its own Ollama request (connecting, then its NDJSON body), its own framer and
//! transcoder. Lanes are polled in turn from the task that polls the response, so there is
//! no task and no channel per lane: a client that stops reading stops every upstream read,
//! and dropping the lanes closes every upstream connection, which stops Ollama generating.
//!
//! The response starts once one lane's response headers arrived ([`Lanes::start`]); a
//! later lane's failure, like any failure after the start, ends the stream with one error
//! event (what was sent stays sent) and drops the other lanes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::ollama::client::error_chain;
use crate::ollama::h1::ResponseBody;
use crate::openai::sse::Usage;
use crate::transcode::framed::{Framed, Progress};
use crate::transcode::{FinalStats, LineTranscoder, StreamFailure};

/// An upstream request on its way: resolves to Ollama's response body once its headers
/// arrived.
pub type PendingResponse = Pin<Box<dyn Future<Output = Result<ResponseBody, Error>> + Send>>;

/// How the generations ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every lane read its `done` line and the stream's end was written.
    Done {
        /// Ollama's counts and durations, summed over the lanes (for metrics and budgets).
        stats: FinalStats,
        /// OpenAI's usage: each prompt's tokens once, every choice's output tokens.
        usage: Usage,
    },
    /// A lane failed; its error event was written and every lane was dropped.
    Failed(StreamFailure),
}

enum Upstream {
    Connecting(PendingResponse),
    Reading(ResponseBody),
    Closed,
}

struct Lane<T> {
    upstream: Upstream,
    framed: Framed<T>,
    /// The prompt this choice answers; choices of one prompt share its prompt tokens.
    prompt: u32,
    stats: Option<FinalStats>,
}

/// One upstream lane to start: the request on its way, the choice's transcoder, and the
/// index of the prompt it answers.
pub struct LaneStart<T> {
    /// The request, sent when first polled.
    pub response: PendingResponse,
    /// The choice's transcoder.
    pub transcoder: T,
    /// Which prompt (0 for chat).
    pub prompt: u32,
}

/// The lanes of one response.
pub struct Lanes<T> {
    lanes: Vec<Lane<T>>,
    /// Lanes without their `done` line yet.
    open: usize,
    /// Lanes still waiting for their response headers.
    connecting: usize,
    /// The lane polled first next time, so no lane starves the others.
    next: usize,
    idle_timeout: Duration,
    last_read: Instant,
    idle: Pin<Box<Sleep>>,
    first_delta: bool,
    first_delta_unseen: bool,
    outcome: Option<Outcome>,
}

impl<T> std::fmt::Debug for Lanes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("lanes", &self.lanes.len())
            .field("open", &self.open)
            .field("connecting", &self.connecting)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl<T: LineTranscoder> Lanes<T> {
    /// Lanes for `starts`, in choice order; lines over `max_line` bytes and silences over
    /// `idle_timeout` (once every lane has its headers) fail the stream.
    pub fn new(starts: Vec<LaneStart<T>>, max_line: usize, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        let lanes: Vec<Lane<T>> = starts
            .into_iter()
            .map(|start| Lane {
                upstream: Upstream::Connecting(start.response),
                framed: Framed::new(start.transcoder, max_line),
                prompt: start.prompt,
                stats: None,
            })
            .collect();
        Self {
            open: lanes.len(),
            connecting: lanes.len(),
            lanes,
            next: 0,
            idle_timeout,
            last_read: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            first_delta: false,
            first_delta_unseen: false,
            outcome: None,
        }
    }

    /// Sends every request and waits until one lane has Ollama's response headers.
    ///
    /// # Errors
    /// The first lane's error when it fails before any lane started: Ollama's status, an
    /// unreachable Ollama, or its response timeout.
    pub async fn start(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_start(cx)).await
    }

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        for lane in &mut self.lanes {
            let Upstream::Connecting(response) = &mut lane.upstream else {
                continue;
            };
            match response.as_mut().poll(cx) {
                Poll::Ready(Ok(body)) => {
                    lane.upstream = Upstream::Reading(body);
                    self.connecting -= 1;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if self.connecting < self.lanes.len() {
            self.last_read = Instant::now();
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// How the generations ended, once they did.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// `true` once, after the first content, reasoning or tool-call delta of any lane.
    pub fn take_first_delta(&mut self) -> bool {
        std::mem::take(&mut self.first_delta_unseen)
    }

    /// The model Ollama reported, once a line named it.
    pub fn upstream_model(&self) -> Option<&str> {
        self.lanes
            .iter()
            .find_map(|lane| lane.framed.transcoder().upstream_model())
    }

    /// The transcoders, in choice order.
    pub fn into_transcoders(self) -> Vec<T> {
        self.lanes
            .into_iter()
            .map(|lane| lane.framed.into_transcoder())
            .collect()
    }

    /// Reads what the lanes have ready into `out` (up to about `limit` bytes); `now` (the
    /// caller's clock read for this poll) stamps the reads for the idle timeout. `Ready`
    /// when something was written or the generations ended; `Pending` when nothing is
    /// ready (every lane and the idle timer will wake the task).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
        limit: usize,
        now: Instant,
    ) -> Poll<()> {
        if self.outcome.is_some() {
            return Poll::Ready(());
        }
        let start_len = out.len();
        let count = self.lanes.len();
        for k in 0..count {
            let i = (self.next + k) % count;
            if out.len() >= limit {
                self.next = i;
                return Poll::Ready(());
            }
            self.read_lane(i, cx, out, limit, now);
            if self.outcome.is_some() {
                return Poll::Ready(());
            }
        }
        self.next = (self.next + 1) % count.max(1);
        if out.len() > start_len || self.first_delta_unseen {
            return Poll::Ready(());
        }
        if self.poll_idle(cx, out) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Reads lane `i` until it is pending, ended, or `out` is full.
    fn read_lane(
        &mut self,
        i: usize,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
        limit: usize,
        now: Instant,
    ) {
        while out.len() < limit {
            let lane = &mut self.lanes[i];
            let progress = match &mut lane.upstream {
                Upstream::Closed => return,
                Upstream::Connecting(response) => match response.as_mut().poll(cx) {
                    Poll::Ready(Ok(body)) => {
                        lane.upstream = Upstream::Reading(body);
                        self.connecting -= 1;
                        self.last_read = now;
                        continue;
                    }
                    Poll::Ready(Err(e)) => lane.framed.fail(failure_of(&e), out),
                    Poll::Pending => return,
                },
                Upstream::Reading(body) => match body.poll_data(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        self.last_read = now;
                        lane.framed.on_read(data, out)
                    }
                    Poll::Ready(Some(Err(e))) => lane
                        .framed
                        .fail(StreamFailure::Disconnected(error_chain(&e)), out),
                    Poll::Ready(None) => {
                        let progress = lane.framed.on_eof(out);
                        lane.upstream = Upstream::Closed;
                        progress
                    }
                    Poll::Pending => return,
                },
            };
            self.on_progress(i, progress, cx, out);
            if self.outcome.is_some() || matches!(self.lanes[i].upstream, Upstream::Closed) {
                return;
            }
        }
    }

    fn on_progress(
        &mut self,
        i: usize,
        progress: Progress,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) {
        if self.lanes[i].framed.take_delta() && !self.first_delta {
            self.first_delta = true;
            self.first_delta_unseen = true;
        }
        match progress {
            Progress::Open => {}
            Progress::Done(stats) => {
                let lane = &mut self.lanes[i];
                lane.stats = Some(stats);
                if let Upstream::Reading(body) =
                    std::mem::replace(&mut lane.upstream, Upstream::Closed)
                {
                    body.release(cx);
                }
                self.open -= 1;
                if self.open == 0 {
                    self.finish(out);
                }
            }
            Progress::Failed(failure) => self.close(failure),
        }
    }

    /// Every lane is done: sums the stats and writes the stream's end.
    fn finish(&mut self, out: &mut BytesMut) {
        let mut stats = FinalStats::default();
        let mut prompt_tokens: Vec<(u32, u64)> = Vec::new();
        let mut completion_tokens = 0u64;
        for lane in &self.lanes {
            let lane_stats = lane.stats.unwrap_or_default();
            stats = stats.plus(lane_stats);
            completion_tokens += lane_stats.eval_count.unwrap_or(0);
            let prompt = lane_stats.prompt_eval_count.unwrap_or(0);
            match prompt_tokens.iter_mut().find(|(p, _)| *p == lane.prompt) {
                Some((_, tokens)) => *tokens = (*tokens).max(prompt),
                None => prompt_tokens.push((lane.prompt, prompt)),
            }
        }
        let prompt_tokens: u64 = prompt_tokens.iter().map(|(_, tokens)| tokens).sum();
        let usage = Usage::new(Some(prompt_tokens), Some(completion_tokens));
        if let Some(first) = self.lanes.first() {
            first.framed.transcoder().end_stream(usage, out);
        }
        self.outcome = Some(Outcome::Done { stats, usage });
    }

    /// Fails the stream when nothing arrived for `idle_timeout` (while every lane has its
    /// headers; a lane waiting for them is bounded by the response timeout instead).
    fn poll_idle(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> bool {
        if self.connecting > 0 {
            return false;
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_read + self.idle_timeout;
            if deadline <= Instant::now() {
                self.fail(StreamFailure::IdleTimeout(self.idle_timeout), out);
                return true;
            }
            self.idle.as_mut().reset(deadline);
        }
        false
    }

    /// Ends a running stream with `failure`'s error event (nothing if it already ended);
    /// the upstream requests are dropped.
    pub fn abort(&mut self, failure: StreamFailure, out: &mut BytesMut) {
        if self.outcome.is_none() {
            self.fail(failure, out);
        }
    }

    /// Ends the stream with `failure`, written as the error event of an open lane.
    fn fail(&mut self, failure: StreamFailure, out: &mut BytesMut) {
        if let Some(lane) = self.lanes.iter_mut().find(|lane| lane.stats.is_none()) {
            lane.framed.fail(failure.clone(), out);
        }
        self.close(failure);
    }

    fn close(&mut self, failure: StreamFailure) {
        for lane in &mut self.lanes {
            lane.upstream = Upstream::Closed;
        }
        self.outcome = Some(Outcome::Failed(failure));
    }
}

/// A lane's request that failed after the response started, as a stream failure.
fn failure_of(error: &Error) -> StreamFailure {
    match error {
        Error::UpstreamStatus { message, .. } => StreamFailure::Upstream(message.clone()),
        Error::UpstreamStream { message, .. } => StreamFailure::Malformed(message.clone()),
        other => StreamFailure::Disconnected(other.to_string()),
    }
}
