//! End-to-end load benchmark: K concurrent streaming clients reading fake-ollama directly
//! (the physical limit), through the bridge, and optionally through LiteLLM's proxy.
//!
//! ```sh
//! cargo bench --bench load -- --k 1,100,1000,10000 --tokens 200 --rate 20
//! scripts/bench-litellm --k 1,100,1000      # the same, with LiteLLM beside (installs it)
//! ```
//!
//! fake-ollama, the bridge and LiteLLM are release child processes, so each one's CPU time
//! (`/proc/<pid>/stat`) and RSS (`/proc/<pid>/status`) are its own; the clients run here.
//! Each client opens one connection and runs `--rounds` streams on it back to back; client
//! i starts `i / K` of one stream's duration after the common start, so streams arrive at
//! a steady rate and about K are open at once from then on (no thundering herd). Per K and
//! mode it prints the TTFT of the clients' first streams (p50; the server has an upstream
//! connection to open) and of the later ones (p50, p99), inter-token latency p99, delivered
//! tokens/s, the serving process's CPU seconds per million tokens, its RSS with the streams
//! open and RSS per open stream; then the bridge's additions over direct and LiteLLM's
//! ratios to the bridge. Last, one unthrottled stream of `--throughput-tokens` per mode.
//! The open-files limit is raised. Under `cargo test` (no `--bench`) it does nothing.

mod clients;
mod procs;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clients::{Plan, Seen, Target};
use procs::Server;

/// Streams per HTTP/2 connection when the clients multiplex (below the bridge's limit of
/// concurrent streams per connection).
const H2_STREAMS: usize = 100;

#[derive(Debug, Clone)]
struct Settings {
    ks: Vec<usize>,
    tokens: u32,
    rate: f64,
    delay_ms: u64,
    rounds: usize,
    /// Tokens per second over all K streams at most (the machine's share for the upstream,
    /// the bridge and the clients); past it, a stream's rate and length are scaled down
    /// together, so that a stream lasts as long at every K.
    max_total_rate: f64,
    throughput_tokens: u32,
    litellm: Option<PathBuf>,
    litellm_max_k: usize,
}

fn settings() -> Settings {
    let mut s = Settings {
        ks: vec![1, 100, 1000, 10_000],
        tokens: 200,
        rate: 20.0,
        delay_ms: 0,
        rounds: 2,
        max_total_rate: 20_000.0,
        throughput_tokens: 200_000,
        litellm: None,
        litellm_max_k: 1000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = pair[1].as_str();
        match pair[0].as_str() {
            "--k" => {
                s.ks = value
                    .split(',')
                    .filter_map(|k| k.parse().ok())
                    .filter(|&k| k > 0)
                    .collect();
            }
            "--tokens" => s.tokens = value.parse().unwrap_or(s.tokens),
            "--rate" => s.rate = value.parse().unwrap_or(s.rate),
            "--delay-ms" => s.delay_ms = value.parse().unwrap_or(s.delay_ms),
            "--rounds" => s.rounds = value.parse().unwrap_or(s.rounds).max(1),
            "--max-total-rate" => s.max_total_rate = value.parse().unwrap_or(s.max_total_rate),
            "--throughput-tokens" => {
                s.throughput_tokens = value.parse().unwrap_or(s.throughput_tokens);
            }
            "--litellm" => s.litellm = Some(PathBuf::from(value)),
            "--litellm-max-k" => s.litellm_max_k = value.parse().unwrap_or(s.litellm_max_k),
            _ => {}
        }
    }
    s
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let settings = settings();
    let nofile = raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(bench(settings, nofile));
}

/// Raises the open-files limit (children inherit it): to 65,536 where allowed, else to the
/// hard limit.
fn raise_open_files() -> u64 {
    const WANTED: u64 = 65_536;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, WANTED, WANTED).is_ok() {
        return WANTED;
    }
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// One way to reach the model: its name, the server whose CPU and RSS count, and where the
/// clients send.
struct Mode<'a> {
    name: &'static str,
    server: &'a Server,
    path: &'static str,
}

