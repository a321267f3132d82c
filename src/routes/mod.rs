//! Request routing and the endpoint handlers, one file per endpoint family.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod generation;
pub mod health;
pub mod models;
pub mod native;

use std::net::IpAddr;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::auth;
use crate::body::BoxBody;
use crate::error::Error;
use crate::limit::{Admission, Identity};
use crate::server::AppState;

/// Paths under this name one model: `/v1/models/{model}`.
const MODEL_PREFIX: &str = "/v1/models/";

/// The model id of a `/v1/models/{model}` path, percent-decoded (`/` and `:` may appear raw).
fn model_id(path: &str) -> Result<String, Error> {
    let raw = path.strip_prefix(MODEL_PREFIX).unwrap_or_default();
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| Error::invalid("the model id is not UTF-8", "model"))
}

/// When the request arrived (stamped by the server), or now.
pub fn arrival<B>(req: &Request<B>) -> tokio::time::Instant {
    req.extensions()
        .get::<crate::server::Arrival>()
        .map_or_else(tokio::time::Instant::now, |a| a.0)
}

/// A `200` response with `body` as JSON.
pub fn json_response<T: serde::Serialize>(body: &T) -> Response<BoxBody> {
    let json = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(crate::body::full(json));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The routes, each with a bounded name for logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v1/chat/completions`.
    ChatCompletions,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/models`.
    Models,
    /// `/v1/models/{model}`.
    Model,
    /// `/api/*`: Ollama's own API, passed through.
    Native,
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// The metrics path (`metrics.path`).
    Metrics,
    /// Anything else.
    Unknown,
}

impl Route {
    /// The route of `path`.
    pub fn of(state: &AppState, path: &str) -> Self {
        match path {
            "/v1/chat/completions" => Self::ChatCompletions,
            "/v1/completions" => Self::Completions,
            "/v1/embeddings" => Self::Embeddings,
            "/v1/models" => Self::Models,
            _ if path.len() > MODEL_PREFIX.len() && path.starts_with(MODEL_PREFIX) => Self::Model,
            _ if path.starts_with("/api/") => Self::Native,
            "/healthz" => Self::Healthz,
            "/readyz" => Self::Readyz,
            _ if path == state.config.metrics.path => Self::Metrics,
            _ => Self::Unknown,
        }
    }

    /// Whether a configured key is required: under `/v1/`, and for the probes and the
    /// metrics when `auth.protect_probes` / `auth.protect_metrics` say so.
    fn needs_key(self, state: &AppState, path: &str) -> bool {
        let auth = &state.config.auth;
        match self {
            Self::ChatCompletions
            | Self::Completions
            | Self::Embeddings
            | Self::Models
            | Self::Model
            | Self::Native => true,
            Self::Healthz | Self::Readyz => auth.protect_probes,
            Self::Metrics => auth.protect_metrics,
            Self::Unknown => path.starts_with("/v1/"),
        }
    }

    /// Whether the route is an API call the rate limits count.
    fn is_limited(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions
                | Self::Completions
                | Self::Embeddings
                | Self::Models
                | Self::Model
                | Self::Native
        )
    }

    /// Whether the request at `path` runs a generation, which takes concurrency slots.
    fn generates(self, path: &str) -> bool {
        match self {
            Self::ChatCompletions | Self::Completions | Self::Embeddings => true,
            Self::Native => native::operation(path).is_some(),
            _ => false,
        }
    }

    /// The route's name: its path, or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Models => "/v1/models",
            Self::Model => "/v1/models/{model}",
            Self::Native => "/api/*",
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::Metrics => "/metrics",
            Self::Unknown => "unknown",
        }
    }
}

