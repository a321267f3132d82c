//! OpenAI's `x-ratelimit-*` response headers.
//!
//! Source: OpenAI API reference, "Rate limits > Rate limits in headers".

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

/// One limit's state as OpenAI's `x-ratelimit-*` headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Most requests (or tokens) allowed before the limit is exhausted: the burst.
    pub limit: u32,
    /// Requests (or tokens) still allowed now, after this request.
    pub remaining: u32,
    /// Time until the limit is back to its full `limit`.
    pub reset: Duration,
}

/// The `x-ratelimit-*` values of one response; `None` where that limit is off.
///
/// Source: OpenAI API reference, "Rate limits > Rate limits in headers".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// `x-ratelimit-{limit,remaining,reset}-requests`.
    pub requests: Option<Window>,
    /// `x-ratelimit-{limit,remaining,reset}-tokens`.
    pub tokens: Option<Window>,
}

impl RateHeaders {
    /// Writes the headers of each limit that is on.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        for (window, names) in [
            (self.requests, REQUEST_HEADERS),
            (self.tokens, TOKEN_HEADERS),
        ] {
            let Some(w) = window else { continue };
            let [limit, remaining, reset] = names;
            headers.insert(limit, HeaderValue::from(w.limit));
            headers.insert(remaining, HeaderValue::from(w.remaining));
            if let Ok(value) = HeaderValue::from_str(&format_reset(w.reset)) {
                headers.insert(reset, value);
            }
        }
    }
}

const REQUEST_HEADERS: [&str; 3] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
];
const TOKEN_HEADERS: [&str; 3] = [
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

/// A duration as OpenAI writes `x-ratelimit-reset-*`: `20ms`, `1s`, `1.5s`, `6m0s`.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (minutes, ms) = (ms / 60_000, ms % 60_000);
    let seconds = if ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        let text = format!("{}.{:03}", ms / 1_000, ms % 1_000);
        format!("{}s", text.trim_end_matches('0'))
    };
    if minutes > 0 {
        format!("{minutes}m{seconds}")
    } else {
        seconds
    }
}