/// What one mode did under one load.
struct Row {
    /// TTFT of a client's first stream, when the server opens its upstream connection.
    cold_ttft_p50: f64,
    ttft_p50: f64,
    ttft_p99: f64,
    itl_p99: f64,
    tokens: usize,
    tokens_per_s: f64,
    /// Tokens per second of streaming, first token to last (summed over streams).
    streaming_tokens_per_s: f64,
    cpu_per_mtok: f64,
    rss_mib: f64,
    kib_per_stream: f64,
    open: usize,
    errors: usize,
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn body(model: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#
    ))
}

/// Runs `plan` on `mode`, sampling the server `sample_after` the start.
async fn measure(mode: &Mode<'_>, model: &str, plan: Plan, sample_after: Duration) -> Row {
    let pid = mode.server.pid;
    let target = Target {
        addr: mode.server.addr,
        path: mode.path,
        body: body(model),
    };
    let idle_rss = procs::rss_kib(pid);
    let cpu_before = procs::cpu_seconds(pid);
    let sample = |open: Arc<AtomicUsize>| async move {
        tokio::time::sleep(sample_after).await;
        (procs::rss_kib(pid), open.load(Ordering::Relaxed))
    };
    let (mut seen, elapsed, (rss, open)) = clients::run(target, plan, sample).await;
    let cpu = procs::cpu_seconds(pid) - cpu_before;
    row(&mut seen, elapsed, cpu, idle_rss, rss, open)
}

fn row(seen: &mut Seen, elapsed: Duration, cpu: f64, idle_rss: u64, rss: u64, open: usize) -> Row {
    Row {
        cold_ttft_p50: percentile(&mut seen.cold_ttft_ms, 0.5),
        ttft_p50: percentile(&mut seen.ttft_ms, 0.5),
        ttft_p99: percentile(&mut seen.ttft_ms, 0.99),
        itl_p99: percentile(&mut seen.gaps_ms, 0.99),
        tokens: seen.tokens,
        tokens_per_s: seen.tokens as f64 / elapsed.as_secs_f64(),
        streaming_tokens_per_s: seen.tokens as f64 / (seen.gaps_ms.iter().sum::<f64>() / 1e3),
        cpu_per_mtok: cpu / (seen.tokens.max(1) as f64 / 1e6),
        rss_mib: rss as f64 / 1024.0,
        kib_per_stream: rss.saturating_sub(idle_rss) as f64 / open.max(1) as f64,
        open,
        errors: seen.errors,
    }
}

async fn bench(s: Settings, nofile: u64) {
    let fake = procs::fake_ollama(s.tokens, s.rate, s.delay_ms).await;
    let bridge = procs::bridge(fake.addr).await;
    let fast_model = format!("synth?tokens={}&rate=0", s.throughput_tokens);
    let litellm = match &s.litellm {
        Some(path) => {
            let port = free_port().await;
            let mut models: Vec<String> = s.ks.iter().map(|&k| stream_for(&s, k).0).collect();
            models.push(fast_model.clone());
            models.sort();
            models.dedup();
            let models: Vec<&str> = models.iter().map(String::as_str).collect();
            Some(procs::litellm(path, fake.addr, port, &models).await)
        }
        None => None,
    };
    let mut modes = vec![
        Mode {
            name: "direct",
            server: &fake,
            path: "/api/chat",
        },
        Mode {
            name: "bridge",
            server: &bridge,
            path: "/v1/chat/completions",
        },
    ];
    if let Some(litellm) = &litellm {
        modes.push(Mode {
            name: "litellm",
            server: litellm,
            path: "/v1/chat/completions",
        });
    }
    eprintln!(
        "load: {} tokens/stream at {} tokens/s, first token after {} ms, {} streams per client; \
         open files limit {nofile}; CPU and RSS are the serving process's (direct: fake-ollama)",
        s.tokens, s.rate, s.delay_ms, s.rounds
    );
    let stream_time = Duration::from_millis(s.delay_ms)
        + Duration::from_secs_f64(f64::from(s.tokens) / s.rate.max(f64::MIN_POSITIVE));
    let stream_time = stream_time.min(Duration::from_secs(600));
    print_head();
    for &k in &s.ks {
        let (model, rate) = stream_for(&s, k);
        if rate < s.rate {
            eprintln!("K={k}: {rate} tokens/s per stream (model {model})");
        }
        // A few warm streams to time even with a single client.
        let rounds = if k < 10 { s.rounds.max(4) } else { s.rounds };
        let plan = Plan {
            k,
            rounds,
            ramp: stream_time,
            timeout: stream_time * (rounds as u32 + 1) + Duration::from_secs(60),
            h2_streams: 0,
        };
        let mut rows = Vec::new();
        for mode in &modes {
            if mode.name == "litellm" && k > s.litellm_max_k {
                continue;
            }
            let mut plan = plan;
            if mode.name != "direct" && 2 * k as u64 + 64 > nofile {
                // Two descriptors per stream (client and upstream) would pass the limit:
                // the clients multiplex their streams over HTTP/2 instead.
                plan.h2_streams = H2_STREAMS;
                eprintln!(
                    "K={k}: {} clients use HTTP/2, {H2_STREAMS} streams per connection",
                    mode.name
                );
            }
            let row = measure(mode, &model, plan, stream_time.mul_f64(1.5)).await;
            print_row(k, mode.name, &row);
            rows.push((mode.name, row));
        }
        print_comparison(k, &rows);
    }
    if s.throughput_tokens > 0 {
        eprintln!(
            "one unthrottled stream of {} tokens (tokens/s from its first token to its last):",
            s.throughput_tokens
        );
        let plan = Plan {
            k: 1,
            rounds: 1,
            ramp: Duration::ZERO,
            timeout: Duration::from_secs(300),
            h2_streams: 0,
        };
        for mode in &modes {
            let mut row = measure(mode, &fast_model, plan, Duration::ZERO).await;
            row.tokens_per_s = row.streaming_tokens_per_s;
            print_row(1, mode.name, &row);
        }
    }
}

