//! The HTTP/1.1 client of the generation requests: one `POST` per choice whose answer is
//! read by the task that serves the client, straight from the socket.
//!
//! This is the hot path, so it is lean: no connection task and no channel between the
//! socket and the transcoder, one 4 KiB read buffer per stream, the response head parsed by
//! `httparse` and the body's chunks decoded in place ([`BodyFraming`]). A connection whose
//! body was read to its end goes back to a pool of idle keep-alive connections; dropping a
//! body before its end closes its connection, which is how a client's disconnect stops
//! Ollama generating.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{StatusCode, Uri};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::ollama::chunked::{BodyFraming, ChunkState, invalid};

/// Bytes read from an upstream connection at a time: Ollama writes one short line per
/// token, so a small buffer is enough and keeps an open stream's memory low; a burst of
/// lines takes a few reads.
pub(crate) const READ_BUFFER: usize = 4096;

/// Below this much free room the read buffer is renewed before a read.
const MIN_READ: usize = 512;

/// Largest response head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// Most headers a response head may have.
const MAX_HEADERS: usize = 64;

/// Idle connections kept at most.
const MAX_IDLE: usize = 8192;

/// How long the end of a body that is not there yet is waited for, after the last line,
/// before its connection is closed instead of pooled.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections to one Ollama server: where it is, and its idle keep-alive connections.
#[derive(Debug)]
pub struct Connections {
    /// `host` (no brackets around an IPv6 address) and port, to connect to.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// The URL's path, without a trailing slash, put before every request path.
    prefix: String,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

/// The status line and the headers the bridge reads of Ollama's answer.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The `content-type` header's value, when there is one.
    pub content_type: Option<Vec<u8>>,
}

/// Why an exchange failed, and whether the request may be sent again.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(io::Error),
    /// The connection broke before any byte of the response arrived.
    BeforeResponse(io::Error),
    /// The response head was malformed or cut off.
    Response(io::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::BeforeResponse(e) => write!(f, "connection closed before the response: {e}"),
            Self::Response(e) => write!(f, "response: {e}"),
        }
    }
}

impl Connections {
    /// Connections to `base` (`http://host:port[/prefix]`), each made within
    /// `connect_timeout`. Idle connections are closed after `idle_timeout` (a task evicts
    /// them when a Tokio runtime is running).
    pub fn new(base: &Uri, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let host = base.host().unwrap_or("localhost");
        let pool = Arc::new(Pool {
            idle: Mutex::new(VecDeque::new()),
            idle_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(evict_idle(Arc::downgrade(&pool), idle_timeout));
        }
        Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: base.port_u16().unwrap_or(80),
            authority: base
                .authority()
                .map_or_else(|| host.to_owned(), ToString::to_string),
            prefix: base.path().trim_end_matches('/').to_owned(),
            connect_timeout,
            pool,
        }
    }

    /// `POST {prefix}{path}` with a JSON body on a pooled or new connection; returns once
    /// the response head arrived. When the connection breaks before any byte of the
    /// response (a pooled connection Ollama closed, say after a restart), the request is
    /// sent once more on a new connection.
    ///
    /// # Errors
    /// [`SendError`]: connecting failed, the connection broke, or the head was malformed.
    pub async fn post_json(
        &self,
        path: &str,
        json: &[u8],
    ) -> Result<(ResponseHead, ResponseBody), SendError> {
        let request = self.request(path, json);
        let first = match self.pool.take() {
            Some(idle) => idle,
            None => self.connect().await?,
        };
        match self.exchange(first, &request).await {
            Err(SendError::BeforeResponse(e)) => {
                tracing::debug!(error = %e, "upstream connection failed before the \
                    response; sending the request once more on a new connection");
                self.exchange(self.connect().await?, &request).await
            }
            result => result,
        }
    }

    /// How many idle keep-alive connections the pool holds now.
    pub fn idle(&self) -> usize {
        self.pool.lock().len()
    }

    fn request(&self, path: &str, json: &[u8]) -> Vec<u8> {
        let mut request = Vec::with_capacity(128 + self.prefix.len() + path.len() + json.len());
        for part in [
            "POST ",
            &self.prefix,
            path,
            " HTTP/1.1\r\nhost: ",
            &self.authority,
            "\r\ncontent-type: application/json\r\ncontent-length: ",
            itoa::Buffer::new().format(json.len()),
            "\r\n\r\n",
        ] {
            request.extend_from_slice(part.as_bytes());
        }
        request.extend_from_slice(json);
        request
    }

    async fn connect(&self) -> Result<TcpStream, SendError> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => {
                let timeout = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(SendError::Connect(timeout));
            }
        };
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        Ok(stream)
    }

    /// Writes `request` on `conn` and reads the response head.
    async fn exchange(
        &self,
        mut conn: TcpStream,
        request: &[u8],
    ) -> Result<(ResponseHead, ResponseBody), SendError> {
        conn.write_all(request)
            .await
            .map_err(SendError::BeforeResponse)?;
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        loop {
            let read = poll_fn(|cx| poll_read(&mut conn, cx, &mut buf)).await;
            match read {
                Ok(0) if buf.is_empty() => {
                    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "closed");
                    return Err(SendError::BeforeResponse(eof));
                }
                Ok(0) => return Err(SendError::Response(cut_off("response head"))),
                Err(e) if buf.is_empty() => return Err(SendError::BeforeResponse(e)),
                Err(e) => return Err(SendError::Response(e)),
                Ok(_) => {}
            }
            while let Some(parsed) = parse_head(&mut buf).map_err(SendError::Response)? {
                if parsed.head.status.is_informational() {
                    continue;
                }
                let body = ResponseBody {
                    conn: Some(conn),
                    buf,
                    framing: parsed.framing,
                    keep_alive: parsed.keep_alive,
                    pool: Arc::downgrade(&self.pool),
                };
                return Ok((parsed.head, body));
            }
            if buf.len() > MAX_HEAD {
                return Err(SendError::Response(invalid("response head too large")));
            }
        }
    }
}

