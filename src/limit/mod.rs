//! Rate limits and concurrency caps, per client (an API key, or the client IP when no key is
//! configured) and overall.
//!
//! - Requests per minute with a burst: governor's GCRA, one direct limiter per client.
//! - Output tokens per minute: a [`TokenBudget`] per client, charged with Ollama's
//!   `eval_count` when a response ends. A response may cost more than is left, so the budget
//!   can go into debt, which governor's GCRA cannot express (it refuses a charge it cannot
//!   cover); the budget is the same virtual-scheduling arithmetic, driven by governor's
//!   clock, with debt allowed.
//! - Concurrency: tokio semaphores per client, overall and per model. A full cap answers 429
//!   at once or, with `queue = "wait"`, waits in a bounded queue for a bounded time.
//!
//! Everything is generic over governor's [`Clock`], so unit tests drive time with
//! `FakeRelativeClock` instead of sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::ApiKey;
use crate::config::{LimitsConfig, QueueMode};

mod budget;
mod headers;
mod queue;

pub use headers::{RateHeaders, Window, format_reset};

use budget::TokenBudget;
use queue::Queue;

/// The window of the per-minute limits.
const MINUTE: Duration = Duration::from_secs(60);
/// `Retry-After` for a full concurrency cap: when a slot frees is unknown.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

/// The limits of one client, validated: `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests per minute and burst.
    pub requests: Option<Quota>,
    /// Output tokens per minute.
    pub tokens_per_minute: Option<NonZeroU32>,
    /// Requests in flight at once.
    pub max_concurrent: Option<NonZeroU32>,
}

impl ClientLimits {
    fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// Which limit refused a request; the `limit` label of `ollama_bridge_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    Requests,
    /// Output tokens per minute.
    Tokens,
    /// A concurrency cap (per key, overall or per model), or a full or timed-out queue.
    Concurrency,
}

impl LimitKind {
    /// `requests`, `tokens` or `concurrency`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Concurrency => "concurrency",
        }
    }
}

/// A refused request: which limit, whose, when to retry, and the headers to send.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The limit that refused it.
    pub limit: LimitKind,
    /// The key's name; empty for a client IP.
    pub key: Arc<str>,
    /// When a retry can succeed (`Retry-After`).
    pub retry_after: Duration,
    /// The `x-ratelimit-*` values at the refusal.
    pub headers: RateHeaders,
}

type RequestLimiter<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// One client's limiters.
struct Client<C: Clock> {
    name: Arc<str>,
    clock: C,
    requests: Option<RequestLimiter<C>>,
    tokens: Option<TokenBudget<C>>,
    slots: Option<Arc<Semaphore>>,
    last_seen: Mutex<C::Instant>,
    /// How long after its last request the client's request limiter is full again.
    refill: Nanos,
}

impl<C: Clock + Clone> Client<C> {
    fn new(name: Arc<str>, limits: &ClientLimits, clock: &C) -> Self {
        let now = clock.now();
        Self {
            name,
            requests: limits
                .requests
                .map(|q| RateLimiter::direct_with_clock(q, clock.clone()).with_middleware()),
            tokens: limits.tokens_per_minute.map(|n| TokenBudget::new(n, now)),
            slots: limits
                .max_concurrent
                .map(|n| Arc::new(bounded_semaphore(n.get() as usize))),
            last_seen: Mutex::new(now),
            refill: Nanos::new(
                limits
                    .requests
                    .map_or(0, |q| q.burst_size_replenished_in().as_nanos())
                    .try_into()
                    .unwrap_or(u64::MAX),
            ),
            clock: clock.clone(),
        }
    }

