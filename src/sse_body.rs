//! The streamed response body: a pull-based adapter from Ollama's NDJSON body to OpenAI SSE.
//!
//! Each time hyper polls it, it reads what upstream has ready, frames complete lines,
//! transcodes them into one output buffer and yields that buffer as one frame. There is no
//! channel and no task: a client that stops reading stops the upstream reads (TCP pushes
//! back on Ollama), and a client that goes away drops this body, which drops the upstream
//! response and closes its connection, so Ollama stops generating.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::observe::RequestObserver;
use crate::ollama::client::error_chain;
use crate::openai::sse;
use crate::transcode::StreamFailure;
use crate::transcode::framed::{FramedChat, Progress};

/// Output gathered from reads that are ready at once is yielded as one frame, up to this size.
const COALESCE_BYTES: usize = 64 * 1024;

/// Timing settings of a stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamTimers {
    /// Longest silence from upstream before the stream fails.
    pub idle_timeout: Duration,
    /// Interval of SSE comments while no delta has been sent.
    pub keepalive: Duration,
}

/// The SSE body of one streamed chat completion.
#[derive(Debug)]
pub struct SseBody {
    /// `None` once the stream ended; dropping it closes or frees the connection.
    upstream: Option<Incoming>,
    transcoder: FramedChat,
    out: BytesMut,
    timers: StreamTimers,
    last_read: Instant,
    idle: Pin<Box<Sleep>>,
    /// Runs until the first delta.
    keepalive: Option<Pin<Box<Sleep>>>,
    observer: RequestObserver,
    first_delta_sent: bool,
    log_frames: bool,
}

impl SseBody {
    /// Streams `upstream` through `transcoder`, reporting to `observer`.
    pub fn new(
        upstream: Incoming,
        transcoder: FramedChat,
        timers: StreamTimers,
        observer: RequestObserver,
    ) -> Self {
        let now = Instant::now();
        Self {
            upstream: Some(upstream),
            transcoder,
            out: BytesMut::with_capacity(4096),
            timers,
            last_read: now,
            idle: Box::pin(tokio::time::sleep_until(now + timers.idle_timeout)),
            keepalive: Some(Box::pin(tokio::time::sleep_until(now + timers.keepalive))),
            observer,
            first_delta_sent: false,
            log_frames: false,
        }
    }

    /// Logs every frame sent (the completion text); only with `logging.log_bodies`.
    pub fn log_frames(&mut self, enabled: bool) {
        self.log_frames = enabled;
    }

    fn on_progress(&mut self, progress: Progress) {
        match progress {
            Progress::Open { delta: false } => {}
            Progress::Open { delta: true } => {
                if !self.first_delta_sent {
                    self.first_delta_sent = true;
                    self.keepalive = None;
                    self.observer
                        .set_model(self.transcoder.upstream_model().unwrap_or_default());
                    self.observer.first_token();
                }
            }
            Progress::Done(stats) => {
                self.observer
                    .set_model(self.transcoder.upstream_model().unwrap_or_default());
                self.observer.completed(stats);
            }
            Progress::Failed(failure) => {
                tracing::warn!(parent: self.observer.span(), %failure, "stream failed");
                self.observer.upstream_failed(failure.kind(), 200);
                self.upstream = None;
            }
        }
    }

    /// With nothing to send: the idle timeout and the keep-alive comment.
    fn poll_timers(&mut self, cx: &mut Context<'_>) {
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_read + self.timers.idle_timeout;
            if deadline <= Instant::now() {
                let failure = StreamFailure::IdleTimeout(self.timers.idle_timeout);
                let progress = self.transcoder.fail(failure, &mut self.out);
                return self.on_progress(progress);
            }
            self.idle.as_mut().reset(deadline);
        }
        if let Some(keepalive) = self.keepalive.as_mut() {
            while keepalive.as_mut().poll(cx).is_ready() {
                self.out.put_slice(sse::KEEPALIVE);
                keepalive
                    .as_mut()
                    .reset(Instant::now() + self.timers.keepalive);
            }
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while this.out.len() < COALESCE_BYTES {
            let Some(upstream) = this.upstream.as_mut() else {
                break;
            };
            if this.transcoder.is_ended() {
                // The last line was read: one more poll sees the end of the body, so the
                // connection can go back to the pool; otherwise dropping it closes it.
                let _ = Pin::new(upstream).poll_frame(cx);
                this.upstream = None;
                break;
            }
            match Pin::new(upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let begin = Instant::now();
                        this.last_read = begin;
                        let progress = this.transcoder.on_read(data, &mut this.out);
                        this.on_progress(progress);
                        this.observer.overhead_since(begin);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let failure = StreamFailure::Disconnected(error_chain(&e));
                    let progress = this.transcoder.fail(failure, &mut this.out);
                    this.on_progress(progress);
                }
                Poll::Ready(None) => {
                    let progress = this.transcoder.on_eof(&mut this.out);
                    this.on_progress(progress);
                    this.upstream = None;
                }
                Poll::Pending => {
                    if this.out.is_empty() {
                        this.poll_timers(cx);
                    }
                    break;
                }
            }
        }
        if !this.out.is_empty() {
            let frame = this.out.split().freeze();
            if this.log_frames {
                let text = String::from_utf8_lossy(&frame);
                tracing::info!(parent: this.observer.span(), frame = %text, "response frames");
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        match this.upstream {
            Some(_) => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.upstream.is_none() && self.out.is_empty()
    }
}
