//! Ollama's side: the pooled HTTP clients, the wire types, the body and NDJSON framers.

pub mod chunked;
pub mod client;
pub mod generate;
pub mod h1;
pub mod ndjson;
pub mod types;
