//! Per-request measuring: TTFT, time per output token, tokens/s, Ollama's own durations,
//! bridge overhead, outcome, and the one log line of each request.
//!
//! A [`RequestObserver`] lives as long as the request: in the handler, then in the response
//! body. Metric handles are resolved when the model is known (once), never per token; the
//! rest is observed when the observer is dropped, so a client that goes away is counted too.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;

use crate::limit::Admission;
use crate::metrics::{Metrics, status_class};
use crate::transcode::FinalStats;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running; at drop this means the client went away.
    InProgress,
    /// The response ended normally.
    Completed,
    /// The client went away first.
    ClientDisconnected,
    /// Ollama failed; the kind is bounded (`unreachable`, `timeout`, `status`, `error`,
    /// `malformed`, `disconnected`).
    UpstreamError(&'static str),
    /// The bridge refused the request (bad input, size); the value is the error kind.
    Rejected(&'static str),
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::InProgress | Self::ClientDisconnected => "client_disconnected",
            Self::Completed => "completed",
            Self::UpstreamError(_) => "upstream_error",
            Self::Rejected(_) => "rejected",
        }
    }

    /// The `error_type` label: empty on success.
    fn error_type(self) -> &'static str {
        match self {
            Self::Completed => "",
            Self::InProgress | Self::ClientDisconnected => "client_disconnected",
            Self::UpstreamError(kind) => match kind {
                "unreachable" => "upstream_unreachable",
                "timeout" => "upstream_timeout",
                "status" => "upstream_status",
                "malformed" => "upstream_malformed",
                "disconnected" => "upstream_disconnected",
                _ => "upstream_error",
            },
            Self::Rejected(kind) => kind,
        }
    }
}

/// Measures one request.
#[derive(Debug)]
pub struct RequestObserver {
    metrics: Arc<Metrics>,
    span: Span,
    operation: &'static str,
    endpoint: &'static str,
    started: Instant,
    model: String,
    first_token: Option<Instant>,
    overhead: Duration,
    status: u16,
    outcome: Outcome,
    stats: Option<FinalStats>,
    streaming: bool,
    admission: Option<Admission>,
}

impl RequestObserver {
    /// Starts measuring a request of `operation` (`chat`, …) on `endpoint` (a route name),
    /// arrived at `started`, logging into the current span.
    pub fn new(
        metrics: Arc<Metrics>,
        operation: &'static str,
        endpoint: &'static str,
        started: Instant,
    ) -> Self {
        Self {
            metrics,
            span: Span::current(),
            operation,
            endpoint,
            started,
            model: String::new(),
            first_token: None,
            overhead: Duration::ZERO,
            status: 200,
            outcome: Outcome::InProgress,
            stats: None,
            streaming: false,
            admission: None,
        }
    }

    /// Holds the request's admission (its concurrency slots) until the response ends, when
    /// its token budget is charged with Ollama's `eval_count`.
    pub fn hold(&mut self, admission: Option<Admission>) {
        self.admission = admission;
    }

    /// The admission held, to add slots to it.
    pub fn admission_mut(&mut self) -> Option<&mut Admission> {
        self.admission.as_mut()
    }

    /// The request's span, for log lines written outside the handler.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Adds the time from `since` to now to the bridge's own time.
    pub fn overhead_since(&mut self, since: Instant) {
        self.overhead += since.elapsed();
    }

    /// Ollama answered; its response is being generated.
    pub fn generation_started(&mut self) {
        if !self.streaming {
            self.streaming = true;
            self.metrics.active_streams.inc();
        }
    }

    /// The model as Ollama reported it (the label of this request's metrics).
    pub fn set_model(&mut self, model: &str) {
        if self.model.is_empty() {
            model.clone_into(&mut self.model);
        }
    }

