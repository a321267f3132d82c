//! Unit tests of the limiters, on governor's `FakeRelativeClock`: time is advanced, never
//! slept on.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use governor::clock::FakeRelativeClock;

use std::sync::atomic::Ordering;

use http::HeaderMap;

use super::*;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn rpm(per_minute: u32, burst: u32) -> Option<Quota> {
    Some(Quota::per_minute(nz(per_minute)).allow_burst(nz(burst)))
}

fn one_key(
    limits: ClientLimits,
    config: &LimitsConfig,
) -> (Limits<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let key = ApiKey::new("team-a", [7; 32], limits);
    let built = Limits::new(&[key], ClientLimits::default(), config, clock.clone());
    (built, clock)
}

async fn requests_window(limits: &Limits<FakeRelativeClock>) -> Result<Window, Rejection> {
    let admission = limits.admit(Identity::Key(0), false).await?;
    assert_eq!(admission.key(), "team-a");
    Ok(admission.headers().requests.unwrap())
}

#[tokio::test]
async fn burst_then_refill_with_consistent_headers() {
    let limits = ClientLimits {
        requests: rpm(60, 3),
        ..ClientLimits::default()
    };
    let (limits, clock) = one_key(limits, &LimitsConfig::default());
    let second = Duration::from_secs(1);
    for (remaining, reset) in [(2, 1), (1, 2), (0, 3)] {
        let w = requests_window(&limits).await.unwrap();
        assert_eq!(
            w,
            Window {
                limit: 3,
                remaining,
                reset: second * reset
            }
        );
    }
    let refused = requests_window(&limits).await.unwrap_err();
    assert_eq!(refused.limit, LimitKind::Requests);
    assert_eq!(&*refused.key, "team-a");
    assert_eq!(refused.retry_after, second);
    let w = refused.headers.requests.unwrap();
    assert_eq!((w.limit, w.remaining, w.reset), (3, 0, second * 3));

    clock.advance(Duration::from_millis(400));
    let refused = requests_window(&limits).await.unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_millis(600));
    clock.advance(Duration::from_millis(600));
    let w = requests_window(&limits).await.unwrap();
    assert_eq!((w.remaining, w.reset), (0, second * 3));
    clock.advance(second * 3);
    assert_eq!(requests_window(&limits).await.unwrap().remaining, 2);
}

#[tokio::test]
async fn tokens_are_charged_at_the_end_and_debt_refuses_until_refilled() {
    let limits = ClientLimits {
        tokens_per_minute: Some(nz(100)),
        ..ClientLimits::default()
    };
    let (limits, clock) = one_key(limits, &LimitsConfig::default());
    let first = limits.admit(Identity::Key(0), true).await.unwrap();
    let w = first.headers().tokens.unwrap();
    assert_eq!(
        w,
        Window {
            limit: 100,
            remaining: 100,
            reset: Duration::ZERO
        }
    );
    // A response of 150 tokens: 50 more than the budget had, i.e. 30 s of debt.
    first.charge(150);
    drop(first);
    let refused = limits.admit(Identity::Key(0), true).await.unwrap_err();
    assert_eq!(refused.limit, LimitKind::Tokens);
    // Full again in 150 * 0.6 s = 90 s; one token is back after 90 - 60 + 0.6 = 30.6 s.
    assert_eq!(refused.retry_after, Duration::from_millis(30_600));
    let w = refused.headers.tokens.unwrap();
    assert_eq!((w.remaining, w.reset), (0, Duration::from_secs(90)));
    clock.advance(Duration::from_millis(30_599));
    assert!(limits.admit(Identity::Key(0), true).await.is_err());
    clock.advance(Duration::from_millis(1));
    let back = limits.admit(Identity::Key(0), true).await.unwrap();
    assert_eq!(back.headers().tokens.unwrap().remaining, 1);
}

#[tokio::test]
async fn a_full_cap_refuses_at_once_and_a_freed_slot_admits() {
    let limits = ClientLimits {
        max_concurrent: Some(nz(2)),
        ..ClientLimits::default()
    };
    let (limits, _clock) = one_key(limits, &LimitsConfig::default());
    let a = limits.admit(Identity::Key(0), true).await.unwrap();
    let _b = limits.admit(Identity::Key(0), true).await.unwrap();
    // A request that takes no slot (a model list) is not capped.
    assert!(limits.admit(Identity::Key(0), false).await.is_ok());
    let refused = limits.admit(Identity::Key(0), true).await.unwrap_err();
    assert_eq!(refused.limit, LimitKind::Concurrency);
    drop(a);
    assert!(limits.admit(Identity::Key(0), true).await.is_ok());
}

