//! The output-token budget of one client: tokens per minute, charged after the fact, with
//! debt.

use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

use super::{MINUTE, Window};

/// The longest a budget can be in debt: a year.
const MAX_DEBT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Output tokens per minute with debt: `full_at` is the instant the budget is full again;
/// each token moves it `per_token` later. The budget admits a request while at least one
/// token is left, i.e. while `full_at - now + per_token <= 1 minute`.
#[derive(Debug)]
pub(super) struct TokenBudget<C: Clock> {
    limit: u32,
    per_token: u64,
    full_at: Mutex<C::Instant>,
}

impl<C: Clock> TokenBudget<C> {
    pub(super) fn new(per_minute: NonZeroU32, now: C::Instant) -> Self {
        let per_token = (MINUTE.as_nanos() / u128::from(per_minute.get())).max(1);
        Self {
            limit: per_minute.get(),
            per_token: u64::try_from(per_token).unwrap_or(u64::MAX),
            full_at: Mutex::new(now),
        }
    }

    /// Time until full, in nanoseconds.
    fn deficit(&self, now: C::Instant) -> u64 {
        let full_at = *self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        full_at.duration_since(now).as_u64()
    }

    /// The window now, or the window and the wait until one token is left.
    pub(super) fn check(&self, now: C::Instant) -> Result<Window, (Window, Duration)> {
        let deficit = self.deficit(now);
        let minute = MINUTE.as_nanos() as u64;
        let left = minute.saturating_sub(deficit) / self.per_token;
        let window = Window {
            limit: self.limit,
            remaining: u32::try_from(left).unwrap_or(u32::MAX).min(self.limit),
            reset: Duration::from_nanos(deficit),
        };
        match (deficit + self.per_token).checked_sub(minute) {
            Some(wait) if wait > 0 => Err((window, Duration::from_nanos(wait))),
            _ => Ok(window),
        }
    }

    /// Charges `tokens`, going into debt when they are more than is left (at most
    /// [`MAX_DEBT`] of it, which keeps instants far from overflow).
    pub(super) fn charge(&self, tokens: u64, now: C::Instant) {
        let cost = tokens.saturating_mul(self.per_token);
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let deficit = full_at.duration_since(now).as_u64();
        let deficit = deficit.saturating_add(cost).min(MAX_DEBT.as_nanos() as u64);
        *full_at = now + Nanos::new(deficit);
    }

    pub(super) fn is_full(&self, now: C::Instant) -> bool {
        self.deficit(now) == 0
    }
}
