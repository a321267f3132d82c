//! Soak: K concurrent streams through the bridge for a long time, with clients that leave
//! mid-stream and upstream faults mixed in; the bridge's RSS and open descriptors sampled
//! every 10 s.
//!
//! ```sh
//! cargo bench --bench soak -- --k 10000 --seconds 600
//! ```
//!
//! `--bridge-log FILTER` sets the bridge's `RUST_LOG` (default: info, with the per-stream
//! failure warnings off).
//!
//! fake-ollama and the bridge are release child processes (as in the load bench); K client
//! slots share HTTP/2 connections (100 streams each) and run streams back to back until
//! the time is up. Each stream is, by a fixed pseudo-random draw: healthy (90 %, 20 tokens at
//! 2 tokens/s: it must end with all 20 tokens and `[DONE]`); a client that leaves after a
//! random number of bytes (4 %); or an upstream fault after 5 tokens (6 %: an error line, a
//! dropped connection, a malformed line, invalid UTF-8), which must end with the 5 tokens
//! and one error event. Anything else is an unexpected error. Under `cargo test` (no
//! `--bench`) it does nothing.

#[path = "load/clients.rs"]
#[allow(dead_code, reason = "procs uses a part of it (LiteLLM's start)")]
mod clients;
#[path = "load/procs.rs"]
#[allow(dead_code, reason = "the soak starts fake-ollama and the bridge only")]
mod procs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

const STREAMS_PER_CONNECTION: usize = 100;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A stream that has not ended after this long is an unexpected error.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);
const HEALTHY: &str = "synth?tokens=20&rate=2";
const FAULTS: [&str; 4] = [
    "synth?tokens=20&rate=2&error_after=5",
    "synth?tokens=20&rate=2&drop_after=5",
    "synth?tokens=20&rate=2&malformed_after=5",
    "synth?tokens=20&rate=2&bad_utf8_after=5",
];

#[derive(Default)]
struct Counts {
    healthy: AtomicUsize,
    left: AtomicUsize,
    faults: AtomicUsize,
    unexpected: AtomicUsize,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(default)
    };
    let (k, seconds) = (arg("--k", 10_000) as usize, arg("--seconds", 600));
    // The expected stream failures are logged as warnings: errors only, for the streams.
    let log = args
        .windows(2)
        .find(|w| w[0] == "--bridge-log")
        .map_or("info,ollama_bridge::sse_body=error", |w| w[1].as_str())
        .to_owned();
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    eprintln!("soak: {k} streams for {seconds} s (open-files limit {nofile})");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(soak(k, Duration::from_secs(seconds), &log));
}

async fn soak(k: usize, length: Duration, log: &str) {
    let fake = procs::fake_ollama(20, 2.0, 0).await;
    let bridge = procs::bridge_logging(fake.addr, log).await;
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + length;
    let mut senders = Vec::new();
    for _ in 0..k.div_ceil(STREAMS_PER_CONNECTION) {
        senders.push(connect_h2(bridge.addr).await);
    }
    let slots: Vec<_> = (0..k)
        .map(|i| {
            let sender = senders[i / STREAMS_PER_CONNECTION].clone();
            let counts = Arc::clone(&counts);
            // Slots start spread over the first 10 s, so streams end at a steady rate.
            let first = start + SAMPLE_EVERY.mul_f64(i as f64 / k as f64);
            tokio::spawn(slot(sender, i as u64, first, end, counts))
        })
        .collect();
    eprintln!(
        "{:>6} {:>10} {:>8} {:>9} {:>6} {:>7} {:>10}",
        "t (s)", "RSS (KiB)", "fds", "healthy", "left", "faults", "unexpected"
    );
    let mut samples = Vec::new();
    let mut next = start + SAMPLE_EVERY;
    while next <= end {
        tokio::time::sleep_until(next).await;
        let sample = (procs::rss_kib(bridge.pid), open_fds(bridge.pid));
        let c = &counts;
        eprintln!(
            "{:>6} {:>10} {:>8} {:>9} {:>6} {:>7} {:>10}",
            (next - start).as_secs(),
            sample.0,
            sample.1,
            c.healthy.load(Ordering::Relaxed),
            c.left.load(Ordering::Relaxed),
            c.faults.load(Ordering::Relaxed),
            c.unexpected.load(Ordering::Relaxed)
        );
        samples.push(sample);
        next += SAMPLE_EVERY;
    }
    for slot in slots {
        let _ = slot.await;
    }
    summary(&samples, &counts);
}

