//! Ollama's side: the pooled HTTP client, the wire types, the NDJSON framer.

pub mod client;
pub mod generate;
pub mod ndjson;
pub mod types;
