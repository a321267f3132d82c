//! Ollama's own `/api/*` through the bridge: byte for byte, with the bridge's keys,
//! allow-list and metrics.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use common::scrape::{parse, sum};
use common::{Harness, request, request_with};
use ollama_bridge::config::KeyConfig;
use serde_json::json;

fn chat_body(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

#[tokio::test]
async fn native_calls_pass_through_byte_for_byte() {
    let h = Harness::start().await;
    let fake = h.fake.addr();
    for (method, path, body) in [
        ("POST", "/api/chat", chat_body("plain_stop")),
        ("POST", "/api/chat", chat_body("tool_think")),
        ("GET", "/api/tags", String::new()),
        (
            "POST",
            "/api/show",
            json!({"model": "plain_stop"}).to_string(),
        ),
        ("POST", "/api/chat", chat_body("no-such-model")),
    ] {
        let direct = request(fake, method, path, &body).await;
        let bridged = request(h.bridge, method, path, &body).await;
        assert_eq!(bridged.status, direct.status, "{path}");
        assert_eq!(bridged.body, direct.body, "{path} {body}: bodies differ");
        assert_eq!(
            bridged.header("content-type"),
            direct.header("content-type"),
            "{path}"
        );
    }
    let transcript = &common::chat_transcripts()["plain_stop"];
    let bridged = request(h.bridge, "POST", "/api/chat", &chat_body("plain_stop")).await;
    assert_eq!(&bridged.body, transcript, "the recorded stream, unchanged");
    h.stop().await;
}

#[tokio::test]
async fn native_generations_are_measured_and_keyed() {
    let h = Harness::start_with(|c| {
        c.auth.keys = vec![KeyConfig {
            name: "webui".to_owned(),
            key: Some("sk-webui".to_owned()),
            ..KeyConfig::default()
        }];
    })
    .await;
    let body = chat_body("plain_stop");
    let refused = request(h.bridge, "POST", "/api/chat", &body).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["type"], "authentication_error");
    let keyed = [("authorization", "Bearer sk-webui")];
    let reply = request_with(h.bridge, "POST", "/api/chat", &keyed, &body).await;
    assert_eq!(reply.status, 200);
    let tags = request_with(h.bridge, "GET", "/api/tags", &keyed, "").await;
    assert_eq!(tags.status, 200);

    let samples = parse(&request(h.bridge, "GET", "/metrics", "").await.text());
    let chat = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_request_model", "tiny-plain"),
    ];
    let ttft = sum(
        &samples,
        "gen_ai_server_time_to_first_token_seconds_count",
        &chat,
    );
    assert_eq!(ttft, 1.0, "the native chat was measured");
    let output = [
        ("gen_ai_token_type", "output"),
        ("gen_ai_request_model", "tiny-plain"),
    ];
    assert_eq!(
        sum(&samples, "gen_ai_client_token_usage_sum", &output),
        10.0
    );
    let requests = |endpoint| {
        sum(
            &samples,
            "ollama_bridge_requests_total",
            &[("endpoint", endpoint), ("status_class", "2xx")],
        )
    };
    assert_eq!((requests("/api/chat"), requests("/api/*")), (1.0, 1.0));
    h.stop().await;
}

#[tokio::test]
async fn only_allowed_native_paths_pass() {
    let h = Harness::start_with(|c| c.native.allowed_paths = vec!["/api/chat".to_owned()]).await;
    let chat = request(h.bridge, "POST", "/api/chat", &chat_body("plain_stop")).await;
    assert_eq!(chat.status, 200);
    let tags = request(h.bridge, "GET", "/api/tags", "").await;
    assert_eq!(tags.status, 403);
    assert_eq!(tags.json()["error"]["type"], "permission_error");
    assert_eq!(tags.json()["error"]["code"], "native_path_not_allowed");
    h.stop().await;
}

#[tokio::test]
async fn a_broken_native_stream_ends_with_an_ollama_error_line() {
    let h = Harness::start().await;
    let reply = request(
        h.bridge,
        "POST",
        "/api/chat",
        &chat_body("synth?tokens=6&drop_after=3"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (i, line) in lines[..3].iter().enumerate() {
        let chunk: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(chunk["message"]["content"], format!("w{i} "));
    }
    let last: serde_json::Value = serde_json::from_str(lines[3]).expect("JSON error line");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("upstream")),
        "{last}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_sized_non_streaming_native_answer_is_measured_to_its_end() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=4", "stream": false,
                      "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let direct = request(h.fake.addr(), "POST", "/api/chat", &body).await;
    assert!(
        direct.header("content-length").is_some(),
        "Ollama sizes this answer"
    );
    let reply = request(h.bridge, "POST", "/api/chat", &body).await;
    assert_eq!(reply.body, direct.body);
    assert_eq!(reply.json()["message"]["content"], "w0 w1 w2 w3 ");
    // The observer saw the last line: a completed request with its output tokens.
    let samples = parse(&request(h.bridge, "GET", "/metrics", "").await.text());
    let completed = [("gen_ai_operation_name", "chat"), ("error_type", "")];
    let finished = sum(
        &samples,
        "gen_ai_server_request_duration_seconds_count",
        &completed,
    );
    assert_eq!(
        finished, 1.0,
        "counted as completed, not as a client that left"
    );
    let output = [("gen_ai_token_type", "output")];
    assert_eq!(sum(&samples, "gen_ai_client_token_usage_sum", &output), 4.0);
    h.stop().await;
}