    fn touch(&self, now: C::Instant) {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Whether forgetting this client changes nothing: all its limits are full again.
    fn is_idle(&self, now: C::Instant) -> bool {
        let last_seen = *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now.duration_since(last_seen) >= self.refill
            && self.tokens.as_ref().is_none_or(|t| t.is_full(now))
    }

    fn rejection(
        &self,
        limit: LimitKind,
        retry_after: Duration,
        headers: RateHeaders,
    ) -> Rejection {
        Rejection {
            limit,
            key: Arc::clone(&self.name),
            retry_after,
            headers,
        }
    }
}

/// A semaphore of `permits`, at most [`Semaphore::MAX_PERMITS`] (past which `new` panics).
pub fn bounded_semaphore(permits: usize) -> Semaphore {
    Semaphore::new(permits.min(Semaphore::MAX_PERMITS))
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The configured key at this index.
    Key(usize),
    /// A client IP (when no key is configured).
    Ip(IpAddr),
}

/// Every limiter of the bridge, built from validated configuration.
pub struct Limits<C: Clock = DefaultClock> {
    clock: C,
    keys: Vec<Arc<Client<C>>>,
    ip_limits: ClientLimits,
    ips: Mutex<HashMap<IpAddr, Arc<Client<C>>>>,
    overall: Option<Arc<Semaphore>>,
    per_model: HashMap<String, Arc<Semaphore>>,
    queue: Queue,
    anonymous: Arc<str>,
}

impl<C: Clock> std::fmt::Debug for Limits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("keys", &self.keys.len())
            .field("ip_limits", &self.ip_limits)
            .field("overall", &self.overall)
            .field("per_model", &self.per_model.keys())
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// Builds every limiter from validated configuration; cannot fail (the types of
    /// [`ClientLimits`] rule out zero limits).
    pub fn new(keys: &[ApiKey], ip_limits: ClientLimits, config: &LimitsConfig, clock: C) -> Self {
        // The default clock calibrates itself on its first reading (~5 ms of spinning on
        // the clock): done here, at startup, rather than in the first request's TTFT.
        let _ = clock.now();
        let semaphore = |n: u32| Arc::new(bounded_semaphore(n as usize));
        Self {
            keys: keys
                .iter()
                .map(|k| Arc::new(Client::new(Arc::clone(&k.name), &k.limits, &clock)))
                .collect(),
            ip_limits,
            ips: Mutex::new(HashMap::new()),
            overall: config.max_concurrent.map(semaphore),
            per_model: config
                .max_concurrent_per_model
                .iter()
                .map(|(model, n)| (model.clone(), semaphore(*n)))
                .collect(),
            queue: Queue {
                wait: config.queue == QueueMode::Wait,
                timeout: config.queue_timeout(),
                max: config.max_queued,
                waiting: AtomicUsize::new(0),
            },
            anonymous: Arc::from(""),
            clock,
        }
    }

    /// Admits a request of `who`: checks its token budget and request rate and, when
    /// `take_slots` (a generation), takes its concurrency slots (per client, then overall).
    ///
    /// # Errors
    /// A [`Rejection`] naming the limit that refused it.
    pub async fn admit(&self, who: Identity, take_slots: bool) -> Result<Admission<C>, Rejection> {
        let client = self.client(who);
        let mut admission = Admission {
            key: client
                .as_ref()
                .map_or_else(|| Arc::clone(&self.anonymous), |c| Arc::clone(&c.name)),
            client,
            permits: Vec::new(),
            headers: RateHeaders::default(),
        };
        if let Some(client) = &admission.client {
            admission.headers = check_rates(client)?;
            if let (true, Some(slots)) = (take_slots, &client.slots) {
                let permit = self.queue.slot(slots).await.ok_or_else(|| {
                    client.rejection(LimitKind::Concurrency, CONCURRENCY_RETRY, admission.headers)
                })?;
                admission.permits.push(permit);
            }
        }
        if let (true, Some(slots)) = (take_slots, &self.overall) {
            self.take_slot(&mut admission, slots).await?;
        }
        Ok(admission)
    }

    /// Takes a slot of `model`'s cap, when it has one, into `admission`.
    ///
    /// # Errors
    /// A [`Rejection`] of kind [`LimitKind::Concurrency`].
    pub async fn model_slot(
        &self,
        admission: &mut Admission<C>,
        model: &str,
    ) -> Result<(), Rejection> {
        match self.per_model.get(model) {
            Some(slots) => self.take_slot(admission, slots).await,
            None => Ok(()),
        }
    }

