//! Server hardening over real sockets: slow-header clients are cut off, oversized bodies get
//! 413, the connection cap holds the rest back, and none of it disturbs a stream beside it.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::{Harness, chat_body, read_reply, request, start_request, synth_text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); what it sent before.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0_u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await
        .expect("the server closes the connection within 5 s");
    seen
}

#[tokio::test]
async fn slow_headers_and_oversized_bodies_do_not_disturb_a_stream() {
    let h = Harness::start_with(|c| {
        c.server.header_read_timeout_ms = 300;
        c.server.max_body_bytes = 64 * 1024;
    })
    .await;
    let body = chat_body("synth?tokens=20&rate=20", true).to_string();
    let stream = start_request(h.bridge, "POST", "/v1/chat/completions", &[], &body).await;
    assert_eq!(stream.status(), 200);
    let streaming = tokio::spawn(read_reply(stream));

    // Connects and sends nothing at all.
    let mut silent = TcpStream::connect(h.bridge).await.expect("connect");
    // Sends half a request head and stalls.
    let mut slow = TcpStream::connect(h.bridge).await.expect("connect");
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: bridge\r\ncontent-")
        .await
        .expect("write");
    // Sends part of the HTTP/2 preface, so the protocol cannot be told yet.
    let mut h2_slow = TcpStream::connect(h.bridge).await.expect("connect");
    h2_slow
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    // One whole request, then half of the next one on the same kept-alive connection.
    let mut kept = TcpStream::connect(h.bridge).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: bridge\r\n\r\n")
        .await
        .expect("write");
    let mut first_reply = [0_u8; 512];
    let n = kept.read(&mut first_reply).await.expect("read");
    assert!(first_reply[..n].starts_with(b"HTTP/1.1 200"));
    kept.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let (silent, slow, h2_slow, kept) = tokio::join!(
        until_closed(&mut silent),
        until_closed(&mut slow),
        until_closed(&mut h2_slow),
        until_closed(&mut kept)
    );
    assert!(silent.is_empty() && h2_slow.is_empty() && kept.is_empty());
    assert!(
        slow.is_empty() || slow.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&slow)
    );
    assert_eq!(h.fake.requests().len(), 1, "none of them reached Ollama");

    let big = format!(
        "{{\"model\":\"synth\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "x".repeat(100 * 1024)
    );
    let too_large = request(h.bridge, "POST", "/v1/chat/completions", &big).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["error"]["code"], "request_too_large");

    let streamed = streaming.await.expect("task");
    assert_eq!(streamed.streamed_content(), synth_text(20));
    h.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_new_connections_until_one_closes() {
    let h = Harness::start_with(|c| c.server.max_connections = 2).await;
    let first = TcpStream::connect(h.bridge).await.expect("connect");
    let _second = TcpStream::connect(h.bridge).await.expect("connect");
    // The kernel completes the third handshake; the bridge does not serve it yet.
    let waiting = tokio::spawn(request(h.bridge, "GET", "/healthz", ""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past the cap"
    );
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert_eq!(reply.status, 200);
    h.stop().await;
}
