//! End-to-end load benchmark: K concurrent streaming clients through the bridge, and the
//! same clients reading fake-ollama directly (the physical limit), side by side.
//!
//! ```sh
//! cargo bench --bench load -- --k 1,100,1000,10000 --tokens 40 --rate 20 --delay-ms 0
//! ```
//!
//! fake-ollama runs in this process (synthetic tokens: `--tokens` per stream at `--rate`
//! tokens/s, first token after `--delay-ms`); the bridge is the release binary, a child
//! process, so its CPU time (`/proc/<pid>/stat`) and RSS (`/proc/<pid>/status`) are its
//! own. Per K it prints: TTFT p50/p99 and inter-token latency p99 per mode, the bridge's
//! additions (bridge minus direct), delivered tokens/s, bridge CPU seconds per million
//! tokens, bridge RSS with all K streams open and RSS per open stream. The open-files
//! limit is raised to its hard limit. Under `cargo test` (no `--bench`) it does nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ollama_bridge::fake_ollama::{FakeOllama, Synth};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Settings {
    ks: Vec<usize>,
    tokens: u32,
    rate: f64,
    delay_ms: u64,
}

fn settings() -> Settings {
    let mut s = Settings {
        ks: vec![1, 100, 1000, 10_000],
        tokens: 40,
        rate: 20.0,
        delay_ms: 0,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].as_str();
        match pair[0].as_str() {
            "--k" => s.ks = value.split(',').filter_map(|k| k.parse().ok()).collect(),
            "--tokens" => s.tokens = value.parse().unwrap_or(s.tokens),
            "--rate" => s.rate = value.parse().unwrap_or(s.rate),
            "--delay-ms" => s.delay_ms = value.parse().unwrap_or(s.delay_ms),
            _ => {}
        }
    }
    s
}

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    ttft: Option<Duration>,
    gaps: Vec<Duration>,
    tokens: usize,
    error: bool,
}

/// Streams one request and times its tokens: a token is one `"content":"w` in the body.
async fn client(addr: SocketAddr, path: &'static str, body: Bytes, start: Arc<Barrier>) -> Seen {
    let mut seen = Seen::default();
    let Ok(stream) = TcpStream::connect(addr).await else {
        seen.error = true;
        return seen;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        seen.error = true;
        return seen;
    };
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body));
    let Ok(request) = request else {
        seen.error = true;
        return seen;
    };
    start.wait().await;
    let sent = Instant::now();
    let Ok(response) = sender.send_request(request).await else {
        seen.error = true;
        return seen;
    };
    let mut body = response.into_body();
    let mut last = sent;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            seen.error = true;
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        let tokens = memchr::memmem::find_iter(&data, b"\"content\":\"w").count();
        if tokens == 0 {
            continue;
        }
        match seen.ttft {
            None => seen.ttft = Some(now - sent),
            Some(_) => seen.gaps.push(now - last),
        }
        seen.gaps
            .extend(std::iter::repeat_n(Duration::ZERO, tokens - 1));
        seen.tokens += tokens;
        last = now;
    }
    seen
}

/// One run of `k` clients against `addr`; `during` runs once every client has its first
/// token (to sample the bridge with all streams open).
async fn run(
    k: usize,
    addr: SocketAddr,
    path: &'static str,
    body: &Bytes,
    during: impl std::future::Future<Output = u64>,
) -> (Vec<Seen>, Duration, u64) {
    let start = Arc::new(Barrier::new(k + 1));
    let clients: Vec<_> = (0..k)
        .map(|_| tokio::spawn(client(addr, path, body.clone(), Arc::clone(&start))))
        .collect();
    start.wait().await;
    let began = Instant::now();
    let sampled = during.await;
    let mut all = Vec::with_capacity(k);
    for c in clients {
        all.push(c.await.unwrap_or(Seen {
            error: true,
            ..Seen::default()
        }));
    }
    (all, began.elapsed(), sampled)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let at = ((values.len() - 1) as f64 * p).round() as usize;
    values[at]
}

struct Summary {
    ttft_p50: f64,
    ttft_p99: f64,
    itl_p99: f64,
    tokens: usize,
    tokens_per_s: f64,
    errors: usize,
}

