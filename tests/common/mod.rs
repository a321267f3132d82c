//! Shared test harness: fake-ollama and the bridge, each on 127.0.0.1 port 0, with real HTTP
//! between them and to the test.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod binary;
pub mod scrape;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ollama_bridge::config::Config;
use ollama_bridge::fake_ollama::{FakeOllama, load_transcripts};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Transcripts recorded for this project, copied into the repository.
pub fn local_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recorded-local")
}

/// Public transcripts, read from `../shared/fixtures/ollama` (never copied into the repo).
pub fn shared_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/ollama")
}

/// Every `/api/chat` transcript, by name: the local recordings and the public `public-*` ones.
pub fn chat_transcripts() -> HashMap<String, Bytes> {
    let mut all = load_transcripts(&local_fixtures()).expect("tests/fixtures/recorded-local");
    let shared =
        load_transcripts(&shared_fixtures()).expect("../shared/fixtures/ollama beside the repo");
    all.extend(shared.into_iter().filter(|(name, body)| {
        name.starts_with("public-") && body.windows(10).any(|w| w == b"\"message\":")
    }));
    all
}

/// The public `/api/generate` transcripts (`response` lines), by name.
pub fn generate_transcripts() -> HashMap<String, Bytes> {
    let shared =
        load_transcripts(&shared_fixtures()).expect("../shared/fixtures/ollama beside the repo");
    shared
        .into_iter()
        .filter(|(_, body)| body.windows(11).any(|w| w == b"\"response\":"))
        .collect()
}

/// A running fake-ollama and bridge.
pub struct Harness {
    pub fake: FakeOllama,
    pub bridge: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Default configuration, all transcripts loaded.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`Harness::start`], with `configure` applied to the bridge's configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let mut transcripts = chat_transcripts();
        transcripts.extend(generate_transcripts());
        let fake = FakeOllama::start(transcripts)
            .await
            .expect("fake-ollama binds");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".to_owned();
        config.upstream.url = fake.url();
        config.server.shutdown_grace_ms = 1_000;
        configure(&mut config);
        let (bridge, shutdown, server) = start_bridge(config).await;
        Self {
            fake,
            bridge,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// `http://addr/v1`, for SDK clients.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.bridge)
    }

    /// Stops the bridge and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

/// Starts the bridge in-process with `config` (its `server.listen` is bound as given).
pub async fn start_bridge(
    config: Config,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let validated = config.validate().expect("valid test config");
    let listener = tokio::net::TcpListener::bind(validated.listen)
        .await
        .expect("bridge binds");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let run = ollama_bridge::server::run(listener, validated, async {
            let _ = rx.await;
        });
        run.await.expect("metrics register");
    });
    (addr, tx, server)
}

/// A whole HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The SSE events' `data:` payloads, checking the framing: every event is exactly one
    /// `data: …` line and a blank line (SSE comments are skipped).
    pub fn sse_data(&self) -> Vec<String> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "stream does not end with a blank line: {text:?}"
        );
        text.split("\n\n")
            .filter(|event| !event.is_empty() && !event.starts_with(':'))
            .map(|event| {
                let data = event
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {event:?}"));
                assert!(!data.contains('\n'), "multi-line event: {event:?}");
                data.to_owned()
            })
            .collect()
    }
}

impl Reply {
    /// The concatenated `delta.content` of a stream that completed: status 200, ending with
    /// `[DONE]`.
    pub fn streamed_content(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text());
        let data = self.sse_data();
        let (done, chunks) = data.split_last().expect("events");
        assert_eq!(done, "[DONE]", "{data:?}");
        chunks
            .iter()
            .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("chunk JSON"))
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// The `data:` payloads of an SSE stream that completed (status 200, last `[DONE]`), as
/// JSON, `[DONE]` left out.
pub fn sse_chunks(reply: &Reply) -> Vec<serde_json::Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = reply.sse_data();
    let (done, chunks) = data.split_last().expect("events");
    assert_eq!(done, "[DONE]", "{data:?}");
    chunks
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect()
}

/// The text fake-ollama's `synth` model writes for `tokens` tokens: `w0 w1 … `.
pub fn synth_text(tokens: usize) -> String {
    (0..tokens).map(|i| format!("w{i} ")).collect()
}

/// The same for a request with `options.seed` = `seed`: `s{seed}w0 s{seed}w1 … `.
pub fn seeded_synth_text(seed: i64, tokens: usize) -> String {
    (0..tokens).map(|i| format!("s{seed}w{i} ")).collect()
}

/// Reads `stream` until `marker` has appeared `count` times (5 s per read).
pub async fn read_until(stream: &mut TcpStream, marker: &[u8], count: usize) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.windows(marker.len()).filter(|w| *w == marker).count() < count {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("output arrives")
            .expect("read");
        assert!(n > 0, "stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// Sends one request over a fresh HTTP/1.1 connection and reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    request_with(addr, method, path, &[], body).await
}

/// As [`request`], with extra request headers.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    read_reply(start_request(addr, method, path, headers, body).await).await
}

/// Sends one request over a fresh HTTP/1.1 connection and returns once the response's
/// headers arrived; its body is left to read (see [`read_reply`]).
pub async fn start_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response<hyper::body::Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("response headers within 20 s")
        .expect("response")
}

/// Reads the rest of a response started with [`start_request`].
pub async fn read_reply(response: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("response body within 20 s")
        .expect("body")
        .to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat(addr: SocketAddr, body: &serde_json::Value) -> Reply {
    request(addr, "POST", "/v1/chat/completions", &body.to_string()).await
}

/// A minimal chat request body for `model`.
pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        "stream_options": if stream { serde_json::json!({"include_usage": true}) } else { serde_json::Value::Null },
    })
}

/// Sends a chat request over a raw TCP connection and returns the connection unread, so a
/// test can read part of the response and then close it like a client that goes away.
pub async fn send_raw_chat(addr: SocketAddr, body: &serde_json::Value) -> TcpStream {
    send_raw(addr, "/v1/chat/completions", body).await
}

/// As [`send_raw_chat`], a `POST` to any `path`.
pub async fn send_raw(addr: SocketAddr, path: &str, body: &serde_json::Value) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: bridge\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write request");
    stream
}

/// The bridge's `ollama_bridge_active_streams` gauge, scraped.
pub async fn active_streams(h: &Harness) -> f64 {
    let reply = request(h.bridge, "GET", "/metrics", "").await;
    scrape::sum(
        &scrape::parse(&reply.text()),
        "ollama_bridge_active_streams",
        &[],
    )
}

/// Polls `condition` every 20 ms for up to `within`; its last answer.
pub async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition().await
}

/// Reads one request (head and `content-length` body); `false` at end of stream.
pub async fn read_request(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// `http://127.0.0.1:<port>` where nothing listens.
pub async fn closed_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
