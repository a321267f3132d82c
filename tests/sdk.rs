//! The official OpenAI SDKs as clients: openai-python and the `openai` Node package, run as
//! child processes against the bridge (fake-ollama behind it), everything on loopback.
//!
//! `scripts/test` installs them: a venv at `target/sdk-venv` and `tests/sdk/node/node_modules`.
//! `OLLAMA_BRIDGE_SDK_PYTHON` may name another Python with `openai` installed.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Harness;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let python = std::env::var_os("OLLAMA_BRIDGE_SDK_PYTHON")
        .map_or_else(|| root().join("target/sdk-venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "{} not found: run scripts/test, which installs the SDKs",
        python.display()
    );
    python
}

async fn run(mut command: tokio::process::Command) -> Value {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("SDK script finishes within 60 s")
        .expect("SDK script starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK script failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

async fn openai_python(h: &Harness, scenario: &str, model: &str) -> Value {
    let mut command = tokio::process::Command::new(python());
    command
        .arg(root().join("tests/sdk/openai_python.py"))
        .args([&h.base_url(), scenario, model])
        .env("OLLAMA_BRIDGE_TEST_KEY", TEST_KEY);
    run(command).await
}

/// The key the `auth_and_rate_limit` scenario is given.
const TEST_KEY: &str = "sk-sdk-test-5f0c";

async fn openai_node(h: &Harness, scenario: &str, model: &str) -> Value {
    let dir = root().join("tests/sdk/node");
    assert!(
        dir.join("node_modules/openai").exists(),
        "run scripts/test, which installs the Node SDK"
    );
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(&dir)
        .arg("openai_node.mjs")
        .args([&h.base_url(), scenario, model]);
    run(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_streams_text() {
    let h = Harness::start().await;
    let got = openai_python(&h, "stream_text", "plain_stop").await;
    assert_eq!(got["text"], "Hello! How can I help you today?");
    assert_eq!(got["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40})
    );
    let got = openai_python(&h, "stream_text", "plain_length").await;
    assert_eq!(
        (got["text"].as_str(), got["finish_reason"].as_str()),
        (Some("Hello! How"), Some("length"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stream_helper_returns_the_tool_call_with_parsed_arguments() {
    let h = Harness::start().await;
    for model in ["tool_think", "public-ollama-0.35.1-qwen2.5-tools"] {
        let got = openai_python(&h, "stream_helper_tools", model).await;
        assert_eq!(got["finish_reason"], "tool_calls", "{model}");
        assert_eq!(got["name"], "get_weather", "{model}");
        assert!(
            got["id"].as_str().is_some_and(|id| id.starts_with("call_")),
            "{model}: {got}"
        );
        assert_eq!(got["parsed_type"], "GetWeather", "{model}");
        let args: Value = serde_json::from_str(got["arguments"].as_str().unwrap_or_default())
            .expect("JSON arguments");
        assert_eq!(args["city"], "Paris", "{model}");
        assert_eq!(got["parsed_arguments"]["city"], "Paris", "{model}");
    }
    let got = openai_python(&h, "stream_helper_tools", "tool_think").await;
    assert_eq!(
        got["parsed_arguments"],
        json!({"city": "Paris", "unit": "celsius"})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_non_streaming_parses_into_chat_completion() {
    let h = Harness::start().await;
    let got = openai_python(&h, "non_stream", "think_true").await;
    assert_eq!(got["type"], "ChatCompletion");
    assert_eq!(got["text"], "Hi there! Nice to meet you.");
    assert_eq!(
        got["reasoning_content"],
        "The user greets me. I should greet back.\n"
    );
    assert_eq!(got["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens": 34, "completion_tokens": 16, "total_tokens": 50})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_raises_api_error_after_the_partial_text() {
    let h = Harness::start().await;
    let got = openai_python(&h, "mid_stream_error", "synth?tokens=6&error_after=3").await;
    assert_eq!(got["text"], "w0 w1 w2 ");
    assert_eq!(got["error"], "APIError");
    assert_eq!(got["message"], "upstream error: synthetic upstream failure");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_raises_not_found_for_an_unknown_model() {
    let h = Harness::start().await;
    let got = openai_python(&h, "not_found", "does-not-exist").await;
    assert_eq!(got["error"], "NotFoundError");
    assert_eq!(got["status"], 404);
    assert_eq!(
        got["body"],
        json!({"message": "model 'does-not-exist' not found", "type": "not_found_error",
               "param": null, "code": "model_not_found"})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_streams_the_same_text_and_tool_call() {
    let h = Harness::start().await;
    let got = openai_node(&h, "stream_text", "plain_stop").await;
    assert_eq!(
        got,
        json!({"text": "Hello! How can I help you today?", "finish_reason": "stop"})
    );
    let got = openai_node(&h, "stream_tools", "tool_nothink").await;
    assert_eq!(
        got,
        json!({"finish_reason": "tool_calls", "id": "call_gs2k7cwo", "name": "get_weather",
               "arguments": {"city": "Paris", "unit": "celsius"}})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_raises_authentication_and_rate_limit_errors_and_recovers_after_retry_after() {
    let h = Harness::start_with(|c| {
        c.auth.keys = vec![ollama_bridge::config::KeyConfig {
            name: "sdk".to_owned(),
            key: Some(TEST_KEY.to_owned()),
            requests_per_minute: Some(60),
            burst: Some(1),
            ..Default::default()
        }];
    })
    .await;
    let out = openai_python(&h, "auth_and_rate_limit", "synth?tokens=3").await;
    assert_eq!(
        out["wrong_key"],
        json!({"status": 401, "type": "authentication_error", "code": "invalid_api_key"})
    );
    assert_eq!(
        out["first"],
        json!({"content": "w0 w1 w2 ", "limit": "1", "remaining": "0", "reset": "1s"})
    );
    let limited = &out["limited"];
    assert_eq!(limited["status"], 429, "{out}");
    assert_eq!(limited["type"], "rate_limit_error");
    assert_eq!(limited["code"], "rate_limit_exceeded");
    assert_eq!(limited["retry_after"], "1");
    assert_eq!(
        (&limited["limit"], &limited["remaining"]),
        (&json!("1"), &json!("0"))
    );
    assert_eq!(out["after_wait"], "w0 w1 w2 ");
    assert_eq!(
        h.fake.requests().len(),
        2,
        "only the admitted requests reached Ollama"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_lists_and_retrieves_models_and_chats_through_an_alias() {
    let h = Harness::start_with(|c| {
        c.aliases
            .insert("gpt-4o-mini".to_owned(), "synth?tokens=2".to_owned());
    })
    .await;
    h.fake.install("x:latest");
    let out = openai_python(&h, "models", "x:latest").await;
    let ids = out["ids"].as_array().expect("ids");
    for id in ["x:latest", "gpt-4o-mini", "plain_stop"] {
        assert!(ids.contains(&json!(id)), "{id} not listed: {out}");
    }
    assert_eq!(
        out["retrieved"],
        json!({"id": "x:latest", "object": "model", "created": 1_748_772_000, "owned_by": "library"})
    );
    assert_eq!(
        out["missing"],
        json!({"status": 404, "type": "not_found_error", "code": "model_not_found"})
    );
    assert_eq!(out["alias_model"], "gpt-4o-mini");
    assert_eq!(out["alias_content"], "w0 w1 ");
    let upstream = h.fake.requests().last().cloned().expect("chat request");
    assert_eq!(upstream.body["model"], "synth?tokens=2");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_embeds_as_floats_and_decodes_base64_to_the_same_floats() {
    let h = Harness::start().await;
    let out = openai_python(&h, "embeddings", "synth").await;
    let want: Vec<Vec<f64>> = ["hello world", "second"]
        .iter()
        .map(|t| ollama_bridge::fake_ollama::catalog::vector(t, 8))
        .collect();
    assert_eq!(out["float"], json!(want));
    assert_eq!(out["base64_decoded"], json!(want), "{out}");
    assert_eq!(out["indexes"], json!([0, 1]));
    assert_eq!(out["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    assert_eq!(out["model"], "synth");
    assert_eq!(h.fake.requests().len(), 2, "one upstream request per call");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_completions_whole_and_streamed_with_prompts_and_n() {
    let h = Harness::start().await;
    let out = openai_python(&h, "completions", "synth?tokens=4").await;
    assert_eq!(
        out["whole"],
        json!({"object": "text_completion", "id_prefix": "cmpl", "text": "Oncew0 w1 w2 w3 ",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}})
    );
    let (three, four) = (
        common::seeded_synth_text(3, 4),
        common::seeded_synth_text(4, 4),
    );
    assert_eq!(
        out["stream"],
        json!({"texts": [three, four, three, four],
            "finishes": [["stop"], ["stop"], ["stop"], ["stop"]],
            "usage": {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36}})
    );
    assert_eq!(
        out["refused"],
        json!({"status": 400, "param": "prompt", "type": "invalid_request_error"})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_chat_with_n_choices_streamed_and_whole() {
    let h = Harness::start().await;
    let out = openai_python(&h, "chat_choices", "synth?tokens=5&rate=200").await;
    let want: Vec<String> = (7..10)
        .map(|seed| common::seeded_synth_text(seed, 5))
        .collect();
    assert_eq!(out["stream"], json!(want));
    assert_eq!(out["finishes"], json!([["stop"], ["stop"], ["stop"]]));
    let text = common::synth_text(5);
    assert_eq!(out["whole"], json!([text, text]));
    assert_eq!(
        out["whole_usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_python_streams_native_chat_and_lists_models_through_the_bridge() {
    let h = Harness::start().await;
    let run_with = |host: String| {
        let mut command = tokio::process::Command::new(python());
        command
            .arg(root().join("tests/sdk/ollama_python.py"))
            .args([host.as_str(), "tool_think"]);
        run(command)
    };
    let bridged = run_with(format!("http://{}", h.bridge)).await;
    let direct = run_with(h.fake.url()).await;
    assert_eq!(
        bridged, direct,
        "the client sees through the bridge what Ollama sent"
    );
    let chunks = bridged["chunks"].as_array().expect("chunks");
    assert!(chunks.len() > 2, "{bridged}");
    assert_eq!(chunks.last().expect("last")["done"], true);
    assert!(
        chunks.iter().any(|c| c["message"]["tool_calls"].is_array()),
        "the tool call arrives: {bridged}"
    );
    let models = bridged["models"].as_array().expect("models");
    assert!(models.contains(&json!("tool_think")), "{bridged}");
    h.stop().await;
}
