//! Errors: [`Error`] for anything that fails a request before its response starts, rendered
//! as OpenAI's error body; [`ConfigError`] for start-up.
//!
//! Source: OpenAI API reference, "Error codes"; the body is
//! `{"error":{"message":…,"type":…,"param":…,"code":…}}`.

use http::StatusCode;
use serde::Serialize;

use crate::auth::AuthFailure;
use crate::body::{BoxBody, full};
use crate::limit::{LimitKind, Rejection};

/// A request-time failure, answered before any response byte was sent.
#[derive(Debug)]
pub enum Error {
    /// The request is malformed: bad JSON, a wrong type, an unsupported value. 400.
    InvalidRequest {
        /// What is wrong, for a person.
        message: String,
        /// The request field at fault, as a path (`messages[0].content`), when known.
        param: Option<String>,
    },
    /// The request body is over `server.max_body_bytes`. 413.
    BodyTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// No such route. 404.
    UnknownRoute {
        /// The method and path asked for.
        what: String,
    },
    /// The route exists but not for this method. 405.
    MethodNotAllowed,
    /// A native `/api/*` path outside `native.allowed_paths`. 403.
    Forbidden {
        /// The path asked for.
        path: String,
    },
    /// No API key, or not a configured one. 401, with `www-authenticate: Bearer`.
    Unauthorized(AuthFailure),
    /// A rate limit or concurrency cap refused the request. 429, with `retry-after` and
    /// the `x-ratelimit-*` headers.
    RateLimited(Box<Rejection>),
    /// Ollama could not be reached (connect failure, reset before headers). 502.
    UpstreamUnreachable(String),
    /// Ollama did not answer within `upstream.response_timeout_ms`. 504.
    UpstreamTimeout,
    /// Ollama answered with a non-success status; the status is kept and its message passed on.
    UpstreamStatus {
        /// Ollama's HTTP status.
        status: StatusCode,
        /// Ollama's `error` text, or the raw body when it is not JSON.
        message: String,
    },
    /// Ollama's stream failed before a non-streaming response could be built. 502.
    UpstreamStream {
        /// What failed.
        message: String,
        /// Machine-readable code, as in the streaming error event.
        code: &'static str,
    },
}

/// The JSON body of an OpenAI error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error object.
    pub error: ErrorObject<'a>,
}

/// OpenAI's error object: `message`, `type`, `param`, `code`.
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    /// Human-readable description.
    pub message: &'a str,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request parameter at fault, or `null`.
    pub param: Option<&'a str>,
    /// A machine-readable code, or `null`.
    pub code: Option<&'a str>,
}

/// OpenAI's error `type` for an HTTP status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

