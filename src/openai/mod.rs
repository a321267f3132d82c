//! OpenAI's wire format: request bodies, response bodies, SSE chunk frames.

pub mod embeddings;
pub mod models;
pub mod request;
pub mod response;
pub mod sse;
