//! The one response body type of the bridge and its constructors.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Every response body: fixed JSON, or a transcoding stream. Never fails (errors inside a
/// stream are written as SSE error events instead).
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes` in one frame.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    Full::new(bytes.into()).boxed_unsync()
}
