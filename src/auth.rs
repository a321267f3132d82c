//! Bearer API keys: `Authorization: Bearer <key>`, or `api-key: <key>` as Azure-style
//! clients send it.
//!
//! Only SHA-256 digests of the keys are kept. A presented key is hashed and compared with
//! every configured digest in constant time, so neither the result nor the time taken tells
//! which bytes matched. Logs and metrics carry a key's `name`, never the key.
//!
//! Source: OpenAI API reference, "Authentication" (bearer keys); Azure OpenAI, "api-key".

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::limit::ClientLimits;

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One configured key: its name, the SHA-256 digest of the key, and its limits.
#[derive(Clone)]
pub struct ApiKey {
    /// The name logs and metrics carry.
    pub name: Arc<str>,
    digest: [u8; 32],
    /// This key's limits.
    pub limits: ClientLimits,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A key named `name` whose SHA-256 digest is `digest`.
    pub fn new(name: &str, digest: [u8; 32], limits: ClientLimits) -> Self {
        Self {
            name: Arc::from(name),
            digest,
            limits,
        }
    }

    /// Whether this key's digest is `digest` (constant time).
    pub fn same_digest(&self, digest: &[u8; 32]) -> bool {
        bool::from(self.digest.ct_eq(digest))
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Neither `Authorization: Bearer …` nor `api-key` was sent.
    Missing,
    /// A key was sent and it is not one of the configured keys.
    Invalid,
}

impl AuthFailure {
    /// A bounded name for logs and the `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
        }
    }
}

/// Finds the configured key a request presents.
///
/// Returns the key's index in `keys`.
///
/// # Errors
/// [`AuthFailure::Missing`] when the request carries no key, [`AuthFailure::Invalid`] when
/// it carries one that is not configured (or is malformed).
pub fn authenticate(keys: &[ApiKey], headers: &HeaderMap) -> Result<usize, AuthFailure> {
    let presented = presented_key(headers)?;
    let digest = sha256(presented);
    // Every digest is compared, whatever matched before: no early exit.
    let mut found = subtle::Choice::from(0);
    let mut index = 0_u64;
    for (i, key) in keys.iter().enumerate() {
        let matched = key.digest.ct_eq(&digest);
        index.conditional_assign(&(i as u64), matched);
        found |= matched;
    }
    if bool::from(found) {
        usize::try_from(index).map_err(|_| AuthFailure::Invalid)
    } else {
        Err(AuthFailure::Invalid)
    }
}

/// The key in `Authorization: Bearer <key>` (scheme case-insensitive), else in `api-key`.
fn presented_key(headers: &HeaderMap) -> Result<&[u8], AuthFailure> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.as_bytes();
        let scheme = b"bearer ";
        return match value.get(..scheme.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(scheme) => {
                let key = value[scheme.len()..].trim_ascii();
                if key.is_empty() {
                    Err(AuthFailure::Missing)
                } else {
                    Ok(key)
                }
            }
            _ => Err(AuthFailure::Invalid),
        };
    }
    match headers.get("api-key").map(|v| v.as_bytes().trim_ascii()) {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(AuthFailure::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<ApiKey> {
        ["alpha-secret", "beta-secret"]
            .iter()
            .zip(["alpha", "beta"])
            .map(|(key, name)| ApiKey::new(name, sha256(key.as_bytes()), ClientLimits::default()))
            .collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_and_api_key_find_their_key() {
        let keys = keys();
        let bearer = headers(&[("authorization", "Bearer beta-secret")]);
        assert_eq!(authenticate(&keys, &bearer), Ok(1));
        let lower = headers(&[("authorization", "bearer alpha-secret")]);
        assert_eq!(authenticate(&keys, &lower), Ok(0));
        let azure = headers(&[("api-key", "beta-secret")]);
        assert_eq!(authenticate(&keys, &azure), Ok(1));
    }

    #[test]
    fn missing_wrong_and_malformed_keys_are_refused() {
        let keys = keys();
        assert_eq!(
            authenticate(&keys, &HeaderMap::new()),
            Err(AuthFailure::Missing)
        );
        let empty = headers(&[("authorization", "Bearer ")]);
        assert_eq!(authenticate(&keys, &empty), Err(AuthFailure::Missing));
        let wrong = headers(&[("authorization", "Bearer alpha-secreT")]);
        assert_eq!(authenticate(&keys, &wrong), Err(AuthFailure::Invalid));
        let prefix = headers(&[("authorization", "Bearer alpha")]);
        assert_eq!(authenticate(&keys, &prefix), Err(AuthFailure::Invalid));
        let basic = headers(&[("authorization", "Basic YWxwaGEtc2VjcmV0")]);
        assert_eq!(authenticate(&keys, &basic), Err(AuthFailure::Invalid));
        // A wrong Authorization is not rescued by a right api-key.
        let both = headers(&[
            ("authorization", "Bearer nope"),
            ("api-key", "alpha-secret"),
        ]);
        assert_eq!(authenticate(&keys, &both), Err(AuthFailure::Invalid));
    }

    #[test]
    fn digest_is_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
