//! `GET /healthz`: the process is alive and serving.

use http::Response;

use crate::body::{BoxBody, full};

/// `200 {"status":"ok"}`.
pub fn healthz() -> Response<BoxBody> {
    let mut response = Response::new(full(&b"{\"status\":\"ok\"}"[..]));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