    async fn take_slot(
        &self,
        admission: &mut Admission<C>,
        slots: &Arc<Semaphore>,
    ) -> Result<(), Rejection> {
        let permit = self.queue.slot(slots).await.ok_or_else(|| Rejection {
            limit: LimitKind::Concurrency,
            key: Arc::clone(&admission.key),
            retry_after: CONCURRENCY_RETRY,
            headers: admission.headers,
        })?;
        admission.permits.push(permit);
        Ok(())
    }

    /// Forgets client IPs whose limits are all full again and that have nothing in flight;
    /// returns how many were forgotten. Run it now and then.
    pub fn evict_idle(&self) -> usize {
        let now = self.clock.now();
        let mut ips = self.ips.lock().unwrap_or_else(PoisonError::into_inner);
        let before = ips.len();
        ips.retain(|_, client| Arc::strong_count(client) > 1 || !client.is_idle(now));
        if ips.capacity() > 2 * ips.len() + 64 {
            ips.shrink_to_fit();
        }
        before - ips.len()
    }

    /// Client IPs being tracked.
    pub fn tracked_ips(&self) -> usize {
        self.ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn client(&self, who: Identity) -> Option<Arc<Client<C>>> {
        match who {
            Identity::Key(index) => self.keys.get(index).cloned(),
            Identity::Ip(_) if self.ip_limits.is_unlimited() => None,
            Identity::Ip(ip) => {
                let mut ips = self.ips.lock().unwrap_or_else(PoisonError::into_inner);
                let client = ips.entry(ip).or_insert_with(|| {
                    Arc::new(Client::new(
                        Arc::clone(&self.anonymous),
                        &self.ip_limits,
                        &self.clock,
                    ))
                });
                Some(Arc::clone(client))
            }
        }
    }
}

/// The token budget (not consumed here) and the request rate (consumed) of `client`.
fn check_rates<C: Clock + Clone>(client: &Client<C>) -> Result<RateHeaders, Rejection> {
    let now = client.clock.now();
    client.touch(now);
    let mut headers = RateHeaders::default();
    if let Some(tokens) = &client.tokens {
        let checked = tokens.check(now);
        headers.tokens = Some(match checked {
            Ok(window) | Err((window, _)) => window,
        });
        if let Err((_, wait)) = checked {
            return Err(client.rejection(LimitKind::Tokens, wait, headers));
        }
    }
    if let Some(limiter) = &client.requests {
        match limiter.check() {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let remaining = snapshot.remaining_burst_capacity();
                headers.requests = Some(request_window(quota, remaining, Duration::ZERO));
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(client.clock.now());
                headers.requests = Some(request_window(not_until.quota(), 0, wait));
                return Err(client.rejection(LimitKind::Requests, wait, headers));
            }
        }
    }
    Ok(headers)
}

/// A GCRA bucket with `remaining` cells left, or none left for another `wait`: it is full
/// again once the missing cells have refilled.
fn request_window(quota: Quota, remaining: u32, wait: Duration) -> Window {
    let limit = quota.burst_size().get();
    let missing = limit.saturating_sub(remaining) - u32::from(!wait.is_zero());
    Window {
        limit,
        remaining,
        reset: wait + quota.replenish_interval() * missing,
    }
}

/// An admitted request: its key's name, its `x-ratelimit-*` headers, its concurrency slots
/// (given back when it is dropped) and its client's token budget.
pub struct Admission<C: Clock = DefaultClock> {
    client: Option<Arc<Client<C>>>,
    permits: Vec<OwnedSemaphorePermit>,
    headers: RateHeaders,
    key: Arc<str>,
}

impl<C: Clock> std::fmt::Debug for Admission<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("key", &self.key)
            .field("slots", &self.permits.len())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Admission<C> {
    /// The key's name; empty when no key is configured.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `x-ratelimit-*` values to send with the response.
    pub fn headers(&self) -> RateHeaders {
        self.headers
    }

    /// Charges `tokens` output tokens to the client's budget, when it has one.
    pub fn charge(&self, tokens: u64) {
        if let Some(client) = &self.client
            && let Some(budget) = &client.tokens
        {
            budget.charge(tokens, client.clock.now());
        }
    }
}

#[cfg(test)]
mod tests;
