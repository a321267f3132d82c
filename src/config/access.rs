//! `[auth]` and `[limits]`: who may call the bridge, and how much.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use serde::Deserialize;

use crate::auth::{self, ApiKey};
use crate::error::ConfigError;
use crate::limit::ClientLimits;

/// `[auth]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `[[auth.keys]]`. When any is configured, every `/v1/*` request needs one of them.
    pub keys: Vec<KeyConfig>,
    /// Require a key for `/healthz` and `/readyz` as well. Default `false`.
    pub protect_probes: bool,
    /// Require a key for the metrics endpoint as well. Default `false`.
    pub protect_metrics: bool,
}

/// One `[[auth.keys]]` entry: a `name` (for logs and metrics) and exactly one of `key`,
/// `key_env`, `key_sha256`; the limit fields, when given, replace `[limits]`' defaults for
/// this key.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The name logs and metrics carry in place of the key.
    pub name: String,
    /// The key itself.
    pub key: Option<String>,
    /// The environment variable holding the key, read at start-up.
    pub key_env: Option<String>,
    /// The key's SHA-256 digest, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub key_sha256: Option<String>,
    /// Requests per minute for this key.
    pub requests_per_minute: Option<u32>,
    /// Requests this key may make at once before the per-minute rate applies.
    pub burst: Option<u32>,
    /// Output tokens per minute for this key.
    pub tokens_per_minute: Option<u32>,
    /// Requests this key may have in flight at once.
    pub max_concurrent: Option<u32>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_env", &self.key_env)
            .field("key_sha256", &self.key_sha256)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("burst", &self.burst)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

/// What happens to a request that finds a concurrency cap full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// Answer 429 at once.
    #[default]
    Reject,
    /// Wait for a slot, in a queue of at most `max_queued` requests, for at most
    /// `queue_timeout_ms`; then 429.
    Wait,
}

/// `[limits]` section. Every limit is off unless given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per minute per key (per client IP when no key is configured).
    pub requests_per_minute: Option<u32>,
    /// Requests allowed at once before the per-minute rate applies. Default: the
    /// per-minute figure.
    pub burst: Option<u32>,
    /// Output tokens (Ollama's `eval_count`) per minute per key, charged when a response
    /// ends; a key in debt is refused until the debt has refilled.
    pub tokens_per_minute: Option<u32>,
    /// Requests in flight at once per key (per client IP when no key is configured).
    pub max_concurrent_per_key: Option<u32>,
    /// Requests in flight at once over all clients.
    pub max_concurrent: Option<u32>,
    /// Requests in flight at once per Ollama model, by model name.
    pub max_concurrent_per_model: BTreeMap<String, u32>,
    /// `reject` (429 at once) or `wait` when a concurrency cap is full. Default `reject`.
    pub queue: QueueMode,
    /// Longest wait for a slot with `queue = "wait"`, in milliseconds. Default 30,000.
    pub queue_timeout_ms: u64,
    /// Most requests waiting for slots at once with `queue = "wait"`. Default 1,024.
    pub max_queued: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: None,
            burst: None,
            tokens_per_minute: None,
            max_concurrent_per_key: None,
            max_concurrent: None,
            max_concurrent_per_model: BTreeMap::new(),
            queue: QueueMode::Reject,
            queue_timeout_ms: 30_000,
            max_queued: 1_024,
        }
    }
}

impl LimitsConfig {
    /// `queue_timeout_ms` as a duration.
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }

    /// Checks every value and returns the per-client defaults.
    pub(super) fn validate(&self) -> Result<ClientLimits, ConfigError> {
        let limits = client_limits(
            "limits",
            self.requests_per_minute,
            self.burst,
            self.tokens_per_minute,
            self.max_concurrent_per_key,
        )?;
        positive("limits.max_concurrent", self.max_concurrent)?;
        for (model, cap) in &self.max_concurrent_per_model {
            positive(
                &format!("limits.max_concurrent_per_model.{model:?}"),
                Some(*cap),
            )?;
        }
        if self.queue_timeout_ms == 0 || self.max_queued == 0 {
            return Err(ConfigError::invalid(
                "limits.queue_timeout_ms / limits.max_queued",
                "must be greater than 0",
            ));
        }
        Ok(limits)
    }
}

