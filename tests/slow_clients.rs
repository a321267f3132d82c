//! A client that stops reading: backpressure reaches the upstream, and
//! `server.write_idle_timeout_ms` ends the stalled stream and drops its upstream request.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::{Harness, active_streams, chat, chat_body, eventually, read_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A long, unthrottled stream: about 20 MB of NDJSON.
const LONG: &str = "synth?tokens=200000";

/// A connection with a 4 KiB receive buffer, the request sent.
async fn small_window_request(h: &Harness, model: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(h.bridge).await.expect("connect");
    let body = chat_body(model, true).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("request");
    stream
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_the_upstream_then_times_out() {
    let h = Harness::start_with(|c| c.server.write_idle_timeout_ms = 3_000).await;
    let before = h.fake.streamed_bytes();
    let whole = chat(h.bridge, &chat_body(LONG, true)).await;
    assert_eq!(whole.status, 200);
    let total = h.fake.streamed_bytes() - before;

    let mut stream = small_window_request(&h, LONG).await;
    read_until(&mut stream, b"data:", 1).await;
    let start = h.fake.streamed_bytes();
    // The client reads nothing more: fake-ollama's writes must come to a stop well before
    // the end of its stream, while the stream stays open.
    let mut last = usize::MAX;
    let stalled = eventually(Duration::from_secs(2), async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = h.fake.streamed_bytes();
        std::mem::replace(&mut last, now) == now
    })
    .await;
    let sent = h.fake.streamed_bytes() - start;
    assert!(
        stalled,
        "upstream never stopped: {sent} of {total} bytes sent"
    );
    assert!(
        sent < total / 2,
        "upstream sent {sent} of {total} bytes to a client that reads nothing"
    );
    assert_eq!(h.fake.open_streams(), 1, "the stalled stream is still open");

    // Past the write-idle timeout the bridge gives up: upstream dropped, stream counted off,
    // the client's connection closed.
    let dropped = eventually(Duration::from_secs(6), async || h.fake.open_streams() == 0).await;
    assert!(dropped, "upstream still open after the write-idle timeout");
    assert!(
        eventually(Duration::from_secs(2), async || active_streams(&h).await
            == 0.0)
        .await
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the client's connection was closed");
    h.stop().await;
}
