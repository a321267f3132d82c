//! The serving side: h2c beside HTTP/1.1, keep-alive comments before the first token.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use bytes::Bytes;
use common::{Harness, chat, chat_body};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::test]
async fn h2c_with_prior_knowledge_streams_too() {
    let h = Harness::start().await;
    let stream = tokio::net::TcpStream::connect(h.bridge)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let body = chat_body("plain_stop", true).to_string();
    let req = http::Request::post(format!("http://{}/v1/chat/completions", h.bridge))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender.send_request(req).await.expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(r#""content":"Hello""#) && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    h.stop().await;
}

#[tokio::test]
async fn keepalive_comments_flow_until_the_first_token() {
    let h = Harness::start_with(|c| c.upstream.keepalive_ms = 100).await;
    let reply = chat(h.bridge, &chat_body("synth?tokens=3&pause_ms=450", true)).await;
    let text = reply.text();
    let first_data = text.find("data: ").expect("data events");
    let comments = text[..first_data].matches(": keep-alive\n\n").count();
    assert!(
        comments >= 2,
        "keep-alive comments before the first token: {text:?}"
    );
    assert_eq!(
        text.matches(": keep-alive").count(),
        comments,
        "none after the first token"
    );
    let data = reply.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    h.stop().await;
}