/// Answers one request from `peer`: checks its key and limits, then routes it. Every
/// failure becomes an OpenAI-shaped error response; admitted responses carry the
/// `x-ratelimit-*` headers.
pub async fn handle(
    state: &AppState,
    route: Route,
    req: Request<Incoming>,
    peer: IpAddr,
) -> Response<BoxBody> {
    // The generation handlers' observers count their own requests; the rest is counted here.
    let is_observed = match route {
        Route::ChatCompletions | Route::Completions | Route::Embeddings => {
            req.method() == Method::POST
        }
        Route::Native => native::operation(req.uri().path()).is_some(),
        _ => false,
    };
    let (result, rate_headers, observed) = match admit(state, route, &req, peer).await {
        Err(e) => {
            tracing::info!(
                status = e.status().as_u16(),
                error = e.kind(),
                "request refused"
            );
            (Err(e), None, false)
        }
        Ok(admission) => {
            let rate_headers = admission.as_ref().map(Admission::headers);
            (
                dispatch(state, route, req, admission).await,
                rate_headers,
                is_observed,
            )
        }
    };
    let mut response = result.unwrap_or_else(Error::into_response);
    if let Some(headers) = rate_headers {
        headers.write_to(response.headers_mut());
    }
    if !observed {
        let class = crate::metrics::status_class(response.status().as_u16());
        state
            .metrics
            .requests
            .with_label_values(&[route.name(), "", class])
            .inc();
    }
    response
}

/// Calls the route's handler; only chat completions take the admission.
async fn dispatch(
    state: &AppState,
    route: Route,
    req: Request<Incoming>,
    admission: Option<Admission>,
) -> Result<Response<BoxBody>, Error> {
    match (route, req.method()) {
        (Route::ChatCompletions, &Method::POST) => {
            chat::chat_completions(state, req, admission).await
        }
        (Route::Completions, &Method::POST) => {
            completions::completions(state, req, admission).await
        }
        (Route::Embeddings, &Method::POST) => embeddings::embeddings(state, req, admission).await,
        (Route::Models, &Method::GET) => models::list(state).await,
        (Route::Model, &Method::GET) => {
            let id = model_id(req.uri().path())?;
            models::retrieve(state, &id).await
        }
        (Route::Native, _) => native::forward(state, req, admission).await,
        (Route::Healthz, &Method::GET) => Ok(health::healthz()),
        (Route::Readyz, &Method::GET) => Ok(health::readyz(state).await),
        (Route::Metrics, &Method::GET) => Ok(health::metrics(state)),
        (Route::Unknown, method) => Err(Error::UnknownRoute {
            what: format!("{method} {}", req.uri().path()),
        }),
        _ => Err(Error::MethodNotAllowed),
    }
}

/// Checks the request's key (when the route needs one and keys are configured) and, for
/// API routes, its limits. `None` for routes the limits do not count.
async fn admit(
    state: &AppState,
    route: Route,
    req: &Request<Incoming>,
    peer: IpAddr,
) -> Result<Option<Admission>, Error> {
    let identity = if state.keys.is_empty() || !route.needs_key(state, req.uri().path()) {
        Identity::Ip(peer)
    } else {
        let index = auth::authenticate(&state.keys, req.headers()).map_err(|failure| {
            state
                .metrics
                .auth_failures
                .with_label_values(&[failure.name()])
                .inc();
            Error::Unauthorized(failure)
        })?;
        if let Some(key) = state.keys.get(index) {
            tracing::Span::current().record("key", &*key.name);
        }
        Identity::Key(index)
    };
    if !route.is_limited() {
        return Ok(None);
    }
    let slots = route.generates(req.uri().path());
    let admission = state.limits.admit(identity, slots).await;
    admission
        .map(Some)
        .map_err(|rejection| state.refuse(rejection))
}

/// The request's `content-length`, when it has a valid one.
pub fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a whole request body of at most `limit` bytes.
///
/// # Errors
/// [`Error::BodyTooLarge`] past the limit (checked on `content-length` first);
/// [`Error::InvalidRequest`] when the body cannot be read.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Error> {
    if declared_length(&req).is_some_and(|len| len > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge { limit }),
        Err(e) => Err(Error::InvalidRequest {
            message: format!("could not read the request body: {e}"),
            param: None,
        }),
    }
}
