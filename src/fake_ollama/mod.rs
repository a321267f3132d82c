//! A deterministic Ollama stand-in, for tests, benchmarks and demos.
//!
//! It serves `POST /api/chat`, `POST /api/generate`, `POST /api/embed`, `GET /api/tags`,
//! `POST /api/show` and `GET /api/version`.
//! Its models are its transcripts, `synth`, and any name [`FakeOllama::install`]ed. The
//! `model` of a chat or generate request picks the answer:
//! - the name of a loaded transcript (file stem, e.g. `plain_stop`): that transcript is
//!   replayed, one write per line (`name?chunk_bytes=N&gap_ms=M` splits and paces it);
//! - `synth` or `synth?key=value&…`: a synthetic stream, see [`Synth`] for the keys; the
//!   request's `options.seed` and `logprobs` shape it too, see [`script::Ask`]
//!   (token count and rate, thinking, a tool call, delay, faults, an error status);
//! - anything else: `404 {"error":"model '…' not found"}`, as Ollama answers.
//!
//! Every request is recorded ([`RequestRecord`]): its body, and when its connection closed.

pub mod catalog;
pub mod script;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use script::Step;
pub use script::Synth;

/// One chat, generate or embed request fake-ollama received.
#[derive(Debug)]
pub struct RequestRecord {
    /// The model asked for, as sent.
    pub model: String,
    /// The whole request body.
    pub body: serde_json::Value,
    /// When the request arrived.
    pub received: Instant,
    closed: watch::Receiver<Option<Instant>>,
}

impl RequestRecord {
    /// When the request's connection closed, waiting up to `timeout` for it.
    pub async fn wait_closed(&self, timeout: Duration) -> Option<Instant> {
        let mut closed = self.closed.clone();
        let waited = tokio::time::timeout(timeout, closed.wait_for(Option::is_some)).await;
        waited.ok().and_then(|r| r.ok().and_then(|v| *v))
    }
}

#[derive(Debug, Default)]
struct Shared {
    transcripts: HashMap<String, Bytes>,
    synth: Synth,
    requests: Mutex<Vec<Arc<RequestRecord>>>,
    installed: Mutex<Vec<String>>,
    open_streams: Arc<AtomicUsize>,
    open_connections: Arc<AtomicUsize>,
    streamed_bytes: Arc<AtomicUsize>,
}

/// A running fake-ollama.
#[derive(Debug, Clone)]
pub struct FakeOllama {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeOllama {
    /// Serves on `listener` in a background task with `transcripts` (name -> NDJSON body) and
    /// `synth` as the defaults of synthetic streams.
    pub fn spawn(listener: TcpListener, transcripts: HashMap<String, Bytes>, synth: Synth) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let shared = Arc::new(Shared {
            transcripts,
            synth,
            requests: Mutex::new(Vec::new()),
            installed: Mutex::new(Vec::new()),
            open_streams: Arc::default(),
            open_connections: Arc::default(),
            streamed_bytes: Arc::default(),
        });
        tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { addr, shared }
    }

    /// Starts on `127.0.0.1:0`.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(transcripts: HashMap<String, Bytes>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Ok(Self::spawn(listener, transcripts, Synth::default()))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a model by name to `/api/tags` and `/api/show` (its `modified_at` is
    /// [`catalog::INSTALLED_AT`]).
    pub fn install(&self, name: &str) {
        lock(&self.shared.installed).push(name.to_owned());
    }

