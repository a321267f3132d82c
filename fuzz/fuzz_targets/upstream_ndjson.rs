//! Arbitrary upstream bytes through the NDJSON framer and the chat transcoder: never a
//! panic; the output is `data: <JSON>\n\n` events ending in `[DONE]` or one error event.

#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_upstream_bytes(data));