/// The model to ask for at `k` streams, and its tokens per second: `synth` (fake-ollama's
/// defaults) unless K streams at the full rate pass `max_total_rate`.
fn stream_for(s: &Settings, k: usize) -> (String, f64) {
    let rate = s.rate.min(s.max_total_rate / k as f64);
    if rate >= s.rate {
        return ("synth".to_owned(), s.rate);
    }
    let tokens = (f64::from(s.tokens) * rate / s.rate).round().max(1.0);
    (format!("synth?tokens={tokens}&rate={rate}"), rate)
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    listener.local_addr().map_or(0, |a| a.port())
}

fn print_head() {
    eprintln!(
        "{:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>10} {:>9} {:>8} {:>10} {:>6} {:>6}",
        "K",
        "mode",
        "cold TTFT",
        "TTFT p50",
        "TTFT p99",
        "ITL p99",
        "tokens",
        "tokens/s",
        "CPU s/Mt",
        "RSS MiB",
        "KiB/stream",
        "open",
        "errors"
    );
}

fn print_row(k: usize, mode: &str, r: &Row) {
    eprintln!(
        "{k:>6} {mode:>8} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>9} {:>10.0} {:>9.2} {:>8.1} {:>10.1} {:>6} {:>6}",
        r.cold_ttft_p50,
        r.ttft_p50,
        r.ttft_p99,
        r.itl_p99,
        r.tokens,
        r.tokens_per_s,
        r.cpu_per_mtok,
        r.rss_mib,
        r.kib_per_stream,
        r.open,
        r.errors
    );
}

fn print_comparison(k: usize, rows: &[(&str, Row)]) {
    let find = |name: &str| rows.iter().find(|(n, _)| *n == name).map(|(_, r)| r);
    let (Some(direct), Some(bridge)) = (find("direct"), find("bridge")) else {
        return;
    };
    eprintln!(
        "K={k}: bridge adds TTFT p50 {:+.3} ms, p99 {:+.3} ms, ITL p99 {:+.3} ms",
        bridge.ttft_p50 - direct.ttft_p50,
        bridge.ttft_p99 - direct.ttft_p99,
        bridge.itl_p99 - direct.itl_p99
    );
    if let Some(litellm) = find("litellm") {
        eprintln!(
            "K={k}: LiteLLM / bridge: CPU per token x{:.1}, TTFT p50 x{:.1}, p99 x{:.1}, RSS x{:.1}",
            litellm.cpu_per_mtok / bridge.cpu_per_mtok,
            litellm.ttft_p50 / bridge.ttft_p50,
            litellm.ttft_p99 / bridge.ttft_p99,
            litellm.rss_mib / bridge.rss_mib
        );
    }
}
