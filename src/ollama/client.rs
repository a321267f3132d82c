//! The upstream HTTP client: pooled keep-alive connections to one Ollama server, TCP_NODELAY.
//! Generation requests, the hot path, go through [`Connections`]; the others (model list,
//! embeddings, native passthrough) through hyper's pooled client.
//!
//! Dropping a response body before its end closes that connection, which is how a client's
//! disconnect stops Ollama's generation.
//!
//! A request whose connection fails before any byte of the response arrived (a pooled
//! connection Ollama closed, say after a restart) is sent once more, on a new connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::ollama::h1::{Connections, READ_BUFFER, ResponseBody};

/// Largest upstream error body read, in bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How long an upstream error body is waited for.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle keep-alive connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body sent to Ollama: a whole JSON body, or a client's body streamed through.
pub type UpstreamBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn whole(bytes: Bytes) -> UpstreamBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A pooled client for one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaClient {
    /// The generation requests' connections (the hot path).
    generations: Arc<Connections>,
    /// Every other request's.
    http: Client<HttpConnector, UpstreamBody>,
    /// Never reuses a connection: for the one retry.
    fresh: Client<HttpConnector, UpstreamBody>,
    base: String,
    response_timeout: Duration,
}

impl OllamaClient {
    /// A client for the server at `base` (`http://host:port[/prefix]`).
    pub fn new(base: &Uri, config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout()));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_read_buf_exact_size(READ_BUFFER);
        let http = builder.build(connector.clone());
        let fresh = builder.pool_max_idle_per_host(0).build(connector);
        Self {
            generations: Arc::new(Connections::new(
                base,
                config.connect_timeout(),
                POOL_IDLE_TIMEOUT,
            )),
            http,
            fresh,
            base: base.to_string().trim_end_matches('/').to_owned(),
            response_timeout: config.response_timeout(),
        }
    }

    /// `POST {base}{path}` with a JSON body, on the generation requests' own connections
    /// ([`Connections`]); returns the response body once the head arrived with a success
    /// status.
    ///
    /// # Errors
    /// [`Error::UpstreamUnreachable`] when no connection could be made or it broke before
    /// the headers; [`Error::UpstreamTimeout`] past `upstream.response_timeout_ms`;
    /// [`Error::UpstreamStatus`] with Ollama's status and `error` text for a non-2xx answer;
    /// [`Error::UpstreamStream`] (`upstream_malformed`) for a success whose `content-type`
    /// is neither NDJSON nor JSON (a proxy's HTML page, say).
    pub async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<ResponseBody, Error> {
        let exchange = self.generations.post_json(path, &body);
        let (head, body) = tokio::time::timeout(self.response_timeout, exchange)
            .await
            .map_err(|_| Error::UpstreamTimeout)?
            .map_err(|e| Error::UpstreamUnreachable(e.to_string()))?;
        if !head.status.is_success() {
            let text = tokio::time::timeout(ERROR_BODY_TIMEOUT, body.collect(MAX_ERROR_BODY));
            let text = match text.await {
                Ok(Ok(text)) => text,
                _ => Bytes::new(),
            };
            return Err(status_error(head.status, &text));
        }
        match head.content_type {
            Some(value) if !is_json_lines(&value) => Err(Error::UpstreamStream {
                message: format!(
                    "upstream answered with content-type {}, not an NDJSON stream",
                    String::from_utf8_lossy(&value)
                ),
                code: "upstream_malformed",
            }),
            _ => Ok(body),
        }
    }
}

/// Whether a `content-type` is one Ollama streams with: `application/x-ndjson` (a stream)
/// or `application/json` (one object), parameters aside.
fn is_json_lines(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    [
        "application/x-ndjson",
        "application/json",
        "application/jsonl",
    ]
    .iter()
    .any(|known| essence.eq_ignore_ascii_case(known.as_bytes()))
}