impl AuthConfig {
    /// Resolves and hashes every key, each with its limits (its own fields over `defaults`).
    pub(super) fn validate(&self, defaults: &ClientLimits) -> Result<Vec<ApiKey>, ConfigError> {
        let mut keys: Vec<ApiKey> = Vec::with_capacity(self.keys.len());
        for (i, entry) in self.keys.iter().enumerate() {
            let at = format!("auth.keys[{i}]");
            if entry.name.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{at}.name"),
                    "must not be empty",
                ));
            }
            if keys.iter().any(|k| *k.name == *entry.name) {
                return Err(ConfigError::invalid(
                    format!("{at}.name"),
                    format!("{:?} is used by another key", entry.name),
                ));
            }
            let digest = entry.digest(&at)?;
            if let Some(other) = keys.iter().find(|k| k.same_digest(&digest)) {
                return Err(ConfigError::invalid(
                    &at,
                    format!("the same key as {:?}", other.name),
                ));
            }
            let own = client_limits(
                &at,
                entry.requests_per_minute,
                entry.burst,
                entry.tokens_per_minute,
                entry.max_concurrent,
            )?;
            let limits = ClientLimits {
                requests: own.requests.or(defaults.requests),
                tokens_per_minute: own.tokens_per_minute.or(defaults.tokens_per_minute),
                max_concurrent: own.max_concurrent.or(defaults.max_concurrent),
            };
            keys.push(ApiKey::new(&entry.name, digest, limits));
        }
        Ok(keys)
    }
}

impl KeyConfig {
    /// The SHA-256 digest of the key, from whichever source is given (exactly one).
    fn digest(&self, at: &str) -> Result<[u8; 32], ConfigError> {
        let sources = [&self.key, &self.key_env, &self.key_sha256];
        if sources.iter().filter(|s| s.is_some()).count() != 1 {
            return Err(ConfigError::invalid(
                at,
                "give exactly one of key, key_env, key_sha256",
            ));
        }
        if let Some(key) = &self.key {
            return non_empty_key(&format!("{at}.key"), key);
        }
        if let Some(var) = &self.key_env {
            let key = std::env::var(var).map_err(|e| {
                ConfigError::invalid(format!("{at}.key_env"), format!("${var}: {e}"))
            })?;
            return non_empty_key(&format!("{at}.key_env"), &key);
        }
        let hex_digest = self.key_sha256.as_deref().unwrap_or_default();
        let mut digest = [0_u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|e| {
            ConfigError::invalid(
                format!("{at}.key_sha256"),
                format!("want 64 hex digits: {e}"),
            )
        })?;
        Ok(digest)
    }
}

fn non_empty_key(at: &str, key: &str) -> Result<[u8; 32], ConfigError> {
    if key.is_empty() {
        return Err(ConfigError::invalid(at, "the key is empty"));
    }
    Ok(auth::sha256(key.as_bytes()))
}

/// The largest burst: refilling it at one request a minute takes under two years, far
/// inside the range of the limiter's clock arithmetic.
const MAX_BURST: u32 = 1_000_000;

/// A limit that is off when absent and must be above 0 when given.
fn positive(at: &str, value: Option<u32>) -> Result<Option<NonZeroU32>, ConfigError> {
    match value {
        None => Ok(None),
        Some(n) => NonZeroU32::new(n).map(Some).ok_or_else(|| {
            ConfigError::invalid(at, "must be greater than 0 (leave it out for no limit)")
        }),
    }
}

