//! The streamed response body: a pull-based adapter from Ollama's NDJSON bodies to OpenAI SSE.
//!
//! Each time hyper polls it, it reads what the upstream lanes have ready, transcodes the
//! complete lines into one output buffer and yields that buffer as one frame. There is no
//! channel and no task: a client that stops reading stops the upstream reads (TCP pushes
//! back on Ollama), and a client that goes away drops this body, which drops the upstream
//! responses and closes their connections, so Ollama stops generating.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use crate::lanes::{Lanes, Outcome};
use crate::observe::RequestObserver;
use crate::openai::sse;
use crate::transcode::{LineTranscoder, StreamFailure};

/// Output gathered from reads that are ready at once is yielded as one frame, up to this size.
const COALESCE_BYTES: usize = 64 * 1024;

/// Tells every open stream that the shutdown grace is over: each then writes one error
/// event and ends. Shared by all streams; a stream takes its lock once (to leave its
/// waker), then reads one flag per poll.
#[derive(Debug, Default)]
pub struct EndStreams {
    ended: AtomicBool,
    wake: Arc<Notify>,
}

impl EndStreams {
    /// Ends every open stream (they are woken) and every stream that starts later.
    pub fn end_all(&self) {
        self.ended.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }
}

/// The SSE body of one streamed completion (chat or text), of one or more choices.
pub struct SseBody<T> {
    lanes: Lanes<T>,
    /// Whether the lanes ended and their outcome was reported.
    ended: bool,
    out: BytesMut,
    keepalive_every: Duration,
    /// Runs until the first delta.
    keepalive: Option<Pin<Box<Sleep>>>,
    observer: RequestObserver,
    log_frames: bool,
    end: Arc<EndStreams>,
    /// Wakes this stream's task when `end` fires; polled once, so that it holds the
    /// waker (hyper polls a body from one task throughout).
    end_wake: Pin<Box<OwnedNotified>>,
    end_wake_set: bool,
}

impl<T> std::fmt::Debug for SseBody<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("lanes", &self.lanes)
            .field("buffered", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl<T: LineTranscoder> SseBody<T> {
    /// Streams `lanes` (started), writing an SSE comment every `keepalive` until the first
    /// delta, reporting to `observer`; [`EndStreams::end_all`] on `end` ends the stream.
    pub fn new(
        lanes: Lanes<T>,
        keepalive: Duration,
        observer: RequestObserver,
        end: Arc<EndStreams>,
    ) -> Self {
        Self {
            lanes,
            ended: false,
            out: BytesMut::new(),
            keepalive_every: keepalive,
            keepalive: Some(Box::pin(tokio::time::sleep(keepalive))),
            observer,
            log_frames: false,
            end_wake: Box::pin(Arc::clone(&end.wake).notified_owned()),
            end,
            end_wake_set: false,
        }
    }

    /// Logs every frame sent (the completion text); only with `logging.log_bodies`.
    pub fn log_frames(&mut self, enabled: bool) {
        self.log_frames = enabled;
    }

    /// Reports what the last read did: the first delta, the end.
    fn report(&mut self) {
        if self.lanes.take_first_delta() {
            self.keepalive = None;
            self.observer
                .set_model(self.lanes.upstream_model().unwrap_or_default());
            self.observer.first_token();
        }
        match self.lanes.outcome() {
            None => {}
            Some(Outcome::Done { stats, .. }) => {
                let stats = *stats;
                self.ended = true;
                self.observer
                    .set_model(self.lanes.upstream_model().unwrap_or_default());
                self.observer.completed(stats);
            }
            Some(Outcome::Failed(StreamFailure::ShuttingDown)) => {
                self.ended = true;
                tracing::warn!(parent: self.observer.span(), "stream ended by the shutdown");
                self.observer.shut_down();
            }
            Some(Outcome::Failed(failure)) => {
                self.ended = true;
                self.observer
                    .set_model(self.lanes.upstream_model().unwrap_or_default());
                tracing::warn!(parent: self.observer.span(), %failure, "stream failed");
                self.observer.upstream_failed(failure.kind(), 200);
            }
        }
    }

    /// Whether the shutdown asked the stream to end; leaves the task's waker with the
    /// signal on the first call.
    fn end_requested(&mut self, cx: &mut Context<'_>) -> bool {
        if self.end.ended.load(Ordering::Acquire) {
            return true;
        }
        if !self.end_wake_set {
            self.end_wake_set = true;
            return self.end_wake.as_mut().poll(cx).is_ready();
        }
        false
    }

    /// With nothing to send: the keep-alive comment until the first delta.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) {
        if let Some(keepalive) = self.keepalive.as_mut() {
            while keepalive.as_mut().poll(cx).is_ready() {
                self.out.put_slice(sse::KEEPALIVE);
                keepalive
                    .as_mut()
                    .reset(Instant::now() + self.keepalive_every);
            }
        }
    }
}

impl<T: LineTranscoder + Unpin> Body for SseBody<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if !this.ended && this.end_requested(cx) {
            this.lanes.abort(StreamFailure::ShuttingDown, &mut this.out);
            this.report();
        }
        if !this.ended {
            let begin = Instant::now();
            let read = this
                .lanes
                .poll_read(cx, &mut this.out, COALESCE_BYTES, begin);
            if read.is_ready() {
                this.report();
                this.observer.overhead_since(begin);
            } else if this.out.is_empty() {
                this.poll_keepalive(cx);
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
        if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.out.is_empty()
    }
}
