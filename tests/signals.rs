//! Signals to the binary: SIGTERM past `server.shutdown_grace_ms` ends open streams with an
//! error event and exits 0; SIGHUP reloads keys and aliases without dropping streams, and
//! refuses an invalid file, keeping the running configuration.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::binary::{LogLines, bridge, log_entries, start_json};
use common::{Reply, chat_body, chat_transcripts, eventually, request_with, synth_text};
use ollama_bridge::fake_ollama::FakeOllama;
use serde_json::Value;
use tokio::process::Command;

async fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("pid").to_string();
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(sent.success());
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("ollama-bridge-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The binary with `--config path`, in front of `fake`.
async fn start_with_config(
    fake: &FakeOllama,
    path: &std::path::Path,
) -> (tokio::process::Child, SocketAddr, LogLines) {
    let mut command = bridge();
    command
        .arg("--config")
        .arg(path)
        .args(["--listen", "127.0.0.1:0", "--upstream", &fake.url()]);
    start_json(command).await
}

async fn chat_as(addr: SocketAddr, key: &str, body: &Value) -> Reply {
    let bearer = format!("Bearer {key}");
    request_with(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &bearer)],
        &body.to_string(),
    )
    .await
}

async fn wait_for_request(fake: &FakeOllama) {
    let arrived = eventually(Duration::from_secs(5), async || !fake.requests().is_empty()).await;
    assert!(arrived, "no request reached fake-ollama");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_ends_open_streams_with_an_error_event_and_exits_0() {
    let fake = FakeOllama::start(chat_transcripts()).await.expect("fake");
    let path = config_file("grace", "[server]\nshutdown_grace_ms = 300\n");
    let (mut child, addr, mut logs) = start_with_config(&fake, &path).await;
    let _ = std::fs::remove_file(&path);
    // 100 tokens at 20 per second: 5 s, far past the grace.
    let body = chat_body("synth?tokens=100&rate=20", true);
    let stream = tokio::spawn(async move { common::chat(addr, &body).await });
    wait_for_request(&fake).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&child, "TERM").await;

    let reply = stream.await.expect("stream task");
    let data = reply.sse_data();
    let (last, chunks) = data.split_last().expect("events");
    let error: Value = serde_json::from_str(last).expect("JSON event");
    assert_eq!(error["error"]["code"], "server_shutting_down", "{data:?}");
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            let chunk: Value = serde_json::from_str(c).expect("chunk");
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        !content.is_empty() && synth_text(100).starts_with(&content),
        "the partial content is kept: {content:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "{status}");
    log_entries(&mut logs, "shutdown grace period over", 1, |_| {}).await;
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_keys_and_aliases_without_dropping_streams() {
    let fake = FakeOllama::start(chat_transcripts()).await.expect("fake");
    let path = config_file(
        "reload",
        "[[auth.keys]]\nname = \"one\"\nkey = \"sk-one\"\n",
    );
    let (mut child, addr, mut logs) = start_with_config(&fake, &path).await;

    // A stream of 1.5 s with the old key runs across the reload.
    let body = chat_body("synth?tokens=30&rate=20", true);
    let stream = tokio::spawn(async move { chat_as(addr, "sk-one", &body).await });
    wait_for_request(&fake).await;
    std::fs::write(
        &path,
        "[[auth.keys]]\nname = \"two\"\nkey = \"sk-two\"\n[aliases]\n\"gpt-x\" = \"synth?tokens=3\"\n",
    )
    .expect("rewrite config");
    signal(&child, "HUP").await;
    log_entries(&mut logs, "configuration reloaded", 1, |_| {}).await;

    let short = chat_body("synth?tokens=2", false);
    assert_eq!(
        chat_as(addr, "sk-one", &short).await.status,
        401,
        "old key gone"
    );
    let aliased = chat_as(addr, "sk-two", &chat_body("gpt-x", false)).await;
    assert_eq!(aliased.status, 200, "{}", aliased.text());
    assert_eq!(
        aliased.json()["choices"][0]["message"]["content"],
        synth_text(3)
    );
    assert_eq!(aliased.json()["model"], "gpt-x");
    let reply = stream.await.expect("stream task");
    assert_eq!(
        reply.streamed_content(),
        synth_text(30),
        "the open stream finished"
    );

    // An invalid file is refused; the running configuration stays.
    std::fs::write(&path, "[server]\nlisten_on = \"nowhere\"\n").expect("rewrite config");
    signal(&child, "HUP").await;
    let refused = log_entries(&mut logs, "configuration reload refused", 1, |_| {}).await;
    let message = refused[0]["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("listen_on"),
        "names the bad key: {message}"
    );
    assert_eq!(refused[0]["level"], "ERROR");
    assert_eq!(chat_as(addr, "sk-two", &short).await.status, 200);
    assert_eq!(chat_as(addr, "sk-one", &short).await.status, 401);
    let _ = std::fs::remove_file(&path);
    let _ = child.kill().await;
}
