//! Nanoseconds and heap allocations per chunk through the transcoding path: NDJSON framing
//! plus the chat transcoder, from one upstream read (one line) to SSE bytes in the output
//! buffer. Cases: a text chunk, a thinking chunk, a tool-call chunk and the final stats
//! line (finish chunk, usage chunk, `[DONE]`), each without and with the per-read metrics
//! work the response body does (two clock reads; for the last line, the request's
//! histograms).
//!
//! `cargo bench --bench transcode`. Allocations are counted by a counting global allocator
//! over 100,000 chunks per case and printed first (stderr).

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ollama_bridge::config::ReasoningField;
use ollama_bridge::metrics::Metrics;
use ollama_bridge::observe::RequestObserver;
use ollama_bridge::openai::sse::{ChunkFrames, ChunkObject};
use ollama_bridge::transcode::LineTranscoder;
use ollama_bridge::transcode::chat_stream::ChatStream;
use ollama_bridge::transcode::framed::{Framed, Progress};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Output is cleared past this size, as the body yields it: growth is amortised.
const OUT_LIMIT: usize = 64 * 1024;

struct Lines {
    text: Bytes,
    thinking: Bytes,
    tool_call: Bytes,
    last: Bytes,
}

/// The first line of a recorded transcript that `pick` accepts, with its `\n`.
fn line(file: &str, pick: impl Fn(&str) -> bool) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/recorded-local/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let found = text.lines().find(|l| pick(l)).unwrap_or_default();
    assert!(!found.is_empty(), "no such line in {path}");
    Bytes::from(format!("{found}\n"))
}

fn lines() -> Lines {
    Lines {
        text: line("plain_stop.ndjson", |l| l.contains("\" How\"")),
        thinking: line("think_true.ndjson", |l| {
            l.contains("\"thinking\":\"The user\"")
        }),
        tool_call: line("tool_nothink.ndjson", |l| l.contains("tool_calls")),
        last: line("plain_stop.ndjson", |l| l.contains("\"done\":true")),
    }
}

fn framed() -> Framed<ChatStream> {
    let frames = ChunkFrames::new(
        ChunkObject::ChatCompletionChunk,
        "chatcmpl-0123456789abcdef01234567",
        1_795_000_000,
        "llama3.2:3b",
        true,
    );
    Framed::new(
        ChatStream::new(frames, false, ReasoningField::ReasoningContent),
        16 << 20,
    )
}

fn observer(metrics: &Arc<Metrics>) -> RequestObserver {
    let mut observer = RequestObserver::new(
        Arc::clone(metrics),
        "chat",
        "/v1/chat/completions",
        Instant::now(),
    );
    observer.set_model("llama3.2:3b");
    observer.generation_started();
    observer
}

/// One open-stream chunk: frame, transcode, keep the output bounded.
fn chunk(framed: &mut Framed<ChatStream>, line: &Bytes, out: &mut BytesMut) {
    let progress = framed.on_read(line.clone(), out);
    black_box(progress);
    if out.len() > OUT_LIMIT {
        out.clear();
    }
}

/// The last line: the finish chunk, then the stream's end.
fn last(framed: &mut Framed<ChatStream>, line: &Bytes, out: &mut BytesMut) -> Progress {
    let progress = framed.on_read(line.clone(), out);
    if let Progress::Done(stats) = &progress {
        framed.transcoder().end_stream(stats.usage(), out);
    }
    progress
}

fn report_allocations(lines: &Lines) {
    const CHUNKS: usize = 100_000;
    for (name, line) in [
        ("text", &lines.text),
        ("thinking", &lines.thinking),
        ("tool_call", &lines.tool_call),
    ] {
        let mut framed = framed();
        let mut out = BytesMut::with_capacity(OUT_LIMIT * 2);
        chunk(&mut framed, line, &mut out);
        let region = Region::new(GLOBAL);
        for _ in 0..CHUNKS {
            chunk(&mut framed, line, &mut out);
        }
        let stats = region.change();
        eprintln!(
            "allocations per {name} chunk: {:.4} ({} in {CHUNKS}, {} reallocations)",
            stats.allocations as f64 / CHUNKS as f64,
            stats.allocations,
            stats.reallocations
        );
    }
    let mut total = 0;
    const STREAMS: usize = 10_000;
    for _ in 0..STREAMS {
        let mut framed = framed();
        let mut out = BytesMut::with_capacity(4096);
        chunk(&mut framed, &lines.text, &mut out);
        let region = Region::new(GLOBAL);
        black_box(last(&mut framed, &lines.last, &mut out));
        total += region.change().allocations;
    }
    eprintln!(
        "allocations per final stats line: {:.4}",
        total as f64 / STREAMS as f64
    );
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    report_allocations(&lines);
    let metrics = Arc::new(Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}")));
    let mut group = c.benchmark_group("chunk");
    for (name, line) in [
        ("text", &lines.text),
        ("thinking", &lines.thinking),
        ("tool_call", &lines.tool_call),
    ] {
        group.bench_function(name, |b| {
            let mut framed = framed();
            let mut out = BytesMut::with_capacity(OUT_LIMIT * 2);
            b.iter(|| chunk(&mut framed, line, &mut out));
        });
        group.bench_function(format!("{name}+metrics"), |b| {
            let mut framed = framed();
            let mut out = BytesMut::with_capacity(OUT_LIMIT * 2);
            let mut observer = observer(&metrics);
            b.iter(|| {
                let begin = Instant::now();
                chunk(&mut framed, line, &mut out);
                observer.overhead_since(begin);
            });
        });
    }
    let fresh = || {
        let mut framed = framed();
        let mut out = BytesMut::with_capacity(4096);
        chunk(&mut framed, &lines.text, &mut out);
        (framed, out)
    };
    group.bench_function("final_stats", |b| {
        b.iter_batched_ref(
            fresh,
            |(framed, out)| last(framed, &lines.last, out),
            BatchSize::SmallInput,
        );
    });
    // The observer records the request's histograms when it is dropped: inside the timing.
    group.bench_function("final_stats+metrics", |b| {
        b.iter_batched(
            || (fresh(), observer(&metrics)),
            |((mut framed, mut out), mut observer)| {
                let begin = Instant::now();
                if let Progress::Done(stats) = last(&mut framed, &lines.last, &mut out) {
                    observer.completed(stats);
                }
                observer.overhead_since(begin);
                drop(observer);
                (framed, out)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
