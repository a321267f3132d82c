//! A client that goes away stops the generation: fake-ollama sees its connection closed
//! within 100 ms, mid-stream, before the first token, during a non-streaming call, through
//! the native passthrough, and for every one of `n` choices.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, read_until};
use ollama_bridge::fake_ollama::RequestRecord;
use tokio::net::TcpStream;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_millis(100);

async fn wait_for_request(h: &Harness, model: &str) -> Arc<RequestRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = h.fake.requests().into_iter().find(|r| r.model == model) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "request for {model} never reached fake-ollama"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Closes `stream` and asserts that the upstream connection of `record` closes in time.
async fn close_and_check(stream: TcpStream, record: &RequestRecord) {
    assert!(
        record.wait_closed(Duration::from_millis(1)).await.is_none(),
        "upstream already closed"
    );
    let closed_at = Instant::now();
    drop(stream);
    let upstream_closed = record
        .wait_closed(Duration::from_secs(2))
        .await
        .expect("upstream connection closed");
    let after = upstream_closed.saturating_duration_since(closed_at);
    assert!(after < LIMIT, "upstream closed {after:?} after the client");
}

fn body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn mid_stream() {
    let h = Harness::start().await;
    let model = "synth?tokens=2000&rate=50";
    let mut stream = common::send_raw_chat(h.bridge, &body(model, true)).await;
    read_until(&mut stream, b"data:", 3).await;
    let record = wait_for_request(&h, model).await;
    close_and_check(stream, &record).await;
    h.stop().await;
}

#[tokio::test]
async fn before_the_first_token() {
    let h = Harness::start().await;
    let model = "synth?delay_ms=10000";
    let stream = common::send_raw_chat(h.bridge, &body(model, true)).await;
    let record = wait_for_request(&h, model).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    close_and_check(stream, &record).await;
    h.stop().await;
}

#[tokio::test]
async fn during_a_non_streaming_call() {
    let h = Harness::start().await;
    let model = "synth?tokens=2000&rate=50";
    let stream = common::send_raw_chat(h.bridge, &body(model, false)).await;
    let record = wait_for_request(&h, model).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    close_and_check(stream, &record).await;
    h.stop().await;
}

#[tokio::test]
async fn native_passthrough_mid_stream() {
    let h = Harness::start().await;
    let model = "synth?tokens=2000&rate=50";
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let mut stream = common::send_raw(h.bridge, "/api/chat", &body).await;
    read_until(&mut stream, b"\"message\"", 3).await;
    let record = wait_for_request(&h, model).await;
    close_and_check(stream, &record).await;
    h.stop().await;
}

#[tokio::test]
async fn all_n_choices_when_the_client_leaves() {
    let h = Harness::start().await;
    let model = "synth?tokens=2000&rate=50";
    let mut request = body(model, true);
    request["n"] = serde_json::json!(3);
    let mut stream = common::send_raw_chat(h.bridge, &request).await;
    read_until(&mut stream, b"data:", 9).await;
    let records: Vec<Arc<RequestRecord>> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.model == model)
        .collect();
    assert_eq!(records.len(), 3, "one upstream request per choice");
    for record in &records {
        assert!(
            record.wait_closed(Duration::from_millis(1)).await.is_none(),
            "upstream already closed"
        );
    }
    let closed_at = Instant::now();
    drop(stream);
    for record in &records {
        let upstream_closed = record
            .wait_closed(Duration::from_secs(2))
            .await
            .expect("every upstream connection closed");
        let after = upstream_closed.saturating_duration_since(closed_at);
        assert!(after < LIMIT, "upstream closed {after:?} after the client");
    }
    h.stop().await;
}
