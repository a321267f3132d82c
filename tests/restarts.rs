//! Upstream restarts: a pooled connection Ollama closed is retried once on a new one; while
//! Ollama is down requests get a quick 502 and `/readyz` says not ready; once it is back
//! everything works again without restarting the bridge.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{chat, chat_body, read_request, start_bridge, synth_text};
use ollama_bridge::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const ANSWER: &[u8] = b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":false}\n\
{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":1}\n";

/// An upstream that answers the first request of each connection, keeps the connection
/// open, and closes it without a word when a second request comes on it: what a pooled
/// connection to an Ollama that restarted looks like. Counts connections.
async fn forgetful_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if !read_request(&mut stream).await {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
                    ANSWER.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(ANSWER).await;
                // The next request on this connection gets the connection closed.
                read_request(&mut stream).await;
            });
        }
    });
    (url, connections)
}

#[tokio::test]
async fn a_request_on_a_stale_pooled_connection_is_retried_on_a_new_one() {
    let (url, connections) = forgetful_upstream().await;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.upstream.url = url;
    let (bridge, _stop, _task) = start_bridge(config).await;
    for round in 0..3 {
        let reply = chat(bridge, &chat_body("m", true)).await;
        assert_eq!(reply.streamed_content(), "hi", "request {round}");
    }
    // The first request opened a connection; each later one found it stale, then had a new one.
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

/// fake-ollama as its own process, so that it can die and come back on the same port.
async fn fake_ollama(listen: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-ollama"))
        .args(["--listen", listen, "--rate", "0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("fake-ollama starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if let Some((_, addr)) = line.split_once("listening on ") {
                return addr.trim().to_owned();
            }
        }
        panic!("fake-ollama exited without a start line");
    })
    .await
    .expect("start line within 10 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn ready(bridge: std::net::SocketAddr) -> u16 {
    common::request(bridge, "GET", "/readyz", "").await.status
}

/// `count` streams at once, all of which must complete.
async fn streams_complete(bridge: std::net::SocketAddr, count: usize) {
    let streams: Vec<_> = (0..count)
        .map(|_| {
            tokio::spawn(async move { chat(bridge, &chat_body("synth?tokens=5", true)).await })
        })
        .collect();
    for stream in streams {
        assert_eq!(
            stream.await.expect("stream").streamed_content(),
            synth_text(5)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_down_and_back() {
    let (mut ollama, url) = fake_ollama("127.0.0.1:0").await;
    let listen = url.trim_start_matches("http://").to_owned();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.upstream.url = url;
    let (bridge, _stop, _task) = start_bridge(config).await;
    streams_complete(bridge, 8).await;
    assert_eq!(ready(bridge).await, 200);

    // Restarted while 8 idle pooled connections exist: the next requests succeed.
    ollama.kill().await.expect("kill");
    let (mut ollama, _) = fake_ollama(&listen).await;
    streams_complete(bridge, 8).await;

    // Down: a quick 502 and not ready.
    ollama.kill().await.expect("kill");
    let asked = Instant::now();
    let reply = chat(bridge, &chat_body("synth?tokens=5", true)).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "upstream_unreachable");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "502 after {:?}",
        asked.elapsed()
    );
    assert_eq!(ready(bridge).await, 503);

    // Back: ready, and streams work, with no restart of the bridge.
    let (_ollama, _) = fake_ollama(&listen).await;
    assert_eq!(ready(bridge).await, 200);
    streams_complete(bridge, 8).await;
}