    /// The first output byte was handed to the client (or, for a non-streaming call, arrived).
    pub fn first_token(&mut self) {
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            let ttft = now.duration_since(self.started).as_secs_f64();
            self.metrics
                .ttft
                .with_label_values(&[self.operation, &self.model])
                .observe(ttft);
        }
    }

    /// The response ended normally with Ollama's final stats.
    pub fn completed(&mut self, stats: FinalStats) {
        self.stats = Some(stats);
        self.outcome = Outcome::Completed;
    }

    /// Ollama failed; `kind` is bounded (see [`Outcome::UpstreamError`]).
    pub fn upstream_failed(&mut self, kind: &'static str, status: u16) {
        self.metrics
            .upstream_errors
            .with_label_values(&[kind])
            .inc();
        self.outcome = Outcome::UpstreamError(kind);
        self.status = status;
    }

    /// The bridge ended the stream because it is shutting down.
    pub fn shut_down(&mut self) {
        self.outcome = Outcome::Rejected("server_shutting_down");
    }

    /// The request failed before its response started: Ollama's fault or the request's.
    pub fn failed(&mut self, error: &crate::error::Error) {
        let status = error.status().as_u16();
        if error.is_upstream() {
            self.upstream_failed(error.kind(), status);
        } else {
            self.outcome = Outcome::Rejected(error.kind());
            self.status = status;
        }
    }

    /// Observes everything measured at the end; returns the output tokens per second.
    fn observe_end(&self, end: Instant) -> Option<f64> {
        let m = &self.metrics;
        let op_model = [self.operation, self.model.as_str()];
        let duration = end.duration_since(self.started).as_secs_f64();
        let outcome = self.outcome;
        m.request_duration
            .with_label_values(&[self.operation, &self.model, outcome.error_type()])
            .observe(duration);
        m.requests
            .with_label_values(&[self.endpoint, &self.model, status_class(self.status)])
            .inc();
        m.overhead
            .with_label_values(&[self.operation])
            .observe(self.overhead.as_secs_f64());
        if outcome == Outcome::ClientDisconnected {
            m.client_disconnects.with_label_values(&op_model).inc();
        }
        let stats = self.stats?;
        if let Some(n) = stats.prompt_eval_count {
            m.token_usage
                .with_label_values(&[self.operation, &self.model, "input"])
                .observe(n as f64);
        }
        if let Some(n) = stats.eval_count {
            m.token_usage
                .with_label_values(&[self.operation, &self.model, "output"])
                .observe(n as f64);
        }
        let model = [self.model.as_str()];
        let seconds = |ns: u64| ns as f64 / 1e9;
        for (histogram, value) in [
            (&m.load_duration, stats.load_duration),
            (&m.prompt_eval_duration, stats.prompt_eval_duration),
            (&m.eval_duration, stats.eval_duration),
        ] {
            if let Some(ns) = value {
                histogram.with_label_values(&model).observe(seconds(ns));
            }
        }
        let (first, tokens) = (self.first_token?, stats.eval_count?);
        let generating = end.duration_since(first).as_secs_f64();
        if tokens <= 1 || generating <= 0.0 {
            return None;
        }
        let per_token = generating / (tokens - 1) as f64;
        m.time_per_output_token
            .with_label_values(&op_model)
            .observe(per_token);
        let rate = tokens as f64 / generating;
        m.output_tokens_per_second
            .with_label_values(&op_model)
            .observe(rate);
        Some(rate)
    }
}

impl Drop for RequestObserver {
    fn drop(&mut self) {
        if self.outcome == Outcome::InProgress {
            self.outcome = Outcome::ClientDisconnected;
        }
        if self.streaming {
            self.metrics.active_streams.dec();
        }
        if let (Some(admission), Some(tokens)) =
            (self.admission.take(), self.stats.and_then(|s| s.eval_count))
        {
            admission.charge(tokens);
        }
        let end = Instant::now();
        let tokens_per_second = self.observe_end(end);
        let ttft_ms = self
            .first_token
            .map(|t| t.duration_since(self.started).as_secs_f64() * 1e3);
        let output_tokens = self.stats.and_then(|s| s.eval_count);
        tracing::info!(
            parent: &self.span,
            model = %self.model,
            status = self.status,
            outcome = self.outcome.name(),
            error_type = self.outcome.error_type(),
            duration_ms = end.duration_since(self.started).as_secs_f64() * 1e3,
            ttft_ms,
            output_tokens,
            tokens_per_second,
            overhead_us = self.overhead.as_secs_f64() * 1e6,
            "request finished"
        );
    }
}