fn client_limits(
    at: &str,
    requests_per_minute: Option<u32>,
    burst: Option<u32>,
    tokens_per_minute: Option<u32>,
    max_concurrent: Option<u32>,
) -> Result<ClientLimits, ConfigError> {
    let rpm = positive(&format!("{at}.requests_per_minute"), requests_per_minute)?;
    let burst = positive(&format!("{at}.burst"), burst)?;
    if burst.is_some_and(|b| b.get() > MAX_BURST) {
        return Err(ConfigError::invalid(
            format!("{at}.burst"),
            format!("must be at most {MAX_BURST}"),
        ));
    }
    let requests = match (rpm, burst) {
        (Some(rpm), burst) => Some(Quota::per_minute(rpm).allow_burst(burst.unwrap_or(rpm))),
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                format!("{at}.burst"),
                "needs requests_per_minute beside it",
            ));
        }
        (None, None) => None,
    };
    let max_concurrent_key = if at == "limits" {
        "limits.max_concurrent_per_key".to_owned()
    } else {
        format!("{at}.max_concurrent")
    };
    Ok(ClientLimits {
        requests,
        tokens_per_minute: positive(&format!("{at}.tokens_per_minute"), tokens_per_minute)?,
        max_concurrent: positive(&max_concurrent_key, max_concurrent)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn error_of(toml: &str) -> String {
        let config = Config::from_toml(toml).unwrap();
        config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_key_needs_exactly_one_source_that_resolves() {
        let none = error_of("[[auth.keys]]\nname = \"a\"\n");
        assert!(
            none.contains("auth.keys[0]") && none.contains("exactly one"),
            "{none}"
        );
        let two = error_of("[[auth.keys]]\nname = \"a\"\nkey = \"k\"\nkey_env = \"K\"\n");
        assert!(two.contains("exactly one"), "{two}");
        let unset = error_of(
            "[[auth.keys]]\nname = \"a\"\nkey_env = \"OLLAMA_BRIDGE_TEST_SURELY_UNSET_7F3A\"\n",
        );
        assert!(unset.contains("auth.keys[0].key_env"), "{unset}");
        assert!(
            unset.contains("OLLAMA_BRIDGE_TEST_SURELY_UNSET_7F3A"),
            "{unset}"
        );
        let short = error_of("[[auth.keys]]\nname = \"a\"\nkey_sha256 = \"abcd\"\n");
        assert!(short.contains("auth.keys[0].key_sha256"), "{short}");
        let empty = error_of("[[auth.keys]]\nname = \"a\"\nkey = \"\"\n");
        assert!(empty.contains("auth.keys[0].key"), "{empty}");
    }

    #[test]
    fn names_and_keys_are_unique() {
        let names = error_of(
            "[[auth.keys]]\nname = \"a\"\nkey = \"k1\"\n[[auth.keys]]\nname = \"a\"\nkey = \"k2\"\n",
        );
        assert!(names.contains("auth.keys[1].name"), "{names}");
        // The same key inline and as its digest.
        let digest = hex::encode(crate::auth::sha256(b"k1"));
        let same = error_of(&format!(
            "[[auth.keys]]\nname = \"a\"\nkey = \"k1\"\n[[auth.keys]]\nname = \"b\"\nkey_sha256 = \"{digest}\"\n"
        ));
        assert!(
            same.contains("auth.keys[1]") && same.contains("the same key as \"a\""),
            "{same}"
        );
    }

    #[test]
    fn limits_are_positive_and_keys_override_the_defaults() {
        let zero = error_of("[limits]\nrequests_per_minute = 0\n");
        assert!(zero.contains("limits.requests_per_minute"), "{zero}");
        let burst = error_of("[limits]\nburst = 5\n");
        assert!(burst.contains("limits.burst"), "{burst}");
        let huge = error_of("[limits]\nrequests_per_minute = 1\nburst = 4294967295\n");
        assert!(
            huge.contains("limits.burst") && huge.contains("at most"),
            "{huge}"
        );
        let model = error_of("[limits.max_concurrent_per_model]\n\"llama3.2:3b\" = 0\n");
        assert!(model.contains("llama3.2:3b"), "{model}");
        let config = Config::from_toml(
            "[limits]\nrequests_per_minute = 60\ntokens_per_minute = 1000\nmax_concurrent_per_key = 4\n\
             [[auth.keys]]\nname = \"a\"\nkey = \"k1\"\nrequests_per_minute = 6\nburst = 2\n\
             [[auth.keys]]\nname = \"b\"\nkey = \"k2\"\n",
        )
        .unwrap();
        let validated = config.validate().unwrap();
        let (a, b) = (&validated.keys[0].limits, &validated.keys[1].limits);
        let quota =
            |q: Option<governor::Quota>| q.map(|q| (q.burst_size().get(), q.replenish_interval()));
        assert_eq!(
            quota(a.requests),
            Some((2, std::time::Duration::from_secs(10)))
        );
        assert_eq!(
            quota(b.requests),
            Some((60, std::time::Duration::from_secs(1)))
        );
        for limits in [a, b] {
            assert_eq!(limits.tokens_per_minute.map(|n| n.get()), Some(1000));
            assert_eq!(limits.max_concurrent.map(|n| n.get()), Some(4));
        }
        assert!(
            !format!("{:?}", validated.config.auth).contains("k1"),
            "keys are redacted"
        );
    }
}
