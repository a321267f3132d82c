//! Request routing and the endpoint handlers, one file per endpoint family.

pub mod chat;
pub mod health;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::BoxBody;
use crate::error::Error;
use crate::server::AppState;

/// The routes, each with a bounded name for logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v1/chat/completions`.
    ChatCompletions,
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
            "/healthz" => Self::Healthz,
            "/readyz" => Self::Readyz,
            _ if path == state.config.metrics.path => Self::Metrics,
            _ => Self::Unknown,
        }
    }

    /// The route's name: its path, or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::Metrics => "/metrics",
            Self::Unknown => "unknown",
        }
    }
}

/// Answers one request. Every failure becomes an OpenAI-shaped error response.
pub async fn handle(state: &AppState, route: Route, req: Request<Incoming>) -> Response<BoxBody> {
    let method = req.method();
    let observed = route == Route::ChatCompletions && method == Method::POST;
    let result = match (route, method) {
        (Route::ChatCompletions, &Method::POST) => chat::chat_completions(state, req).await,
        (Route::Healthz, &Method::GET) => Ok(health::healthz()),
        (Route::Readyz, &Method::GET) => Ok(health::readyz(state).await),
        (Route::Metrics, &Method::GET) => Ok(health::metrics(state)),
        (Route::Unknown, _) => Err(Error::UnknownRoute {
            what: format!("{method} {}", req.uri().path()),
        }),
        _ => Err(Error::MethodNotAllowed),
    };
    let response = result.unwrap_or_else(Error::into_response);
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

/// Reads a whole request body of at most `limit` bytes.
///
/// # Errors
/// [`Error::BodyTooLarge`] past the limit (checked on `content-length` first);
/// [`Error::InvalidRequest`] when the body cannot be read.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Error> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
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
