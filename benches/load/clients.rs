//! The load: K streaming clients, on an HTTP/1.1 connection each or sharing HTTP/2
//! connections, and what they saw.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::Instant;

/// The key the clients send: LiteLLM's master key (it refuses to start without one); the
/// bridge runs without keys and ignores it.
pub const LOAD_KEY: &str = "sk-load0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// Where the clients send their requests.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: &'static str,
    pub body: Bytes,
}

/// How the K clients run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub k: usize,
    /// Streams per client, one after the other on its connection.
    pub rounds: usize,
    /// Client i starts its first stream `i / k` of this after the common start, so that
    /// streams arrive at a steady rate rather than all at once.
    pub ramp: Duration,
    /// A client gives up (and counts an error) after this long.
    pub timeout: Duration,
    /// 0: one HTTP/1.1 connection per client; n: HTTP/2 (prior knowledge), n clients'
    /// streams on each connection.
    pub h2_streams: usize,
}

/// A client's way to send requests.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> Option<http::Response<Incoming>> {
        match self {
            Self::H1(s) => {
                s.ready().await.ok()?;
                s.send_request(request).await.ok()
            }
            Self::H2(s) => {
                s.ready().await.ok()?;
                s.send_request(request).await.ok()
            }
        }
    }
}

/// What the clients saw, together.
#[derive(Debug, Default)]
pub struct Seen {
    /// Time to first token of each stream after a client's first, in ms (the server's
    /// connection pool is warm).
    pub ttft_ms: Vec<f64>,
    /// Time to first token of each client's first stream, in ms.
    pub cold_ttft_ms: Vec<f64>,
    /// Time between consecutive token-carrying reads of a stream, in ms (0 for further
    /// tokens in the same read).
    pub gaps_ms: Vec<f64>,
    pub tokens: usize,
    pub errors: usize,
}

/// Counts synthetic tokens (`w0 `, `w1 `, … in `content`) in a body read by read; a token
/// split between two reads counts in the second.
#[derive(Default)]
struct TokenCounter {
    /// The end of the previous read (up to one byte short of a whole marker), then the
    /// read being counted.
    carry: Vec<u8>,
}

impl TokenCounter {
    const MARKERS: [&[u8]; 2] = [b"\"content\":\"w", b"\"content\": \"w"];

    fn count(&mut self, data: &[u8]) -> usize {
        let carried = self.carry.len();
        self.carry.extend_from_slice(data);
        // A marker wholly inside the carried bytes was counted with the previous read.
        let count = Self::MARKERS
            .iter()
            .map(|m| {
                memchr::memmem::find_iter(&self.carry, m)
                    .filter(|&at| at + m.len() > carried)
                    .count()
            })
            .sum();
        let keep = Self::MARKERS[1].len() - 1;
        self.carry.drain(..self.carry.len().saturating_sub(keep));
        count
    }
}

async fn connect(addr: SocketAddr) -> Option<TokioIo<TcpStream>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    Some(TokioIo::new(stream))
}

async fn connect_h1(addr: SocketAddr) -> Option<Sender> {
    let (sender, conn) = hyper::client::conn::http1::handshake(connect(addr).await?)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(Sender::H1(sender))
}

