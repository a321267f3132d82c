//! Response and tool-call ids: `chatcmpl-…` and `call_…`, unique per process and unpredictable
//! enough for correlation (not secrets).

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 24 lowercase hex digits: a per-process random key hashed with a counter.
fn token() -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let key = KEY.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = key.hash_one(n);
    let low = key.hash_one(!n) as u32;
    format!("{high:016x}{low:08x}")
}

/// A chat completion id, `chatcmpl-` and 24 hex digits.
pub fn chat_completion_id() -> String {
    format!("chatcmpl-{}", token())
}

/// A text completion id, `cmpl-` and 24 hex digits.
pub fn completion_id() -> String {
    format!("cmpl-{}", token())
}

/// A tool call id, `call_` and 24 hex digits, for upstreams that send none.
pub fn tool_call_id() -> String {
    format!("call_{}", token())
}

/// A request id for `x-request-id`, 24 hex digits.
pub fn request_id() -> String {
    token()
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_and_shaped() {
        let a = super::chat_completion_id();
        let b = super::chat_completion_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "chatcmpl-".len() + 24);
        assert!(super::tool_call_id().starts_with("call_"));
    }
}