#[tokio::test]
async fn the_queue_waits_for_a_slot_is_bounded_and_times_out() {
    let config = LimitsConfig {
        max_concurrent: Some(1),
        queue: QueueMode::Wait,
        queue_timeout_ms: 5_000,
        max_queued: 1,
        ..LimitsConfig::default()
    };
    let clock = FakeRelativeClock::default();
    let limits = Arc::new(Limits::new(&[], ClientLimits::default(), &config, clock));
    let ip = Identity::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let first = limits.admit(ip, true).await.unwrap();
    let waiting = tokio::spawn({
        let limits = Arc::clone(&limits);
        async move { limits.admit(ip, true).await.map(|_| ()) }
    });
    while limits.queue.waiting.load(Ordering::Acquire) == 0 {
        tokio::task::yield_now().await;
    }
    // The queue holds one: a third request is refused at once.
    let refused = limits.admit(ip, true).await.unwrap_err();
    assert_eq!(refused.limit, LimitKind::Concurrency);
    drop(first);
    assert!(waiting.await.unwrap().is_ok());
    assert_eq!(limits.queue.waiting.load(Ordering::Acquire), 0);

    let short = LimitsConfig {
        queue_timeout_ms: 20,
        ..config
    };
    let limits = Limits::new(
        &[],
        ClientLimits::default(),
        &short,
        FakeRelativeClock::default(),
    );
    let _held = limits.admit(ip, true).await.unwrap();
    let refused = limits.admit(ip, true).await.unwrap_err();
    assert_eq!(refused.limit, LimitKind::Concurrency);
}

#[tokio::test]
async fn per_model_caps_apply_to_their_model_only() {
    let config = LimitsConfig {
        max_concurrent_per_model: [("llama3.2:3b".to_owned(), 1)].into(),
        ..LimitsConfig::default()
    };
    let limits = Limits::new(
        &[],
        ClientLimits::default(),
        &config,
        FakeRelativeClock::default(),
    );
    let ip = Identity::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut first = limits.admit(ip, true).await.unwrap();
    limits.model_slot(&mut first, "llama3.2:3b").await.unwrap();
    let mut second = limits.admit(ip, true).await.unwrap();
    limits.model_slot(&mut second, "qwen3:8b").await.unwrap();
    let refused = limits
        .model_slot(&mut second, "llama3.2:3b")
        .await
        .unwrap_err();
    assert_eq!(refused.limit, LimitKind::Concurrency);
    drop(first);
    assert!(limits.model_slot(&mut second, "llama3.2:3b").await.is_ok());
}

#[tokio::test]
async fn client_ips_are_limited_apart_and_forgotten_when_idle() {
    let clock = FakeRelativeClock::default();
    let ip_limits = ClientLimits {
        requests: rpm(60, 2),
        ..ClientLimits::default()
    };
    let limits = Limits::new(&[], ip_limits, &LimitsConfig::default(), clock.clone());
    let a = Identity::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    let b = Identity::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert!(limits.admit(a, false).await.is_ok());
    assert!(limits.admit(a, false).await.is_ok());
    assert_eq!(
        limits.admit(a, false).await.unwrap_err().limit,
        LimitKind::Requests
    );
    let held = limits.admit(b, true).await.unwrap();
    assert_eq!(held.key(), "");
    assert_eq!(limits.tracked_ips(), 2);
    assert_eq!(limits.evict_idle(), 0, "a's bucket is not full again yet");
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        limits.evict_idle(),
        1,
        "a is idle; b has a request in flight"
    );
    drop(held);
    assert_eq!(limits.evict_idle(), 1);
    assert_eq!(limits.tracked_ips(), 0);
}

#[tokio::test]
async fn nothing_configured_tracks_nothing() {
    let limits = Limits::new(
        &[],
        ClientLimits::default(),
        &LimitsConfig::default(),
        FakeRelativeClock::default(),
    );
    let ip = Identity::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let admission = limits.admit(ip, true).await.unwrap();
    assert_eq!(admission.headers(), RateHeaders::default());
    assert_eq!(limits.tracked_ips(), 0);
}

#[test]
fn resets_are_written_as_openai_does() {
    let cases = [
        (20, "20ms"),
        (1_000, "1s"),
        (1_500, "1.5s"),
        (360_000, "6m0s"),
        (61_250, "1m1.25s"),
    ];
    for (ms, text) in cases {
        assert_eq!(format_reset(Duration::from_millis(ms)), text);
    }
    let mut headers = HeaderMap::new();
    RateHeaders {
        requests: Some(Window {
            limit: 3,
            remaining: 1,
            reset: Duration::from_secs(2),
        }),
        tokens: None,
    }
    .write_to(&mut headers);
    assert_eq!(headers["x-ratelimit-limit-requests"], "3");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "1");
    assert_eq!(headers["x-ratelimit-reset-requests"], "2s");
    assert!(!headers.contains_key("x-ratelimit-limit-tokens"));
}

#[tokio::test]
async fn debt_is_bounded_and_never_overflows() {
    let limits = ClientLimits {
        tokens_per_minute: Some(nz(1)),
        ..ClientLimits::default()
    };
    let (limits, clock) = one_key(limits, &LimitsConfig::default());
    let admission = limits.admit(Identity::Key(0), false).await.unwrap();
    for _ in 0..1_000 {
        admission.charge(u64::MAX);
    }
    let refused = limits.admit(Identity::Key(0), false).await.unwrap_err();
    let year = Duration::from_secs(365 * 24 * 3600);
    assert_eq!(refused.headers.tokens.unwrap().reset, year);
    clock.advance(year);
    assert!(limits.admit(Identity::Key(0), false).await.is_ok());
}