fn summarise(seen: &[Seen], elapsed: Duration) -> Summary {
    let mut ttft: Vec<f64> = seen
        .iter()
        .filter_map(|s| s.ttft)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    let mut gaps: Vec<f64> = seen
        .iter()
        .flat_map(|s| s.gaps.iter())
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    let tokens: usize = seen.iter().map(|s| s.tokens).sum();
    Summary {
        ttft_p50: percentile(&mut ttft, 0.5),
        ttft_p99: percentile(&mut ttft, 0.99),
        itl_p99: percentile(&mut gaps, 0.99),
        tokens,
        tokens_per_s: tokens as f64 / elapsed.as_secs_f64(),
        errors: seen.iter().filter(|s| s.error).count(),
    }
}

/// utime + stime of `pid`, in clock ticks (100 per second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are 11, 12.
    field(11) + field(12)
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start_bridge(upstream: &str) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-bridge"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("the bridge binary starts: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next_line().await.ok().flatten().unwrap_or_default();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split("/v1").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in the start line: {first}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let settings = settings();
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(bench(settings, limit));
}

async fn bench(s: Settings, nofile: u64) {
    let synth = Synth {
        tokens: s.tokens,
        rate: s.rate,
        pause_ms: s.delay_ms,
        ..Synth::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let fake = FakeOllama::spawn(listener, HashMap::new(), synth);
    let (bridge, bridge_addr) = start_bridge(&fake.url()).await;
    let pid = bridge.id().unwrap_or(0);
    eprintln!(
        "load: {} tokens/stream at {} tokens/s, first token after {} ms; open files limit {nofile}",
        s.tokens, s.rate, s.delay_ms
    );
    let chat = Bytes::from_static(
        br#"{"model":"synth","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let native = Bytes::from_static(
        br#"{"model":"synth","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    println_table_head();
    for &k in &s.ks {
        let (direct, direct_time, _) =
            run(k, fake.addr(), "/api/chat", &native, std::future::ready(0)).await;
        let direct = summarise(&direct, direct_time);
        let idle_rss = rss_kib(pid);
        let cpu_before = cpu_ticks(pid);
        let open_after = Duration::from_millis(s.delay_ms)
            + Duration::from_secs_f64(1.0 / s.rate.max(1.0))
            + Duration::from_millis(200 + k as u64 / 10);
        let sample = async move {
            tokio::time::sleep(open_after).await;
            rss_kib(pid)
        };
        let (bridged, bridge_time, open_rss) =
            run(k, bridge_addr, "/v1/chat/completions", &chat, sample).await;
        let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
        let bridged = summarise(&bridged, bridge_time);
        let cpu_per_m = cpu / (bridged.tokens as f64 / 1e6);
        let per_stream = (open_rss.saturating_sub(idle_rss)) as f64 / k as f64;
        row(k, "direct", &direct, None);
        row(
            k,
            "bridge",
            &bridged,
            Some((cpu_per_m, open_rss, per_stream)),
        );
        eprintln!(
            "K={k:>6}  added TTFT p50 {:+.3} ms, p99 {:+.3} ms; added ITL p99 {:+.3} ms",
            bridged.ttft_p50 - direct.ttft_p50,
            bridged.ttft_p99 - direct.ttft_p99,
            bridged.itl_p99 - direct.itl_p99
        );
    }
    drop(bridge);
}

fn println_table_head() {
    eprintln!(
        "{:>6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>12} {:>7}",
        "K",
        "mode",
        "TTFT p50",
        "TTFT p99",
        "ITL p99",
        "tokens",
        "tokens/s",
        "CPU s/Mt",
        "RSS MiB",
        "KiB/stream",
        "errors"
    );
}

fn row(k: usize, mode: &str, s: &Summary, bridge: Option<(f64, u64, f64)>) {
    let (cpu, rss, per) = match bridge {
        Some((cpu, rss, per)) => (
            format!("{cpu:.2}"),
            format!("{:.1}", rss as f64 / 1024.0),
            format!("{per:.1}"),
        ),
        None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
    };
    eprintln!(
        "{k:>6} {mode:>7} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>10} {:>12.0} {cpu:>10} {rss:>10} {per:>12} {:>7}",
        s.ttft_p50, s.ttft_p99, s.itl_p99, s.tokens, s.tokens_per_s, s.errors
    );
}