    /// Streamed responses (chat or generate) not yet finished or dropped.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Bytes of streamed responses handed to the connections so far.
    pub fn streamed_bytes(&self) -> usize {
        self.shared.streamed_bytes.load(Ordering::SeqCst)
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// Every chat, generate and embed request received so far, oldest first.
    pub fn requests(&self) -> Vec<Arc<RequestRecord>> {
        lock(&self.shared.requests).clone()
    }

    /// The latest chat, generate or embed request whose model starts with `prefix`.
    pub fn last_request(&self, prefix: &str) -> Option<Arc<RequestRecord>> {
        lock(&self.shared.requests)
            .iter()
            .rev()
            .find(|r| r.model.starts_with(prefix))
            .cloned()
    }
}

/// Loads every `*.ndjson` file of `dir`, keyed by file stem.
///
/// # Errors
/// When the folder or a file cannot be read.
pub fn load_transcripts(dir: &Path) -> std::io::Result<HashMap<String, Bytes>> {
    let mut transcripts = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                transcripts.insert(stem.to_owned(), Bytes::from(std::fs::read(&path)?));
            }
        }
    }
    Ok(transcripts)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let connection = Counted::new(&shared.open_connections);
        tokio::spawn(async move {
            let _connection = connection;
            let (closed_tx, closed_rx) = watch::channel(None);
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                let closed = closed_rx.clone();
                async move { Ok::<_, Infallible>(answer(&shared, req, closed).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            let _ = closed_tx.send(Some(Instant::now()));
        });
    }
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<FakeBody> {
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

async fn answer(
    shared: &Shared,
    req: Request<Incoming>,
    closed: watch::Receiver<Option<Instant>>,
) -> Response<FakeBody> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/api/version") => json_response(
            StatusCode::OK,
            &serde_json::json!({"version": "0.0.0-fake"}),
        ),
        ("GET", "/api/tags") => {
            let (status, body) = catalog::tags(shared);
            json_response(status, &body)
        }
        ("POST", "/api/show") => {
            let bytes = req.into_body().collect().await.map(|c| c.to_bytes());
            let (status, body) = catalog::show(shared, &bytes.unwrap_or_default());
            json_response(status, &body)
        }
        ("POST", "/api/chat") => generation(shared, req, closed, false).await,
        ("POST", "/api/generate") => generation(shared, req, closed, true).await,
        ("POST", "/api/embed") => {
            let body = record(shared, req, closed).await;
            let (status, answer) = catalog::embed(shared, &body);
            json_response(status, &answer)
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "404 page not found"}),
        ),
    }
}

/// Reads a request's JSON body and records it; returns the body.
async fn record(
    shared: &Shared,
    req: Request<Incoming>,
    closed: watch::Receiver<Option<Instant>>,
) -> serde_json::Value {
    let received = Instant::now();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    lock(&shared.requests).push(Arc::new(RequestRecord {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        body: body.clone(),
        received,
        closed,
    }));
    body
}

/// `/api/chat`, or `/api/generate` when `generate`.
async fn generation(
    shared: &Shared,
    req: Request<Incoming>,
    closed: watch::Receiver<Option<Instant>>,
    generate: bool,
) -> Response<FakeBody> {
    let body = record(shared, req, closed).await;
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let (name, query) = model.split_once('?').unwrap_or((&model, ""));
    let mut content_type = None;
    let steps = if let Some(transcript) = shared.transcripts.get(name) {
        let params: HashMap<&str, u64> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let chunk_bytes = params.get("chunk_bytes").copied().unwrap_or(0) as usize;
        let gap = Duration::from_millis(params.get("gap_ms").copied().unwrap_or(0));
        script::replay(transcript, chunk_bytes, gap)
    } else if name == "synth" {
        match shared.synth.clone().with_query(query) {
            Ok(synth) => {
                if synth.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(synth.delay_ms)).await;
                }
                let ask = script::Ask::of(&body, generate);
                if let Some(status) = synth.status.filter(|_| synth.faulty(ask)) {
                    tokio::time::sleep(Duration::from_millis(synth.status_delay_ms)).await;
                    let status =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return json_response(
                        status,
                        &serde_json::json!({"error": "synthetic status"}),
                    );
                }
                content_type = synth.content_type.clone();
                synth.steps(name, ask)
            }
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": e }));
            }
        }
    } else {
        let error = format!("model '{model}' not found");
        return json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": error }),
        );
    };
    if body["stream"] == serde_json::Value::Bool(false) {
        // Ollama's non-streaming answer: one object, with a content-length.
        return json_response(StatusCode::OK, &script::whole(&steps));
    }
    let content_type = content_type.as_deref().unwrap_or("application/x-ndjson");
    let body = ChannelBody {
        rx: stream_steps(steps),
        sent: Arc::clone(&shared.streamed_bytes),
        _open: Counted::new(&shared.open_streams),
    };
    let mut response = Response::new(body.boxed());
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

/// Counts something (a streamed body, a connection) while it exists.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends `steps` from a task; the task stops when the receiver is gone.
fn stream_steps(steps: Vec<Step>) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Drop => {
                    let _ = tx.send(Err(std::io::Error::other("injected drop"))).await;
                    return;
                }
                Step::Stall => {
                    tx.closed().await;
                    return;
                }
            }
        }
    });
    rx
}

/// A body fed by a channel; an `Err` item aborts the connection.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    sent: Arc<AtomicUsize>,
    _open: Counted,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let item = std::task::ready!(self.rx.poll_recv(cx));
        if let Some(Ok(bytes)) = &item {
            self.sent.fetch_add(bytes.len(), Ordering::SeqCst);
        }
        Poll::Ready(item.map(|r| r.map(Frame::data)))
    }
}
