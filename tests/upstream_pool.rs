//! The generation requests' upstream connections: a body read to its end (Ollama's chunked
//! NDJSON, its last chunk at once or a moment later) puts its connection back in the pool
//! for the next request; a body dropped before its end closes its connection.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{chat, chat_body, eventually, read_request, start_bridge};
use ollama_bridge::config::Config;
use ollama_bridge::ollama::h1::{Connections, ResponseBody};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const LINES: [&str; 2] = [
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},\"done\":false}\n",
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":1}\n",
];

/// When the upstream writes the zero-size chunk that ends a body.
#[derive(Clone)]
enum LastChunk {
    /// In the same write as the last line, as a server that knows the end does.
    WithLastLine,
    /// Once told to.
    When(Arc<Notify>),
}

/// A keep-alive upstream answering every request with [`LINES`], one chunk each, and
/// ending the body as `last` says. Counts connections; a connection the bridge closes
/// bumps `closed`.
async fn chunked_upstream(last: LastChunk) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (connections, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (accepted, ended) = (Arc::clone(&connections), Arc::clone(&closed));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (last, ended) = (last.clone(), Arc::clone(&ended));
            tokio::spawn(async move {
                while read_request(&mut stream).await {
                    answer(&mut stream, &last).await;
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, connections, closed)
}

async fn answer(stream: &mut TcpStream, last: &LastChunk) {
    let mut wire =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for line in LINES {
        wire.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
    }
    if matches!(last, LastChunk::WithLastLine) {
        wire.extend_from_slice(b"0\r\n\r\n");
    }
    let _ = stream.write_all(&wire).await;
    if let LastChunk::When(go) = last {
        go.notified().await;
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}

fn bridge_config(url: String) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.upstream.url = url;
    config
}

#[tokio::test]
async fn streams_one_after_another_share_one_upstream_connection() {
    let (url, connections, _) = chunked_upstream(LastChunk::WithLastLine).await;
    let (bridge, _stop, _task) = start_bridge(bridge_config(url)).await;
    for round in 0..4 {
        let reply = chat(bridge, &chat_body("m", round % 2 == 0)).await;
        assert_eq!(reply.status, 200, "request {round}: {}", reply.text());
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

fn connections(url: &str) -> Connections {
    let base = url.parse().expect("url");
    Connections::new(&base, Duration::from_secs(5), Duration::from_secs(30))
}

/// Sends a chat request and reads its body up to the `done` line (what the bridge needs).
async fn read_lines(pool: &Connections) -> ResponseBody {
    let (head, mut body) = pool.post_json("/api/chat", b"{}").await.expect("answer");
    assert_eq!(head.status, 200);
    let mut seen = Vec::new();
    while seen != LINES.concat().as_bytes() {
        let data = poll_fn(|cx| body.poll_data(cx)).await;
        seen.extend_from_slice(&data.expect("more data").expect("read"));
    }
    body
}

#[tokio::test]
async fn a_late_last_chunk_is_waited_for_and_the_connection_reused() {
    let go = Arc::new(Notify::new());
    let (url, accepted, _) = chunked_upstream(LastChunk::When(Arc::clone(&go))).await;
    let pool = connections(&url);
    let mut body = Some(read_lines(&pool).await);
    poll_fn(|cx| {
        body.take().expect("once").release(cx);
        std::task::Poll::Ready(())
    })
    .await;
    assert_eq!(pool.idle(), 0, "pooled before its end arrived");
    go.notify_one();
    assert!(eventually(Duration::from_secs(5), async || pool.idle() == 1).await);
    go.notify_one();
    let body = read_lines(&pool).await;
    drop(body);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let go = Arc::new(Notify::new());
    let (url, accepted, closed) = chunked_upstream(LastChunk::When(Arc::clone(&go))).await;
    let pool = connections(&url);
    drop(read_lines(&pool).await);
    // The upstream sees the close once it wrote its last chunk.
    go.notify_one();
    assert!(
        eventually(Duration::from_secs(5), async || closed
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert_eq!(pool.idle(), 0);
    // The next request has a connection of its own, and its whole answer.
    let (_, body) = pool.post_json("/api/chat", b"{}").await.expect("answer");
    go.notify_one();
    let whole = tokio::time::timeout(Duration::from_secs(5), body.collect(4096))
        .await
        .expect("the body ends")
        .expect("read");
    assert_eq!(whole, LINES.concat().as_bytes());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
