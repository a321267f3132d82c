//! Every error path: before the stream (status + OpenAI error body) and during it (the
//! partial content, then one error event and the end of the stream).

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use common::{Harness, chat, chat_body, request, start_bridge};
use ollama_bridge::config::Config;
use serde_json::{Value, json};

fn assert_error(reply: &common::Reply, status: u16, kind: &str, param: Value) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    let error = body["error"].clone();
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(4),
        "message, type, param, code: {body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["param"], param, "{body}");
    error
}

#[tokio::test]
async fn upstream_unreachable_is_502() {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.upstream.url = common::closed_upstream().await;
    let (bridge, _stop, _task) = start_bridge(config).await;
    let reply = chat(bridge, &chat_body("m", true)).await;
    let error = assert_error(&reply, 502, "api_error", Value::Null);
    assert_eq!(error["code"], "upstream_unreachable");
}

#[tokio::test]
async fn upstream_statuses_are_kept_with_ollamas_message() {
    let h = Harness::start().await;
    let reply = chat(h.bridge, &chat_body("does-not-exist", true)).await;
    let error = assert_error(&reply, 404, "not_found_error", Value::Null);
    assert_eq!(error["message"], "model 'does-not-exist' not found");
    let reply = chat(h.bridge, &chat_body("synth?status=500", false)).await;
    let error = assert_error(&reply, 500, "api_error", Value::Null);
    assert_eq!(error["message"], "synthetic status");
    let reply = chat(h.bridge, &chat_body("synth?status=400", true)).await;
    assert_error(&reply, 400, "invalid_request_error", Value::Null);
    h.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_and_bad_json_400() {
    let h = Harness::start_with(|c| c.server.max_body_bytes = 1024).await;
    let mut big = chat_body("synth", false);
    big["messages"][0]["content"] = json!("x".repeat(4096));
    let reply = chat(h.bridge, &big).await;
    let error = assert_error(&reply, 413, "invalid_request_error", Value::Null);
    assert_eq!(error["code"], "request_too_large");
    assert!(h.fake.requests().is_empty(), "nothing reached upstream");

    let reply = request(
        h.bridge,
        "POST",
        "/v1/chat/completions",
        "{\"model\": \"m\", ",
    )
    .await;
    assert_error(&reply, 400, "invalid_request_error", Value::Null);
    let reply = request(
        h.bridge,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m","messages":[],"max_tokens":"ten"}"#,
    )
    .await;
    assert_error(&reply, 400, "invalid_request_error", json!("max_tokens"));
    let reply = request(h.bridge, "POST", "/v1/nope", "{}").await;
    assert_error(&reply, 404, "not_found_error", Value::Null);
    let reply = request(h.bridge, "GET", "/v1/chat/completions", "").await;
    assert_error(&reply, 405, "invalid_request_error", Value::Null);
    h.stop().await;
}

#[tokio::test]
async fn chat_and_model_bad_input_is_a_400_naming_the_field() {
    let h = Harness::start().await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!({"messages": hi}), "model"),
        (json!({"model": "synth"}), "messages"),
        (
            json!({"model": "synth", "messages": [{"content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "synth", "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "synth", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "synth", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].image_url",
        ),
        (json!({"model": "synth", "messages": hi, "n": 0}), "n"),
        (json!({"model": "synth", "messages": hi, "n": 99}), "n"),
        (
            json!({"model": "synth", "messages": hi, "temperature": 3}),
            "temperature",
        ),
        (
            json!({"model": "synth", "messages": hi, "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        ),
        (
            json!({"model": "synth", "messages": hi, "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "synth", "messages": hi, "reasoning_effort": "max"}),
            "reasoning_effort",
        ),
        (
            json!({"model": "synth", "messages": hi, "stream_options": {"include_usage": 1}}),
            "stream_options.include_usage",
        ),
    ];
    for (body, param) in cases {
        let reply = chat(h.bridge, &body).await;
        assert_error(&reply, 400, "invalid_request_error", json!(param));
    }
    assert!(h.fake.requests().is_empty(), "nothing reached upstream");
    let reply = request(h.bridge, "GET", "/v1/models/%FF%FE", "").await;
    assert_error(&reply, 400, "invalid_request_error", json!("model"));
    h.stop().await;
}

/// Streams `model` and returns the content sent before the error event, and that event.
async fn partial_then_error(h: &Harness, model: &str) -> (String, Value) {
    let reply = chat(h.bridge, &chat_body(model, true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = reply.sse_data();
    let (last, chunks) = data.split_last().expect("events");
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after a failure: {data:?}"
    );
    let content = chunks
        .iter()
        .map(|c| {
            let v: Value = serde_json::from_str(c).expect("JSON chunk");
            assert!(v.get("error").is_none(), "one error event only, at the end");
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let error: Value = serde_json::from_str(last).expect("JSON error event");
    let error = error["error"].clone();
    assert_eq!(
        (error["type"].clone(), error["param"].clone()),
        (json!("api_error"), Value::Null),
        "{error}"
    );
    (content, error)
}

#[tokio::test]
async fn mid_stream_failures_keep_the_partial_content_and_end_with_one_error_event() {
    let h = Harness::start_with(|c| c.upstream.idle_timeout_ms = 300).await;
    let cases = [
        ("synth?tokens=6&error_after=3", "upstream_error"),
        ("synth?tokens=6&malformed_after=3", "upstream_malformed"),
        ("synth?tokens=6&drop_after=3", "upstream_disconnected"),
        ("synth?tokens=6&stall_after=3", "upstream_timeout"),
    ];
    for (model, code) in cases {
        let (content, error) = partial_then_error(&h, model).await;
        assert_eq!(content, "w0 w1 w2 ", "{model}");
        assert_eq!(error["code"], code, "{model}: {error}");
    }
    let (_, error) = partial_then_error(&h, "synth?tokens=6&error_after=3").await;
    assert_eq!(
        error["message"],
        "upstream error: synthetic upstream failure"
    );
    h.stop().await;
}

#[tokio::test]
async fn mid_stream_failures_of_non_streaming_calls_are_502() {
    let h = Harness::start_with(|c| c.upstream.idle_timeout_ms = 300).await;
    for (model, code) in [
        ("synth?tokens=6&error_after=3", "upstream_error"),
        ("synth?tokens=6&drop_after=3", "upstream_disconnected"),
        ("synth?tokens=6&stall_after=3", "upstream_timeout"),
    ] {
        let reply = chat(h.bridge, &chat_body(model, false)).await;
        let error = assert_error(&reply, 502, "api_error", Value::Null);
        assert_eq!(error["code"], code, "{model}");
    }
    h.stop().await;
}

#[tokio::test]
async fn the_upstream_request_carries_the_mapped_fields() {
    let h = Harness::start().await;
    let body = json!({"model":"synth?tokens=2","messages":[{"role":"user","content":"hi"}],
        "max_completion_tokens": 9, "stop": ["x"], "tools": [{"type":"function","function":{"name":"f"}}]});
    assert_eq!(chat(h.bridge, &body).await.status, 200);
    let sent = h
        .fake
        .last_request("synth")
        .expect("request reached fake-ollama");
    assert_eq!(
        sent.body["stream"], true,
        "the bridge always streams from Ollama"
    );
    assert_eq!(
        sent.body["options"],
        json!({"num_predict": 9, "stop": ["x"]}),
        "no forced temperature/top_p"
    );
    assert_eq!(sent.body["tools"][0]["function"]["name"], "f");
    h.stop().await;
}