impl OllamaClient {
    /// `GET {base}{path}` and its whole body (at most 64 KiB), within `timeout`.
    ///
    /// # Errors
    /// As [`OllamaClient::fetch`].
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Bytes, Error> {
        self.fetch(Method::GET, path, None, timeout, MAX_ERROR_BODY)
            .await
    }

    /// `{method} {base}{path}`, with `json` as the body when given, and the whole answer (at
    /// most `limit` bytes), all within `timeout`.
    ///
    /// # Errors
    /// As [`OllamaClient::post_json`]; [`Error::UpstreamTimeout`] past `timeout`;
    /// [`Error::UpstreamUnreachable`] when the answer is over `limit` or breaks off.
    pub async fn fetch(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let uri = format!("{}{path}", self.base);
        let has_body = json.is_some();
        let body = json.map(Bytes::from).unwrap_or_default();
        let request = || {
            let mut request = Request::builder().method(method.clone()).uri(&uri);
            if has_body {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
            }
            request.body(whole(body.clone()))
        };
        let exchange = async {
            let response = self.send(request).await?;
            if !response.status().is_success() {
                return Err(read_status_error(response).await);
            }
            let body = Limited::new(response.into_body(), limit).collect().await;
            body.map(|c| c.to_bytes())
                .map_err(|e| Error::UpstreamUnreachable(e.to_string()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::UpstreamTimeout)?
    }
}

impl OllamaClient {
    /// Sends the request `build` makes; when its connection fails before the response
    /// head (not a failure to connect), builds it again and sends it on a new connection.
    async fn send(
        &self,
        build: impl Fn() -> http::Result<Request<UpstreamBody>>,
    ) -> Result<Response<Incoming>, Error> {
        let invalid = |e: http::Error| Error::UpstreamUnreachable(e.to_string());
        let unreachable =
            |e: hyper_util::client::legacy::Error| Error::UpstreamUnreachable(error_chain(&e));
        match self.http.request(build().map_err(invalid)?).await {
            Ok(response) => Ok(response),
            Err(e) if e.is_connect() => Err(unreachable(e)),
            Err(e) => {
                tracing::debug!(error = %error_chain(&e), "upstream connection failed before \
                    the response; sending the request once more on a new connection");
                let retry = build().map_err(invalid)?;
                self.fresh.request(retry).await.map_err(unreachable)
            }
        }
    }

    /// Sends `request` (its path and query relative to the base URL) as it is and returns
    /// Ollama's response, whatever its status, once its headers arrived.
    ///
    /// # Errors
    /// [`Error::UpstreamUnreachable`] when no connection could be made or it broke before
    /// the headers; [`Error::UpstreamTimeout`] past `upstream.response_timeout_ms`.
    pub async fn forward(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Error> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        *request.uri_mut() = format!("{}{path}", self.base)
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::UpstreamUnreachable(e.to_string()))?;
        tokio::time::timeout(self.response_timeout, self.http.request(request))
            .await
            .map_err(|_| Error::UpstreamTimeout)?
            .map_err(|e| Error::UpstreamUnreachable(error_chain(&e)))
    }
}

/// Reads Ollama's `{"error":"…"}` body into an [`Error::UpstreamStatus`].
async fn read_status_error(response: Response<Incoming>) -> Error {
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ERROR_BODY);
    let bytes = match tokio::time::timeout(ERROR_BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    status_error(status, &bytes)
}

/// Ollama's `{"error":"…"}` body (or whatever text came) as an [`Error::UpstreamStatus`];
/// a status that is not an error becomes 502.
fn status_error(status: StatusCode, bytes: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct OllamaError {
        error: String,
    }
    let message = match serde_json::from_slice::<OllamaError>(bytes) {
        Ok(e) => e.error,
        Err(_) if bytes.is_empty() => format!(
            "upstream answered {}",
            status.canonical_reason().unwrap_or(status.as_str())
        ),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let status = if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::BAD_GATEWAY
    };
    Error::UpstreamStatus { status, message }
}

/// An error and its sources, `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
