//! Fault injection: each upstream fault runs while 50 healthy streams run beside it. The
//! faulty stream keeps what it had and ends with one error event (or, when nothing was
//! generated, gets an OpenAI error response); every healthy stream is byte-for-byte what a
//! quiet bridge sends; nothing panics; every upstream response is finished or dropped; the
//! active-streams gauge returns to 0.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::scrape::{parse, sum};
use common::{Harness, Reply, chat, chat_body, request, seeded_synth_text, synth_text};
use serde_json::{Value, json};
use tokio::time::Instant;

const HEALTHY: usize = 50;
const HEALTHY_MODEL: &str = "synth?tokens=30&rate=100";
/// Lines over this many bytes fail a stream (the faults send a 1 MiB line).
const MAX_LINE: usize = 256 * 1024;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// What the faulty request must get.
enum Expect {
    /// Status 200, this content, then one error event with this code.
    PartialThenError(&'static str, &'static str),
    /// Choice 0 streams a prefix of its text, choice 1 fails: one error event at the end.
    ChoiceFailsAfterHeaders,
    /// An OpenAI error response with this status and code.
    ErrorResponse(u16, &'static str),
    /// The whole stream, as if nothing happened.
    Complete(String),
}

/// A stream's SSE body with its id and `created` zeroed, so two streams compare.
fn normalized(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let first: Value = serde_json::from_str(&reply.sse_data()[0]).expect("first chunk");
    let id = first["id"].as_str().expect("id");
    let created = format!("\"created\":{}", first["created"]);
    text.replace(id, "ID").replace(&created, "\"created\":0")
}

fn events(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = reply.sse_data();
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after a failure: {data:?}"
    );
    data.iter()
        .map(|d| serde_json::from_str(d).expect("JSON event"))
        .collect()
}

/// Splits a failed stream into the content of each choice and the one final error.
fn partial_and_error(reply: &Reply) -> (Vec<String>, Value) {
    let events = events(reply);
    let (last, chunks) = events.split_last().expect("events");
    let mut content = vec![String::new(); 2];
    for chunk in chunks {
        assert!(
            chunk.get("error").is_none(),
            "one error event, at the end: {chunk}"
        );
        for choice in chunk["choices"].as_array().expect("choices") {
            let index = choice["index"].as_u64().expect("index") as usize;
            content[index] += choice["delta"]["content"].as_str().unwrap_or_default();
        }
    }
    let error = last["error"].clone();
    assert_eq!(error["type"], "api_error", "{last}");
    (content, error)
}

fn check(model: &str, reply: &Reply, expect: &Expect) {
    match expect {
        Expect::PartialThenError(content, code) => {
            let (got, error) = partial_and_error(reply);
            assert_eq!(got[0], *content, "{model}");
            assert_eq!(error["code"], *code, "{model}: {error}");
        }
        Expect::ChoiceFailsAfterHeaders => {
            let (got, error) = partial_and_error(reply);
            assert!(!got[0].is_empty(), "{model}: choice 0 streamed");
            assert!(
                seeded_synth_text(1, 50).starts_with(&got[0]),
                "{model}: {got:?}"
            );
            assert_eq!(got[1], "", "{model}");
            assert_eq!(error["code"], "upstream_error", "{model}: {error}");
        }
        Expect::ErrorResponse(status, code) => {
            assert_eq!(reply.status, *status, "{model}: {}", reply.text());
            assert_eq!(reply.header("content-type"), Some("application/json"));
            let body = reply.json();
            assert_eq!(body["error"]["code"], *code, "{model}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        Expect::Complete(content) => assert_eq!(&reply.streamed_content(), content, "{model}"),
    }
}

async fn active_streams(h: &Harness) -> f64 {
    let reply = request(h.bridge, "GET", "/metrics", "").await;
    sum(&parse(&reply.text()), "ollama_bridge_active_streams", &[])
}

/// Waits until every upstream response is finished or dropped and the gauge is back at 0.
async fn settled(h: &Harness, model: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (open, active) = (h.fake.open_streams(), active_streams(h).await);
        if open == 0 && active == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{model}: {open} upstream responses still open, {active} active streams"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_fault_beside_fifty_healthy_streams() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let h = Harness::start_with(|c| {
        c.upstream.idle_timeout_ms = 500;
        c.upstream.max_line_bytes = MAX_LINE;
    })
    .await;
    let reference = normalized(&chat(h.bridge, &chat_body(HEALTHY_MODEL, true)).await);
    assert!(reference.contains(&synth_text(30)[..3]));

    let first_three = "w0 w1 w2 ";
    let faults: Vec<(&str, Value, Expect)> = vec![
        (
            "synth?tokens=6&rate=100&error_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_error"),
        ),
        (
            "synth?tokens=6&rate=100&drop_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_disconnected"),
        ),
        (
            "synth?tokens=6&rate=100&malformed_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_malformed"),
        ),
        (
            "synth?tokens=6&rate=100&stall_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_timeout"),
        ),
        (
            "synth?tokens=6&rate=100&huge_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_malformed"),
        ),
        (
            "synth?tokens=6&rate=100&bad_utf8_after=3",
            json!({}),
            Expect::PartialThenError(first_three, "upstream_malformed"),
        ),
        (
            "synth?tokens=6&split_bytes=1",
            json!({}),
            Expect::Complete(synth_text(6)),
        ),
        (
            "plain_stop?chunk_bytes=1",
            json!({}),
            Expect::Complete("Hello! How can I help you today?".to_owned()),
        ),
        (
            "synth?status=500",
            json!({}),
            Expect::ErrorResponse(500, "upstream_error"),
        ),
        (
            "synth?tokens=50&rate=100&status=500&status_delay_ms=100&fault_seed=2",
            json!({"n": 2, "seed": 1}),
            Expect::ChoiceFailsAfterHeaders,
        ),
        (
            "synth?content_type=text/html",
            json!({}),
            Expect::ErrorResponse(502, "upstream_malformed"),
        ),
    ];
    for (model, extra, expect) in &faults {
        let healthy: Vec<_> = (0..HEALTHY)
            .map(|_| {
                let bridge = h.bridge;
                tokio::spawn(async move { chat(bridge, &chat_body(HEALTHY_MODEL, true)).await })
            })
            .collect();
        let mut body = chat_body(model, true);
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        let reply = chat(h.bridge, &body).await;
        check(model, &reply, expect);
        for stream in healthy {
            let reply = stream.await.expect("healthy stream task");
            assert_eq!(
                normalized(&reply),
                reference,
                "a healthy stream beside {model}"
            );
        }
        settled(&h, model).await;
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "panics");
    h.stop().await;
}

#[tokio::test]
async fn a_1_mib_line_within_the_limit_is_passed_on_whole() {
    let h = Harness::start().await;
    let reply = chat(h.bridge, &chat_body("synth?tokens=2&huge_after=1", true)).await;
    let content = reply.streamed_content();
    assert_eq!(content, format!("w0 {}w1 ", "x".repeat(1024 * 1024)));
    h.stop().await;
}
