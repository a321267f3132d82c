//! Ollama's own API, `/api/*`, passed through: the request and the response bodies go
//! byte for byte (streamed, never re-serialised), so Ollama-native clients (ollama-python,
//! Open WebUI) get the bridge's keys, limits and metrics. Only the last NDJSON line of a
//! generation is read, for its stats.
//!
//! Source: Ollama `docs/api.md`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::body::BoxBody;
use crate::error::Error;
use crate::limit::Admission;
use crate::observe::RequestObserver;
use crate::ollama::client::error_chain;
use crate::routes::arrival;
use crate::server::AppState;
use crate::transcode::FinalStats;

/// Headers that belong to one connection, never forwarded; plus the bridge's credentials.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "authorization",
    "api-key",
];
/// Longest last line kept for its stats, in bytes; a longer one is not read.
const MAX_LAST_LINE: usize = 1024 * 1024;

/// The generations among the native paths: measured like the OpenAI endpoints and given
/// concurrency slots. The value is the `gen_ai_operation_name`.
pub fn operation(path: &str) -> Option<&'static str> {
    match path {
        "/api/chat" => Some("chat"),
        "/api/generate" => Some("text_completion"),
        "/api/embed" | "/api/embeddings" => Some("embeddings"),
        _ => None,
    }
}

/// A bounded `endpoint` label for a native path.
pub fn endpoint(path: &str) -> &'static str {
    const KNOWN: [&str; 13] = [
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/embeddings",
        "/api/tags",
        "/api/show",
        "/api/ps",
        "/api/pull",
        "/api/push",
        "/api/create",
        "/api/copy",
        "/api/delete",
        "/api/version",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == path)
        .unwrap_or("/api/other")
}

/// Forwards `req` to Ollama and streams its answer back unchanged.
///
/// # Errors
/// 403 for a path outside `native.allowed_paths`; 413 for a declared body over
/// `server.max_body_bytes`; 502/504 when Ollama cannot be reached. Ollama's own error
/// statuses pass through as they are.
pub async fn forward(
    state: &AppState,
    req: Request<Incoming>,
    admission: Option<Admission>,
) -> Result<Response<BoxBody>, Error> {
    let path = req.uri().path().to_owned();
    if !state.config.native.allows(&path) {
        return Err(Error::Forbidden { path });
    }
    let limit = state.config.server.max_body_bytes;
    if super::declared_length(&req).is_some_and(|len| len > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    let mut observer = operation(&path).map(|op| {
        let metrics = std::sync::Arc::clone(&state.metrics);
        RequestObserver::new(metrics, op, endpoint(&path), arrival(&req))
    });
    if let Some(observer) = observer.as_mut() {
        observer.hold(admission);
    }
    let (mut parts, body) = req.into_parts();
    strip(&mut parts.headers);
    let body = Limited::new(body, limit).boxed_unsync();
    let answer = match state.ollama.forward(Request::from_parts(parts, body)).await {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(observer) = observer.as_mut() {
                observer.failed(&e);
            }
            return Err(e);
        }
    };
    let (mut parts, body) = answer.into_parts();
    strip(&mut parts.headers);
    if let Some(observer) = observer.as_mut() {
        if parts.status.is_success() {
            observer.generation_started();
        } else {
            observer.upstream_failed("status", parts.status.as_u16());
        }
    }
    let remaining = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = NativeBody {
        upstream: Some(body),
        observer,
        last_line: LastLine::default(),
        first_seen: false,
        remaining,
    };
    Ok(Response::from_parts(parts, BoxBody::new(body)))
}

fn strip(headers: &mut HeaderMap) {
    for name in NOT_FORWARDED {
        headers.remove(name);
    }
}

/// Ollama's body, passed on frame by frame, watched for its first line (the model) and its
/// last line (the stats).
struct NativeBody {
    upstream: Option<Incoming>,
    observer: Option<RequestObserver>,
    last_line: LastLine,
    first_seen: bool,
    /// Bytes still due of a sized answer (`content-length`). hyper stops polling a sized
    /// body after its last byte, so that byte is its end; and a failure cannot append an
    /// error line to it.
    remaining: Option<u64>,
}