/// Spread of the samples after the first minute (warm-up), as (min, max, (max-min)/min %).
fn spread(values: impl Iterator<Item = u64>) -> Option<(u64, u64, f64)> {
    let values: Vec<u64> = values.collect();
    let (min, max) = (*values.iter().min()?, *values.iter().max()?);
    Some((min, max, (max - min) as f64 * 100.0 / min.max(1) as f64))
}

fn summary(samples: &[(u64, usize)], counts: &Counts) {
    let warm = samples.iter().skip(6);
    let rss = spread(warm.clone().map(|s| s.0));
    let fds = spread(warm.map(|s| s.1 as u64));
    if let (Some(rss), Some(fds)) = (rss, fds) {
        eprintln!(
            "after warm-up (60 s): RSS {}-{} KiB (spread {:.1} %), descriptors {}-{} (spread {:.1} %)",
            rss.0, rss.1, rss.2, fds.0, fds.1, fds.2
        );
    }
    eprintln!(
        "streams: {} healthy completed, {} left by their client, {} upstream faults ended with \
         an error event, {} unexpected",
        counts.healthy.load(Ordering::Relaxed),
        counts.left.load(Ordering::Relaxed),
        counts.faults.load(Ordering::Relaxed),
        counts.unexpected.load(Ordering::Relaxed)
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

async fn connect_h2(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("h2 handshake: {e}"));
    tokio::spawn(conn);
    sender
}

/// xorshift64: the draws are the same on every run.
fn draw(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One client slot: streams back to back from `first` until `end`.
async fn slot(mut sender: H2, seed: u64, first: Instant, end: Instant, counts: Arc<Counts>) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    tokio::time::sleep_until(first).await;
    while Instant::now() < end {
        let roll = draw(&mut state) % 100;
        let (model, leave_after) = match roll {
            0..90 => (HEALTHY, None),
            90..94 => (HEALTHY, Some((draw(&mut state) % 4_000) as usize)),
            _ => (FAULTS[(roll % 4) as usize], None),
        };
        let outcome =
            tokio::time::timeout(STREAM_TIMEOUT, one_stream(&mut sender, model, leave_after)).await;
        let counter = match (outcome, leave_after, model == HEALTHY) {
            (Ok(Some(Ended::Left)), Some(_), _) => &counts.left,
            (Ok(Some(Ended::Done(20))), None, true) => &counts.healthy,
            (Ok(Some(Ended::Error(5))), None, false) => &counts.faults,
            (other, _, _) => {
                if counts.unexpected.fetch_add(1, Ordering::Relaxed) < 10 {
                    eprintln!("unexpected: {model} -> {other:?}");
                }
                &counts.unexpected
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum Ended {
    /// `[DONE]` after this many tokens.
    Done(usize),
    /// An error event after this many tokens.
    Error(usize),
    /// The client left.
    Left,
    /// Anything else: the status, and the end of what was read (shown when unexpected).
    Other(
        #[allow(dead_code, reason = "printed")] u16,
        #[allow(dead_code, reason = "printed")] String,
    ),
}

/// Streams `model`; with `leave_after`, reads about that many bytes and goes away.
async fn one_stream(sender: &mut H2, model: &str, leave_after: Option<usize>) -> Option<Ended> {
    let body = serde_json::json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let request = http::Request::post("http://bridge/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .ok()?;
    sender.ready().await.ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            seen.extend_from_slice(&data);
        }
        if leave_after.is_some_and(|n| seen.len() >= n) {
            return Some(Ended::Left);
        }
    }
    let tokens = memchr::memmem::find_iter(&seen, b"\"content\":\"w").count();
    let text = String::from_utf8_lossy(&seen);
    Some(if status != 200 {
        Ended::Other(status, text.chars().rev().take(200).collect())
    } else if text.ends_with("data: [DONE]\n\n") {
        Ended::Done(tokens)
    } else if text.ends_with("}}\n\n")
        && text
            .rsplit("data: ")
            .next()
            .is_some_and(|e| e.starts_with("{\"error\":"))
    {
        Ended::Error(tokens)
    } else {
        Ended::Other(status, text.chars().rev().take(200).collect())
    })
}
