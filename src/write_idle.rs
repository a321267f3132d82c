//! A client socket whose writes may not wait forever.
//!
//! A streaming response is written as fast as the client reads it: when the client stops
//! reading, its socket buffer fills, the write waits, hyper stops polling the SSE body,
//! and the upstream stops being read (TCP pushes back on Ollama). [`WriteIdle`] bounds that
//! wait: a write that makes no progress for the timeout fails with `TimedOut`, which ends
//! the connection, drops the body and with it the upstream request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner` with writes that fail after `timeout` without progress. Reads pass through.
#[derive(Debug)]
pub struct WriteIdle<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write waits; allocated at the first wait only.
    deadline: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<T> WriteIdle<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            waiting: false,
        }
    }

    /// Runs a write operation: progress disarms the deadline, a wait arms it (if not yet),
    /// and a wait past it is an error.
    fn guard<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut T, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let Poll::Ready(result) = op(&mut self.inner, cx) {
            self.waiting = false;
            return Poll::Ready(result);
        }
        let at = Instant::now() + self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !self.waiting {
            self.waiting = true;
            deadline.as_mut().reset(at);
        }
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read nothing for {} ms",
                self.timeout.as_millis()
            ),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteIdle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteIdle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard(cx, |inner, cx| Pin::new(inner).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |inner, cx| {
            Pin::new(inner).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .guard(cx, |inner, cx| Pin::new(inner).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .guard(cx, |inner, cx| Pin::new(inner).poll_shutdown(cx))
    }
}
