//! The transcoding path allocates nothing per chunk once a stream runs: a counting global
//! allocator watches 1,000 text, thinking and tool-call chunks of recorded transcripts go
//! through framing and the chat transcoder into an output buffer with room to spare.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

use std::alloc::System;

use bytes::{Bytes, BytesMut};
use ollama_bridge::config::ReasoningField;
use ollama_bridge::openai::sse::{ChunkFrames, ChunkObject};
use ollama_bridge::transcode::chat_stream::ChatStream;
use ollama_bridge::transcode::framed::Framed;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn line(file: &str, marker: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/recorded-local/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    let found = text.lines().find(|l| l.contains(marker)).expect("line");
    Bytes::from(format!("{found}\n"))
}

#[test]
fn open_stream_chunks_allocate_nothing() {
    let cases = [
        ("text", line("plain_stop.ndjson", "\" How\"")),
        (
            "thinking",
            line("think_true.ndjson", "\"thinking\":\"The user\""),
        ),
        ("tool call", line("tool_nothink.ndjson", "tool_calls")),
    ];
    for (name, line) in cases {
        let frames = ChunkFrames::new(ChunkObject::ChatCompletionChunk, "chatcmpl-1", 1, "m", true);
        let chat = ChatStream::new(frames, false, ReasoningField::Both);
        let mut framed = Framed::new(chat, 1 << 20);
        let mut out = BytesMut::with_capacity(2 << 20);
        framed.on_read(line.clone(), &mut out);
        let region = Region::new(GLOBAL);
        for _ in 0..1_000 {
            framed.on_read(line.clone(), &mut out);
        }
        let change = region.change();
        assert_eq!(
            (change.allocations, change.reallocations),
            (0, 0),
            "{name} chunks allocated"
        );
        assert!(out.len() > 1_000 * 100, "{name} chunks were written");
    }
}
