//! Access control over real sockets: API keys, rate limits with OpenAI's headers, output
//! token budgets and concurrency caps, with fake-ollama behind the bridge on loopback.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::scrape::{parse, sum};
use common::{
    Harness, Reply, chat_body, read_reply, request, request_with, start_request, synth_text,
};
use ollama_bridge::auth::sha256;
use ollama_bridge::config::{Config, KeyConfig, QueueMode};

const ALPHA: &str = "sk-alpha-0123456789";
const BETA: &str = "sk-beta-9876543210";

fn key(name: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        name: name.to_owned(),
        key: Some(secret.to_owned()),
        ..KeyConfig::default()
    }
}

/// `alpha` inline, `beta` given as its SHA-256 digest.
fn two_keys(config: &mut Config) {
    config.auth.keys = vec![
        key("alpha", ALPHA),
        KeyConfig {
            name: "beta".to_owned(),
            key_sha256: Some(hex::encode(sha256(BETA.as_bytes()))),
            ..KeyConfig::default()
        },
    ];
}

async fn chat_as(h: &Harness, headers: &[(&str, &str)], model: &str) -> Reply {
    let body = chat_body(model, true).to_string();
    request_with(h.bridge, "POST", "/v1/chat/completions", headers, &body).await
}

fn assert_streamed(reply: &Reply, tokens: usize) {
    assert_eq!(reply.streamed_content(), synth_text(tokens));
}

fn assert_error(reply: &Reply, status: u16, kind: &str, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

async fn metrics(h: &Harness) -> Vec<common::scrape::Sample> {
    parse(&request(h.bridge, "GET", "/metrics", "").await.text())
}

#[tokio::test]
async fn keys_guard_the_api_and_leave_the_probes_open() {
    let h = Harness::start_with(two_keys).await;
    let model = "synth?tokens=3";
    let missing = chat_as(&h, &[], model).await;
    assert_error(&missing, 401, "authentication_error", "missing_api_key");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = chat_as(&h, &[("authorization", "Bearer sk-alpha-012345678")], model).await;
    assert_error(&wrong, 401, "authentication_error", "invalid_api_key");
    assert!(
        !wrong.text().contains("sk-alpha"),
        "the key is never echoed"
    );
    assert!(
        h.fake.requests().is_empty(),
        "nothing refused reached Ollama"
    );

    let bearer = format!("Bearer {ALPHA}");
    assert_streamed(&chat_as(&h, &[("authorization", &bearer)], model).await, 3);
    assert_streamed(&chat_as(&h, &[("api-key", ALPHA)], model).await, 3);
    let digest_key = format!("Bearer {BETA}");
    assert_streamed(
        &chat_as(&h, &[("authorization", &digest_key)], model).await,
        3,
    );

    // Unknown /v1 paths need a key too; probes and metrics do not.
    let probe = request(h.bridge, "GET", "/v1/nothing", "").await;
    assert_error(&probe, 401, "authentication_error", "missing_api_key");
    let known = request_with(h.bridge, "GET", "/v1/nothing", &[("api-key", BETA)], "").await;
    assert_eq!(known.status, 404);
    assert_eq!(request(h.bridge, "GET", "/healthz", "").await.status, 200);
    assert_eq!(request(h.bridge, "GET", "/readyz", "").await.status, 200);
    let text = request(h.bridge, "GET", "/metrics", "").await.text();
    assert!(
        !text.contains(ALPHA) && !text.contains(BETA),
        "keys never reach metrics"
    );
    let samples = parse(&text);
    let failures = |reason| {
        sum(
            &samples,
            "ollama_bridge_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!((failures("missing"), failures("invalid")), (2.0, 1.0));
    h.stop().await;
}

#[tokio::test]
async fn probes_and_metrics_can_require_a_key() {
    let h = Harness::start_with(|c| {
        two_keys(c);
        c.auth.protect_probes = true;
        c.auth.protect_metrics = true;
    })
    .await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let open = request(h.bridge, "GET", path, "").await;
        assert_error(&open, 401, "authentication_error", "missing_api_key");
        let keyed = request_with(h.bridge, "GET", path, &[("api-key", ALPHA)], "").await;
        assert_eq!(keyed.status, 200, "{path}");
    }
    h.stop().await;
}

#[tokio::test]
async fn request_limits_answer_429_with_consistent_headers() {
    let h = Harness::start_with(|c| {
        two_keys(c);
        // One request per 10 s, three at once: the numbers cannot move during the test.
        c.limits.requests_per_minute = Some(6);
        c.limits.burst = Some(3);
    })
    .await;
    let alpha = [("api-key", ALPHA)];
    for (remaining, reset) in [("2", "10s"), ("1", "20s"), ("0", "30s")] {
        let ok = chat_as(&h, &alpha, "synth?tokens=2").await;
        assert_streamed(&ok, 2);
        assert_eq!(ok.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some(remaining));
        assert_eq!(ok.header("x-ratelimit-reset-requests"), Some(reset));
        assert_eq!(
            ok.header("x-ratelimit-limit-tokens"),
            None,
            "no token limit set"
        );
    }
    let refused = chat_as(&h, &alpha, "synth?tokens=2").await;
    assert_error(&refused, 429, "rate_limit_error", "rate_limit_exceeded");
    assert_eq!(refused.header("retry-after"), Some("10"));
    assert_eq!(refused.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    // Full again after the wait for one request plus two more intervals: (29 s, 30 s].
    let reset = refused.header("x-ratelimit-reset-requests").expect("reset");
    let seconds: f64 = reset.trim_end_matches('s').parse().expect("seconds");
    assert!(seconds > 29.0 && seconds <= 30.0, "{reset}");
    // Another key has its own bucket.
    assert_streamed(
        &chat_as(&h, &[("api-key", BETA)], "synth?tokens=2").await,
        2,
    );
    assert_eq!(
        h.fake.requests().len(),
        4,
        "the refused request never reached Ollama"
    );

    let samples = metrics(&h).await;
    let limited = |key| {
        sum(
            &samples,
            "ollama_bridge_rate_limited_total",
            &[("key", key), ("limit", "requests")],
        )
    };
    assert_eq!((limited("alpha"), limited("beta")), (1.0, 0.0));
    h.stop().await;
}

#[tokio::test]
async fn output_tokens_are_charged_and_a_key_in_debt_is_refused() {
    let h = Harness::start_with(|c| {
        two_keys(c);
        c.limits.tokens_per_minute = Some(10);
    })
    .await;
    let alpha = [("api-key", ALPHA)];
    let first = chat_as(&h, &alpha, "synth?tokens=12").await;
    assert_streamed(&first, 12);
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("10"));
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), Some("10"));
    // eval_count 12 charged at 6 s a token: 72 s until full, one token back after 18 s.
    let refused = chat_as(&h, &alpha, "synth?tokens=1").await;
    assert_error(&refused, 429, "rate_limit_error", "rate_limit_exceeded");
    assert_eq!(refused.header("retry-after"), Some("18"));
    assert_eq!(refused.header("x-ratelimit-remaining-tokens"), Some("0"));
    let reset = refused.header("x-ratelimit-reset-tokens").expect("reset");
    assert!(reset.starts_with("1m11.") || reset == "1m12s", "{reset}");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("tokens"))
    );
    // The other key was not charged.
    assert_streamed(
        &chat_as(&h, &[("api-key", BETA)], "synth?tokens=1").await,
        1,
    );
    let samples = metrics(&h).await;
    let limited = sum(
        &samples,
        "ollama_bridge_rate_limited_total",
        &[("key", "alpha"), ("limit", "tokens")],
    );
    assert_eq!(limited, 1.0);
    h.stop().await;
}

