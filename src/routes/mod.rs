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

/// Answers one request. Every failure becomes an OpenAI-shaped error response.
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<BoxBody> {
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => chat::chat_completions(state, req).await,
        (_, "/v1/chat/completions") => Err(Error::MethodNotAllowed),
        (&Method::GET, "/healthz") => Ok(health::healthz()),
        (method, path) => Err(Error::UnknownRoute {
            what: format!("{method} {path}"),
        }),
    };
    result.unwrap_or_else(Error::into_response)
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
