//! Arbitrary request bodies through the chat and completions parsers and mappers: a mapping
//! or an OpenAI-shaped 400, never a panic or a 5xx.

#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_request_body(data));
