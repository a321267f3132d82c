//! `ollama-bridge`: serves the OpenAI HTTP API in front of an Ollama server, re-streaming
//! Ollama's native NDJSON as OpenAI server-sent events chunk by chunk as it arrives.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, environment overrides, validation.
//! - [`server`]: the accept loop (HTTP/1.1 + h2c), graceful shutdown, shared state.
//! - [`routes`]: routing, admission (key, limits) and one handler module per endpoint family.
//! - [`auth`]: bearer API keys, compared in constant time.
//! - [`limit`]: governor rate limits, token budgets and concurrency caps.
//! - [`error`]: request-time errors as OpenAI error bodies; start-up errors.
//! - [`body`]: the one response body type.
//! - [`lanes`]: the upstream generations of one response (one per choice), read together.
//! - [`sse_body`]: the pull-based NDJSON -> SSE response body.
//! - [`ollama`]: pooled upstream client, Ollama wire types, NDJSON framer.
//! - [`openai`]: OpenAI wire types and the SSE chunk writer.
//! - [`transcode`]: pure request and stream conversions.
//! - [`metrics`]: every Prometheus metric, described once.
//! - [`observe`]: per-request measuring (TTFT, tokens/s, outcome) and the request log line.
//! - [`ids`]: `chatcmpl-…`, `call_…` and request ids.
//! - [`fake_ollama`]: a deterministic Ollama stand-in for tests, benchmarks and demos.

pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod fake_ollama;
pub mod ids;
pub mod lanes;
pub mod limit;
pub mod metrics;
pub mod observe;
pub mod ollama;
pub mod openai;
pub mod routes;
pub mod server;
pub mod sse_body;
pub mod transcode;
pub mod write_idle;
