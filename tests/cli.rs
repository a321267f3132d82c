//! The `ollama-bridge` binary itself: configuration, overrides, the start line, SIGTERM.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::binary::{bridge, log_entries, start, start_json};
use common::{chat_body, chat_transcripts};
use ollama_bridge::fake_ollama::FakeOllama;
use tokio::process::Command;

#[tokio::test]
async fn an_unknown_config_key_is_refused_by_name() {
    let path = std::env::temp_dir().join(format!("ollama-bridge-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[upstream]\nurl = \"http://127.0.0.1:1\"\nidle_timeout_secs = 5\n",
    )
    .expect("write config");
    let output = bridge()
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .expect("runs");
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idle_timeout_secs"), "{stderr}");
}

#[tokio::test]
async fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let config = ollama_bridge::config::Config::from_file(std::path::Path::new(path))
        .expect("config.toml parses");
    let validated = config.validate().expect("config.toml validates");
    assert_eq!(validated.listen.to_string(), "127.0.0.1:8080");
}

#[tokio::test]
async fn env_overrides_and_the_start_line() {
    let mut command = bridge();
    command
        .env("OLLAMA_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("OLLAMA_BRIDGE_UPSTREAM", "http://127.0.0.1:9");
    let (_child, addr, line) = start(command).await;
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{line}"
    );
    assert!(
        line.contains("upstream Ollama at http://127.0.0.1:9"),
        "{line}"
    );
    // Flags win over the environment.
    let mut command = bridge();
    command
        .env("OLLAMA_BRIDGE_UPSTREAM", "http://127.0.0.1:9")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:10",
        ]);
    let (_child, _, line) = start(command).await;
    assert!(
        line.contains("upstream Ollama at http://127.0.0.1:10"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_0() {
    let fake = FakeOllama::start(chat_transcripts()).await.expect("fake");
    let mut command = bridge();
    command.args(["--listen", "127.0.0.1:0", "--upstream", &fake.url()]);
    let (mut child, addr, _) = start(command).await;
    let addr: std::net::SocketAddr = addr.parse().expect("socket address");
    let body = chat_body("synth?tokens=12&rate=20", true);
    let stream = tokio::spawn(async move { common::chat(addr, &body).await });
    // Wait until the stream is running upstream, then ask the bridge to stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.requests().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "request never reached fake-ollama"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let reply = stream.await.expect("stream task");
    let data = reply.sse_data();
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "the stream finished: {data:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_and_never_the_prompt() {
    let fake = FakeOllama::start(chat_transcripts()).await.expect("fake");
    let mut command = bridge();
    command.args(["--listen", "127.0.0.1:0", "--upstream", &fake.url()]);
    let (mut child, addr, mut lines) = start_json(command).await;
    let mut body = chat_body("plain_stop", true);
    body["messages"][0]["content"] = serde_json::json!("a secret prompt");
    common::chat(addr, &body).await;
    let finished = log_entries(&mut lines, "request finished", 1, |line| {
        assert!(!line.contains("secret"), "prompt logged: {line}");
    })
    .await;
    let finished = &finished[0];
    let fields = &finished["fields"];
    assert_eq!(
        (fields["model"].as_str(), fields["outcome"].as_str()),
        (Some("tiny-plain"), Some("completed"))
    );
    assert_eq!(fields["output_tokens"], 10);
    assert!(fields["ttft_ms"].as_f64().is_some() && fields["tokens_per_second"].as_f64().is_some());
    assert_eq!(finished["span"]["endpoint"], "/v1/chat/completions");
    assert!(
        finished["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 24)
    );
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_the_environment_and_as_digests_work_in_the_binary() {
    let fake = FakeOllama::start(chat_transcripts()).await.expect("fake");
    let digest = hex::encode(ollama_bridge::auth::sha256(b"sk-from-digest"));
    let path = std::env::temp_dir().join(format!("ollama-bridge-keys-{}.toml", std::process::id()));
    let config = format!(
        "[[auth.keys]]\nname = \"ci\"\nkey_env = \"OLLAMA_BRIDGE_TEST_KEY\"\n\
         [[auth.keys]]\nname = \"ops\"\nkey_sha256 = \"{digest}\"\n"
    );
    std::fs::write(&path, config).expect("write config");
    let mut command = bridge();
    command
        .env("OLLAMA_BRIDGE_TEST_KEY", "sk-from-env")
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--upstream", &fake.url()]);
    let (mut child, addr, mut lines) = start_json(command).await;
    let _ = std::fs::remove_file(&path);
    let body = chat_body("synth?tokens=2", false).to_string();
    let ask = |headers: &'static [(&'static str, &'static str)]| {
        common::request_with(addr, "POST", "/v1/chat/completions", headers, &body)
    };
    assert_eq!(ask(&[]).await.status, 401);
    assert_eq!(
        ask(&[("authorization", "Bearer sk-from-digest-")])
            .await
            .status,
        401
    );
    let from_env = ask(&[("authorization", "Bearer sk-from-env")]).await;
    assert_eq!(from_env.status, 200, "{}", from_env.text());
    assert_eq!(
        from_env.json()["choices"][0]["message"]["content"],
        "w0 w1 "
    );
    assert_eq!(ask(&[("api-key", "sk-from-digest")]).await.status, 200);
    assert_eq!(fake.requests().len(), 2);

    // The log lines name the key, never the key itself.
    let never_the_key = |line: &str| assert!(!line.contains("sk-from"), "key logged: {line}");
    let finished = log_entries(&mut lines, "request finished", 2, never_the_key).await;
    let names: Vec<_> = finished.iter().map(|e| e["span"]["key"].clone()).collect();
    assert_eq!(names, ["ci", "ops"]);
    let _ = child.kill().await;
}