struct ParsedHead {
    head: ResponseHead,
    framing: BodyFraming,
    keep_alive: bool,
}

/// Parses a response head from the front of `buf` and consumes it; `None` when it is not
/// all there yet.
fn parse_head(buf: &mut BytesMut) -> io::Result<Option<ParsedHead>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    let code = response.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut keep_alive = response.version == Some(1);
    let (mut chunked, mut content_length, mut content_type) = (false, None, None);
    for header in response.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = last_token(value).eq_ignore_ascii_case(b"chunked");
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            content_length = Some(length.ok_or_else(|| invalid("malformed content-length"))?);
        } else if header.name.eq_ignore_ascii_case("connection") {
            let close = value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
            keep_alive &= !close;
        } else if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_vec());
        }
    }
    let framing = match (status.as_u16(), chunked, content_length) {
        (100..=199 | 204 | 304, _, _) => BodyFraming::Done,
        (_, true, _) => BodyFraming::Chunked(ChunkState::Size),
        (_, false, Some(length)) => BodyFraming::Length(length),
        (_, false, None) => BodyFraming::UntilClose,
    };
    let _ = buf.split_to(length);
    Ok(Some(ParsedHead {
        head: ResponseHead {
            status,
            content_type,
        },
        keep_alive: keep_alive && framing != BodyFraming::UntilClose,
        framing,
    }))
}

/// The last comma-separated token of a header value.
fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|b| *b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

fn cut_off(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("upstream closed the connection within the {what}"),
    )
}

/// Reads what the socket has into `buf`'s free room (renewed when short). A read that
/// leaves room means the socket is drained: Tokio then waits for the next readiness
/// instead of trying another read that would only say "would block".
fn poll_read(
    conn: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_BUFFER);
    }
    tokio_util::io::poll_read_buf(std::pin::Pin::new(conn), cx, buf)
}

/// A response body, read from its connection as it arrives.
#[derive(Debug)]
pub struct ResponseBody {
    /// `None` once the connection was handed back or closed.
    conn: Option<TcpStream>,
    buf: BytesMut,
    framing: BodyFraming,
    keep_alive: bool,
    pool: Weak<Pool>,
}

impl ResponseBody {
    /// The next piece of the body: `Ready(None)` at its end, `Pending` (the task is woken)
    /// when the socket has nothing yet.
    ///
    /// # Errors
    /// The socket's error; `UnexpectedEof` when the connection closed before the body's end;
    /// `InvalidData` for malformed chunk framing.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match self.framing.next_data(&mut self.buf) {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(None) if self.framing == BodyFraming::Done => return Poll::Ready(None),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            let Some(conn) = &mut self.conn else {
                return Poll::Ready(None);
            };
            match ready!(poll_read(conn, cx, &mut self.buf)) {
                Ok(0) if self.framing == BodyFraming::UntilClose => {
                    self.framing = BodyFraming::Done;
                    self.conn = None;
                }
                Ok(0) => return Poll::Ready(Some(Err(cut_off("response body")))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// The whole body, at most `limit` bytes.
    ///
    /// # Errors
    /// As [`ResponseBody::poll_data`]; `InvalidData` past `limit`.
    pub async fn collect(mut self, limit: usize) -> io::Result<Bytes> {
        let mut body = BytesMut::new();
        while let Some(data) = poll_fn(|cx| self.poll_data(cx)).await {
            let data = data?;
            if body.len() + data.len() > limit {
                return Err(invalid("body too large"));
            }
            body.extend_from_slice(&data);
        }
        Ok(body.freeze())
    }

    /// The caller read all it wanted: the connection goes back to the pool once the body's
    /// end arrived, waited for (for a while, on a task of its own) when it is not there yet.
    /// Any more data, or no end in time, closes it instead.
    pub fn release(mut self, cx: &mut Context<'_>) {
        if self.keep_alive && self.poll_data(cx).is_pending() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let end = poll_fn(|cx| self.poll_data(cx));
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, end).await;
                });
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let reusable = self.keep_alive && self.framing == BodyFraming::Done && self.buf.is_empty();
        if let (true, Some(conn), Some(pool)) = (reusable, self.conn.take(), self.pool.upgrade()) {
            pool.put(conn);
        }
    }
}

/// Idle keep-alive connections, the most recently used taken first.
#[derive(Debug)]
struct Pool {
    idle: Mutex<VecDeque<(TcpStream, Instant)>>,
    idle_timeout: Duration,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(TcpStream, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection that is still open.
    fn take(&self) -> Option<TcpStream> {
        let mut idle = self.lock();
        while let Some((conn, since)) = idle.pop_back() {
            // Tokio tries the read only when the socket was reported readable: a FIN (or
            // stray bytes) since the connection went idle; otherwise no syscall is made.
            let quiet = matches!(conn.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            if quiet && since.elapsed() < self.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: TcpStream) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push_back((conn, Instant::now()));
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    fn evict(&self) {
        let mut idle = self.lock();
        while idle
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= self.idle_timeout)
        {
            idle.pop_front();
        }
    }
}

/// Evicts idle connections every `every`, until the pool is dropped.
async fn evict_idle(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.evict(),
            None => return,
        }
    }
}