impl Error {
    /// A 400 naming the field at fault.
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// A bounded name of the failure, for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnknownRoute { .. } => "unknown_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Forbidden { .. } => "forbidden",
            Self::Unauthorized(_) => "unauthorized",
            Self::RateLimited(_) => "rate_limited",
            Self::UpstreamUnreachable(_) => "unreachable",
            Self::UpstreamTimeout => "timeout",
            Self::UpstreamStatus { .. } => "status",
            Self::UpstreamStream { code, .. } => code.strip_prefix("upstream_").unwrap_or(code),
        }
    }

    /// Whether Ollama, not the request, is at fault.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::UpstreamUnreachable(_)
                | Self::UpstreamTimeout
                | Self::UpstreamStatus { .. }
                | Self::UpstreamStream { .. }
        )
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnreachable(_) | Self::UpstreamStream { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamStatus { status, .. } => *status,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::InvalidRequest { message, .. } => message.clone(),
            Self::BodyTooLarge { limit } => {
                format!("request body is larger than the limit of {limit} bytes")
            }
            Self::UnknownRoute { what } => format!("unknown route: {what}"),
            Self::MethodNotAllowed => "method not allowed for this route".to_owned(),
            Self::Forbidden { path } => {
                format!("{path} is not among the native paths this server passes to Ollama")
            }
            Self::Unauthorized(AuthFailure::Missing) => "You didn't provide an API key: send \
                `Authorization: Bearer <key>` (or an `api-key` header)."
                .to_owned(),
            Self::Unauthorized(AuthFailure::Invalid) => "Incorrect API key provided.".to_owned(),
            Self::RateLimited(rejection) => rate_limit_message(rejection),
            Self::UpstreamUnreachable(why) => format!("upstream Ollama server unreachable: {why}"),
            Self::UpstreamTimeout => "upstream Ollama server did not answer in time".to_owned(),
            Self::UpstreamStatus { message, .. } | Self::UpstreamStream { message, .. } => {
                message.clone()
            }
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest { .. } | Self::MethodNotAllowed => None,
            Self::Forbidden { .. } => Some("native_path_not_allowed"),
            Self::Unauthorized(AuthFailure::Missing) => Some("missing_api_key"),
            Self::Unauthorized(AuthFailure::Invalid) => Some("invalid_api_key"),
            Self::RateLimited(r) if r.limit == LimitKind::Concurrency => {
                Some("too_many_concurrent_requests")
            }
            Self::RateLimited(_) => Some("rate_limit_exceeded"),
            Self::BodyTooLarge { .. } => Some("request_too_large"),
            Self::UnknownRoute { .. } => Some("unknown_url"),
            Self::UpstreamUnreachable(_) => Some("upstream_unreachable"),
            Self::UpstreamTimeout => Some("upstream_timeout"),
            Self::UpstreamStatus { status, .. } if *status == StatusCode::NOT_FOUND => {
                Some("model_not_found")
            }
            Self::UpstreamStatus { .. } => Some("upstream_error"),
            Self::UpstreamStream { code, .. } => Some(code),
        }
    }

    /// The response: status, `content-type: application/json` and OpenAI's error body.
    pub fn into_response(self) -> http::Response<BoxBody> {
        let status = self.status();
        let message = self.message();
        let param = match &self {
            Self::InvalidRequest { param, .. } => param.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorObject {
                message: &message,
                kind: error_type(status),
                param,
                code: self.code(),
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = http::Response::new(full(json));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            Self::RateLimited(rejection) => {
                rejection.headers.write_to(headers);
                let ms = rejection.retry_after.as_millis();
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after_seconds(rejection.retry_after)),
                );
                if let Ok(ms) = u64::try_from(ms) {
                    headers.insert("retry-after-ms", http::HeaderValue::from(ms));
                }
            }
            _ => {}
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000_000).max(1) as u64
}

fn rate_limit_message(rejection: &Rejection) -> String {
    let whose = if rejection.key.is_empty() {
        "this client".to_owned()
    } else {
        format!("key {:?}", rejection.key)
    };
    let seconds = retry_after_seconds(rejection.retry_after);
    match rejection.limit {
        LimitKind::Requests => {
            format!(
                "Rate limit reached for requests per minute of {whose}. Please try again in {seconds}s."
            )
        }
        LimitKind::Tokens => format!(
            "Rate limit reached for output tokens per minute of {whose}. Please try again in {seconds}s."
        ),
        LimitKind::Concurrency => format!(
            "Too many concurrent requests for {whose} or this server. Please try again in {seconds}s."
        ),
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for Error {}

/// A start-up failure: the configuration cannot be read, parsed or validated, or the
/// listener cannot be bound.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The path given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid, has an unknown key or a wrong type; the text names the key.
    Parse(String),
    /// A value is out of range; `key` is the full path, e.g. `upstream.url`.
    Invalid {
        /// Full key path.
        key: String,
        /// Why.
        why: String,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for the key at path `key`.
    pub fn invalid(key: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            why: why.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read config {path}: {source}"),
            Self::Parse(msg) => write!(f, "invalid config: {msg}"),
            Self::Invalid { key, why } => write!(f, "invalid config key {key}: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}
