//! Property: however the upstream byte stream is cut into reads, the SSE output is the same.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use bytes::{Bytes, BytesMut};
use ollama_bridge::config::ReasoningField;
use ollama_bridge::openai::sse::{ChunkFrames, ChunkObject};
use ollama_bridge::transcode::LineTranscoder;
use ollama_bridge::transcode::chat_stream::ChatStream;
use ollama_bridge::transcode::framed::{Framed, Progress};
use proptest::prelude::*;

/// Feeds `transcript` cut at `cuts` (sorted offsets) and returns the output and final progress.
fn transcode(transcript: &[u8], cuts: &[usize]) -> (Bytes, Progress) {
    let frames = ChunkFrames::new(ChunkObject::ChatCompletionChunk, "chatcmpl-p", 1, "m", true);
    let chat = ChatStream::new(frames, false, ReasoningField::Both);
    let mut framed = Framed::new(chat, 1 << 20);
    let mut out = BytesMut::new();
    let mut start = 0;
    let mut last = Progress::Open;
    for &end in cuts.iter().chain(std::iter::once(&transcript.len())) {
        if end > start {
            last = framed.on_read(Bytes::copy_from_slice(&transcript[start..end]), &mut out);
            start = end;
        }
    }
    if !framed.is_ended() {
        last = framed.on_eof(&mut out);
    }
    if let Progress::Done(stats) = last {
        framed.transcoder().end_stream(stats.usage(), &mut out);
    }
    (out.freeze(), last)
}

fn transcripts() -> Vec<Bytes> {
    let mut all: Vec<(String, Bytes)> = common::chat_transcripts().into_iter().collect();
    all.sort();
    let mut bodies: Vec<Bytes> = all.into_iter().map(|(_, b)| b).collect();
    // Also a stream that fails mid-way and one with CRLF line ends and no final newline.
    bodies.push(Bytes::from_static(
        b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"error\":\"boom\"}\n",
    ));
    bodies.push(Bytes::from_static(b"{\"message\":{\"content\":\"\xc3\xa9\"},\"done\":false}\r\n\r\n{\"message\":{\"content\":\"\"},\"done\":true}"));
    bodies
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_gives_the_same_output(which in 0usize..12, cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let all = transcripts();
        let transcript = &all[which % all.len()];
        let whole = transcode(transcript, &[]);
        let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(transcript.len() + 1)).collect();
        offsets.sort_unstable();
        let split = transcode(transcript, &offsets);
        prop_assert_eq!(&split.0, &whole.0);
        prop_assert_eq!(split.1, whole.1);
        let text = String::from_utf8(whole.0.to_vec()).expect("UTF-8 output");
        prop_assert!(text.ends_with("data: [DONE]\n\n") || text.contains("\"error\":"));
    }
}

#[test]
fn every_byte_split_equals_the_whole() {
    for transcript in transcripts() {
        let every: Vec<usize> = (1..transcript.len()).collect();
        assert_eq!(transcode(&transcript, &every), transcode(&transcript, &[]));
    }
}
