//! Known traffic through fake-ollama (a fixed delay before the first token, a fixed token
//! rate), then a scrape of `/metrics`: counts exact, timings consistent with what was
//! injected (generous bounds: this checks the measuring, not the machine).

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::scrape::{Sample, parse, sum};
use common::{Harness, chat, chat_body, request};

const TTFT: &str = "gen_ai_server_time_to_first_token_seconds";
const TPOT: &str = "gen_ai_server_time_per_output_token_seconds";
const SYNTH: (&str, &str) = ("gen_ai_request_model", "synth");

async fn scrape(h: &Harness) -> Vec<Sample> {
    let reply = request(h.bridge, "GET", "/metrics", "").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    parse(&reply.text())
}

fn mean(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    sum(samples, &format!("{name}_sum"), labels) / sum(samples, &format!("{name}_count"), labels)
}

#[tokio::test]
async fn ttft_and_token_timings_match_the_injected_delay_and_rate() {
    let h = Harness::start().await;
    // 200 ms before the first token, then 50 tokens/s: 11 tokens, so 10 gaps of 20 ms and one
    // more before the last line.
    let model = "synth?tokens=11&rate=50&delay_ms=200";
    for stream in [true, true, true, false] {
        let reply = chat(h.bridge, &chat_body(model, stream)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let m = scrape(&h).await;
    let chat = ("gen_ai_operation_name", "chat");
    assert_eq!(sum(&m, &format!("{TTFT}_count"), &[chat, SYNTH]), 4.0);
    let ttft = mean(&m, TTFT, &[SYNTH]);
    assert!(
        (0.19..1.0).contains(&ttft),
        "mean TTFT {ttft} s for a 200 ms delay"
    );
    assert_eq!(sum(&m, &format!("{TPOT}_count"), &[SYNTH]), 4.0);
    let tpot = mean(&m, TPOT, &[SYNTH]);
    assert!(
        (0.015..0.1).contains(&tpot),
        "mean time per output token {tpot} s at 50 tokens/s"
    );
    let rate = mean(&m, "ollama_bridge_output_tokens_per_second", &[SYNTH]);
    assert!(
        (15.0..70.0).contains(&rate),
        "mean {rate} tokens/s at 50 tokens/s"
    );
    let duration = mean(
        &m,
        "gen_ai_server_request_duration_seconds",
        &[SYNTH, ("error_type", "")],
    );
    assert!(
        duration > 0.4 && duration < 2.0,
        "mean duration {duration} s"
    );
    // Ttft bucket counts are cumulative: nothing under 100 ms, everything by 10 s.
    assert_eq!(
        sum(&m, &format!("{TTFT}_bucket"), &[SYNTH, ("le", "0.1")]),
        0.0
    );
    assert_eq!(
        sum(&m, &format!("{TTFT}_bucket"), &[SYNTH, ("le", "10")]),
        4.0
    );
    let usage = "gen_ai_client_token_usage";
    assert_eq!(
        sum(
            &m,
            &format!("{usage}_sum"),
            &[SYNTH, ("gen_ai_token_type", "output")]
        ),
        44.0
    );
    assert_eq!(
        sum(
            &m,
            &format!("{usage}_sum"),
            &[SYNTH, ("gen_ai_token_type", "input")]
        ),
        40.0
    );
    let requests = [
        ("endpoint", "/v1/chat/completions"),
        SYNTH,
        ("status_class", "2xx"),
    ];
    assert_eq!(sum(&m, "ollama_bridge_requests_total", &requests), 4.0);
    assert_eq!(sum(&m, "ollama_bridge_active_streams", &[]), 0.0);
    assert_eq!(
        sum(
            &m,
            "ollama_bridge_ollama_eval_duration_seconds_count",
            &[SYNTH]
        ),
        4.0
    );
    assert_eq!(
        sum(&m, "ollama_bridge_overhead_seconds_count", &[chat]),
        4.0
    );
    assert!(m.iter().any(|s| s.name == "process_resident_memory_bytes"));
    h.stop().await;
}

#[tokio::test]
async fn failures_disconnects_and_active_streams_are_counted() {
    let h = Harness::start().await;
    chat(h.bridge, &chat_body("synth?tokens=6&error_after=3", true)).await;
    chat(h.bridge, &chat_body("does-not-exist", true)).await;
    // A slow stream: active while it runs, then the client leaves.
    let mut stream =
        common::send_raw_chat(h.bridge, &chat_body("synth?tokens=500&rate=20", true)).await;
    let mut buf = [0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
        .await
        .expect("first bytes");
    assert!(n > 0);
    assert_eq!(
        sum(&scrape(&h).await, "ollama_bridge_active_streams", &[]),
        1.0
    );
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = scrape(&h).await;
        if sum(&m, "ollama_bridge_client_disconnects_total", &[SYNTH]) == 1.0 {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "disconnect never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(sum(&m, "ollama_bridge_active_streams", &[]), 0.0);
    assert_eq!(
        sum(
            &m,
            "ollama_bridge_upstream_errors_total",
            &[("kind", "error")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "ollama_bridge_upstream_errors_total",
            &[("kind", "status")]
        ),
        1.0
    );
    let failed = |error_type| {
        sum(
            &m,
            "gen_ai_server_request_duration_seconds_count",
            &[("error_type", error_type)],
        )
    };
    assert_eq!(failed("upstream_error"), 1.0);
    assert_eq!(failed("upstream_status"), 1.0);
    assert_eq!(failed("client_disconnected"), 1.0);
    let not_found = [
        ("endpoint", "/v1/chat/completions"),
        ("gen_ai_request_model", ""),
        ("status_class", "4xx"),
    ];
    assert_eq!(
        sum(&m, "ollama_bridge_requests_total", &not_found),
        1.0,
        "the unknown name is not a label"
    );
    assert!(!m.iter().any(|s| {
        s.labels
            .values()
            .any(|v| v.contains("does-not-exist") || v.contains('?'))
    }));
    h.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_probes_answer() {
    let h = Harness::start().await;
    let reply = request(h.bridge, "GET", "/healthz", "").await;
    assert_eq!(
        (reply.status, reply.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let reply = request(h.bridge, "GET", "/readyz", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["ollama_version"], "0.0.0-fake");
    assert!(
        reply
            .header("x-request-id")
            .is_some_and(|id| id.len() == 24)
    );
    let stream = tokio::net::TcpStream::connect(h.bridge)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/healthz", h.bridge))
        .header("x-request-id", "client-chosen-7")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-7")
    );
    h.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_ollama_is_away() {
    let upstream = common::closed_upstream().await;
    let h = Harness::start_with(|c| {
        c.upstream.url = upstream;
        c.metrics.path = "/internal/metrics".to_owned();
    })
    .await;
    let reply = request(h.bridge, "GET", "/readyz", "").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["status"], "not ready");
    assert_eq!(
        request(h.bridge, "GET", "/internal/metrics", "")
            .await
            .status,
        200
    );
    assert_eq!(request(h.bridge, "GET", "/metrics", "").await.status, 404);
    h.stop().await;
}

/// Lines that reach the bridge in one read (fake-ollama without a rate writes them
/// together) still count their first token and model, whether the read ends the stream with
/// Ollama's last chunk or with an error line.
#[tokio::test]
async fn a_stream_read_at_once_is_still_timed_and_labelled() {
    let h = Harness::start().await;
    let rounds = 20;
    for _ in 0..rounds {
        for model in ["synth?tokens=3", "synth?tokens=6&error_after=3"] {
            let reply = chat(h.bridge, &chat_body(model, true)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert!(reply.text().contains("w2 "), "{}", reply.text());
        }
    }
    let m = scrape(&h).await;
    assert_eq!(
        sum(&m, &format!("{TTFT}_count"), &[SYNTH]),
        f64::from(2 * rounds)
    );
    let by_outcome = |error_type| {
        sum(
            &m,
            "gen_ai_server_request_duration_seconds_count",
            &[SYNTH, ("error_type", error_type)],
        )
    };
    assert_eq!(by_outcome(""), f64::from(rounds));
    assert_eq!(by_outcome("upstream_error"), f64::from(rounds));
    h.stop().await;
}