const SLOW: &str = "synth?tokens=10&rate=20";

async fn open_stream(h: &Harness) -> http::Response<hyper::body::Incoming> {
    let body = chat_body(SLOW, true).to_string();
    start_request(h.bridge, "POST", "/v1/chat/completions", &[], &body).await
}

#[tokio::test]
async fn a_full_concurrency_cap_refuses_and_the_others_stream_on() {
    let h = Harness::start_with(|c| c.limits.max_concurrent = Some(2)).await;
    let a = open_stream(&h).await;
    let b = open_stream(&h).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let refused = chat_as(&h, &[], SLOW).await;
    assert_error(
        &refused,
        429,
        "rate_limit_error",
        "too_many_concurrent_requests",
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    let (a, b) = tokio::join!(read_reply(a), read_reply(b));
    assert_streamed(&a, 10);
    assert_streamed(&b, 10);
    // Both slots are free again.
    assert_streamed(&chat_as(&h, &[], "synth?tokens=1").await, 1);
    let samples = metrics(&h).await;
    let limited = sum(
        &samples,
        "ollama_bridge_rate_limited_total",
        &[("limit", "concurrency")],
    );
    assert_eq!(limited, 1.0);
    h.stop().await;
}

#[tokio::test]
async fn a_queued_request_proceeds_when_a_slot_frees() {
    let h = Harness::start_with(|c| {
        c.limits.max_concurrent_per_key = Some(1);
        c.limits.queue = QueueMode::Wait;
        c.limits.queue_timeout_ms = 10_000;
    })
    .await;
    let first = open_stream(&h).await;
    assert_eq!(first.status(), 200);
    let queued = tokio::spawn({
        let addr = h.bridge;
        async move {
            let body = chat_body("synth?tokens=3", true).to_string();
            let response = start_request(addr, "POST", "/v1/chat/completions", &[], &body).await;
            (tokio::time::Instant::now(), read_reply(response).await)
        }
    });
    // The second request is held in the queue while the first streams: nothing new upstream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.fake.requests().len(),
        1,
        "the queued request waits for its slot"
    );
    let first = read_reply(first).await;
    let first_done = tokio::time::Instant::now();
    assert_streamed(&first, 10);
    let (second_started, second) = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("the queued request is answered")
        .expect("task");
    assert_streamed(&second, 3);
    assert!(
        second_started >= first_done,
        "the queued one waited for the slot"
    );
    assert_eq!(h.fake.requests().len(), 2);
    h.stop().await;
}