impl NativeBody {
    fn on_data(&mut self, data: &Bytes) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        if !self.first_seen && !data.is_empty() {
            self.first_seen = true;
            let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
            if let Ok(line) = serde_json::from_slice::<Line<'_>>(first) {
                observer.set_model(line.model.unwrap_or_default());
            }
            observer.first_token();
        }
        self.last_line.push(data);
    }

    /// Ollama's body broke off: the last frame for the client, if any.
    fn on_failure(&mut self, why: &str) -> Option<Result<Frame<Bytes>, Infallible>> {
        self.upstream = None;
        tracing::warn!(error = %why, "native stream from Ollama broke off");
        if let Some(observer) = self.observer.as_mut() {
            observer.upstream_failed("disconnected", 200);
        }
        if self.remaining.is_some() {
            // The client sees a body shorter than announced: the connection closes.
            return None;
        }
        // Ollama's own way to fail a stream: one last `{"error":…}` line.
        let line = serde_json::json!({ "error": format!("upstream Ollama server: {why}") });
        Some(Ok(Frame::data(Bytes::from(format!("{line}\n")))))
    }

    fn on_end(&mut self) {
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        let last = self.last_line.finish();
        if let Ok(line) = serde_json::from_slice::<Line<'_>>(&last)
            && line.done
        {
            observer.set_model(line.model.unwrap_or_default());
            observer.completed(line.stats);
        }
    }
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            return match Pin::new(upstream).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.on_data(&data);
                        if let Some(remaining) = this.remaining.as_mut() {
                            *remaining = remaining.saturating_sub(data.len() as u64);
                            if *remaining == 0 {
                                this.upstream = None;
                                this.on_end();
                            }
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    // Trailers: Ollama sends none, and they are not passed on.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => Poll::Ready(this.on_failure(&error_chain(&e))),
                Poll::Ready(None) => {
                    this.upstream = None;
                    this.on_end();
                    Poll::Ready(None)
                }
            };
        }
    }

    /// Only once the end was read, so that [`NativeBody::on_end`] runs first.
    fn is_end_stream(&self) -> bool {
        self.upstream.is_none()
    }
}

/// A line of `/api/chat` or `/api/generate`: its model, and its stats when `done`.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    model: Option<&'a str>,
    #[serde(default)]
    done: bool,
    #[serde(flatten)]
    stats: FinalStats,
}

/// The last complete NDJSON line of a body fed in pieces, kept without copying when it
/// lies within one piece.
#[derive(Default)]
struct LastLine {
    last: Bytes,
    pending: BytesMut,
    overflow: bool,
}

impl LastLine {
    fn push(&mut self, data: &Bytes) {
        let Some(end) = memchr::memrchr(b'\n', data) else {
            self.keep(data);
            return;
        };
        self.last = match memchr::memrchr(b'\n', &data[..end]) {
            Some(start) => data.slice(start + 1..end),
            None if self.overflow => Bytes::new(),
            None => {
                self.pending.extend_from_slice(&data[..end]);
                self.pending.split().freeze()
            }
        };
        self.pending.clear();
        self.overflow = false;
        self.keep(&data[end + 1..]);
    }

    fn keep(&mut self, piece: &[u8]) {
        if self.overflow || self.pending.len() + piece.len() > MAX_LAST_LINE {
            self.pending.clear();
            self.overflow = true;
        } else {
            self.pending.extend_from_slice(piece);
        }
    }

    /// The last line: the unterminated rest if there is one, else the last complete line.
    fn finish(&mut self) -> Bytes {
        if self.pending.is_empty() || self.overflow {
            std::mem::take(&mut self.last)
        } else {
            self.pending.split().freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_found_across_any_split() {
        let body = b"{\"a\":1}\n{\"b\":2}\n{\"done\":true,\"eval_count\":3}\n";
        for step in 1..body.len() {
            let mut last = LastLine::default();
            for piece in body.chunks(step) {
                last.push(&Bytes::copy_from_slice(piece));
            }
            assert_eq!(
                &last.finish()[..],
                b"{\"done\":true,\"eval_count\":3}",
                "step {step}"
            );
        }
        let mut unterminated = LastLine::default();
        unterminated.push(&Bytes::from_static(b"{\"x\":1}\n{\"done\":true}"));
        assert_eq!(&unterminated.finish()[..], b"{\"done\":true}");
    }
}