async fn connect_h2(
    addr: SocketAddr,
) -> Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let io = connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One stream: sends the request, reads the body to its end, records its timings.
async fn stream(
    sender: &mut Sender,
    target: &Target,
    open: &AtomicUsize,
    seen: &mut Seen,
    cold: bool,
) -> Result<(), ()> {
    let request = http::Request::post(target.path)
        .header("host", target.addr.to_string())
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {LOAD_KEY}"))
        .body(Full::new(target.body.clone()))
        .map_err(drop)?;
    let sent = Instant::now();
    let response = sender.send(request).await.ok_or(())?;
    if !response.status().is_success() {
        return Err(());
    }
    open.fetch_add(1, Ordering::Relaxed);
    let result = read_tokens(response.into_body(), sent, seen, cold).await;
    open.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn read_tokens(
    mut body: Incoming,
    sent: Instant,
    seen: &mut Seen,
    cold: bool,
) -> Result<(), ()> {
    let mut last: Option<Instant> = None;
    let mut counter = TokenCounter::default();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(drop)?.into_data() else {
            continue;
        };
        let tokens = counter.count(&data);
        if tokens == 0 {
            continue;
        }
        let now = Instant::now();
        match last {
            None if cold => seen.cold_ttft_ms.push(ms(now - sent)),
            None => seen.ttft_ms.push(ms(now - sent)),
            Some(last) => seen.gaps_ms.push(ms(now - last)),
        }
        seen.gaps_ms.extend(std::iter::repeat_n(0.0, tokens - 1));
        seen.tokens += tokens;
        last = Some(now);
    }
    if last.is_none() {
        return Err(());
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One client: waits for the common start, then its offset, connects (or takes its shared
/// HTTP/2 connection, `Some(None)` when that failed) and streams.
async fn client(
    target: Arc<Target>,
    plan: Plan,
    i: usize,
    shared: Option<Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>>,
    ready: Arc<Barrier>,
    start: Arc<OnceLock<Instant>>,
    open: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen::default();
    ready.wait().await;
    let start = *start.get_or_init(Instant::now);
    let offset = plan.ramp.mul_f64(i as f64 / plan.k as f64);
    tokio::time::sleep_until(start + offset).await;
    // Connected when due: a connection left without a request past the server's header
    // timeout (the bridge's is 10 s) is closed.
    let sender = match shared {
        Some(sender) => sender.map(Sender::H2),
        None => connect_h1(target.addr).await,
    };
    let Some(mut sender) = sender else {
        seen.errors = plan.rounds;
        return seen;
    };
    let deadline = start + offset + plan.timeout;
    for round in 0..plan.rounds {
        let one = stream(&mut sender, &target, &open, &mut seen, round == 0);
        match tokio::time::timeout_at(deadline, one).await {
            Ok(Ok(())) => {}
            Ok(Err(())) => seen.errors += 1,
            Err(_) => {
                seen.errors += plan.rounds - round;
                break;
            }
        }
    }
    seen
}

/// Runs `plan` against `target`; `during(open)` runs alongside (to sample the server while
/// streams are open; `open` counts the streams open at the moment). Returns what the clients
/// saw, the time from the start to the last stream's end, and what `during` returned.
pub async fn run<F, Fut>(target: Target, plan: Plan, during: F) -> (Seen, Duration, Fut::Output)
where
    F: FnOnce(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future,
{
    let target = Arc::new(target);
    let ready = Arc::new(Barrier::new(plan.k + 1));
    let start = Arc::new(OnceLock::new());
    let open = Arc::new(AtomicUsize::new(0));
    let mut shared = Vec::new();
    if plan.h2_streams > 0 {
        for _ in 0..plan.k.div_ceil(plan.h2_streams) {
            shared.push(connect_h2(target.addr).await);
        }
    }
    let clients: Vec<_> = (0..plan.k)
        .map(|i| {
            let sender = shared.get(i / plan.h2_streams.max(1)).cloned();
            let client = client(
                Arc::clone(&target),
                plan,
                i,
                sender,
                Arc::clone(&ready),
                Arc::clone(&start),
                Arc::clone(&open),
            );
            tokio::spawn(client)
        })
        .collect();
    ready.wait().await;
    let began = *start.get_or_init(Instant::now);
    let sampled = during(Arc::clone(&open)).await;
    let mut all = Seen::default();
    for c in clients {
        let seen = c.await.unwrap_or(Seen {
            errors: plan.rounds,
            ..Seen::default()
        });
        all.ttft_ms.extend(seen.ttft_ms);
        all.cold_ttft_ms.extend(seen.cold_ttft_ms);
        all.gaps_ms.extend(seen.gaps_ms);
        all.tokens += seen.tokens;
        all.errors += seen.errors;
    }
    (all, began.elapsed(), sampled)
}

/// Whether `GET path` answers 2xx.
pub async fn get_ok(addr: SocketAddr, path: &str) -> bool {
    let Some(io) = connect(addr).await else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new());
    let Ok(request) = request else {
        return false;
    };
    matches!(sender.send_request(request).await, Ok(r) if r.status().is_success())
}
