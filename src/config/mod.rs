//! Configuration: a strict TOML file, then environment overrides, then command-line flags,
//! validated once at start-up.
//!
//! Every key, its default and its unit is documented in the repository's `config.toml`.

mod access;
mod sections;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use access::{AuthConfig, KeyConfig, LimitsConfig, QueueMode};
pub use sections::{
    LogFormat, LoggingConfig, MetricsConfig, NativeConfig, OpenAiConfig, ReasoningField,
};

use crate::auth::ApiKey;
use crate::error::ConfigError;
use crate::limit::ClientLimits;

/// Environment variable that overrides [`ServerConfig::listen`].
pub const ENV_LISTEN: &str = "OLLAMA_BRIDGE_LISTEN";
/// Environment variable that overrides [`UpstreamConfig::url`].
pub const ENV_UPSTREAM: &str = "OLLAMA_BRIDGE_UPSTREAM";

/// The whole configuration. Unknown keys anywhere are an error naming the key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: the listening side.
    pub server: ServerConfig,
    /// `[upstream]`: the Ollama server.
    pub upstream: UpstreamConfig,
    /// `[openai]`: choices about the OpenAI wire format written to clients.
    pub openai: OpenAiConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[logging]`: log format and what may be logged.
    pub logging: LoggingConfig,
    /// `[auth]`: API keys.
    pub auth: AuthConfig,
    /// `[limits]`: rate limits and concurrency caps.
    pub limits: LimitsConfig,
    /// `[native]`: Ollama's own `/api/*`, passed through.
    pub native: NativeConfig,
    /// `[aliases]`: model names clients may use for Ollama models
    /// (`"gpt-4o-mini" = "llama3.2:3b"`). Responses report the name the client asked for.
    pub aliases: std::collections::BTreeMap<String, String>,
}

/// `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Largest accepted request body, in bytes; larger bodies get 413. Default 16 MiB.
    pub max_body_bytes: usize,
    /// After Ctrl-C or SIGTERM, how long in-flight streams may run on, in milliseconds.
    /// Default 30,000.
    pub shutdown_grace_ms: u64,
    /// Time a client has to send a request's headers, in milliseconds; a connection that
    /// has not sent them by then is closed (slowloris). Default 10,000.
    pub header_read_timeout_ms: u64,
    /// Longest a write to a client may wait, in milliseconds: a client that reads nothing
    /// for this long (gone, or stalled) is disconnected and its upstream generation
    /// dropped. Default 60,000.
    pub write_idle_timeout_ms: u64,
    /// Most client connections open at once; past it the bridge stops accepting until one
    /// closes (the kernel's backlog holds the rest). Default 16,384.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace_ms: 30_000,
            header_read_timeout_ms: 10_000,
            write_idle_timeout_ms: 60_000,
            max_connections: 16_384,
        }
    }
}

impl ServerConfig {
    /// `header_read_timeout_ms` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// `write_idle_timeout_ms` as a duration.
    pub fn write_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.write_idle_timeout_ms)
    }
}

/// `[upstream]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Base URL of the Ollama server, `http://host:port` (a path prefix is kept).
    /// Default `http://127.0.0.1:11434`.
    pub url: String,
    /// Time allowed to open a TCP connection to Ollama, in milliseconds. Default 5,000.
    pub connect_timeout_ms: u64,
    /// Time allowed for Ollama's response headers, in milliseconds. Ollama sends them with
    /// its first chunk, so this covers model loading and prompt processing. Default 600,000.
    pub response_timeout_ms: u64,
    /// Longest silence between two reads of a started upstream stream, in milliseconds;
    /// past it the stream ends with an error event. Default 120,000.
    pub idle_timeout_ms: u64,
    /// While no token has been sent yet, an SSE comment is written after this many
    /// milliseconds of silence, so that proxies keep the connection. Default 10,000.
    pub keepalive_ms: u64,
    /// Longest accepted NDJSON line from Ollama, in bytes. Default 16 MiB.
    pub max_line_bytes: usize,
    /// `/readyz` is ready when Ollama answers `GET /api/version` within this many
    /// milliseconds. Default 2,000.
    pub ready_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:11434".to_owned(),
            connect_timeout_ms: 5_000,
            response_timeout_ms: 600_000,
            idle_timeout_ms: 120_000,
            keepalive_ms: 10_000,
            max_line_bytes: 16 * 1024 * 1024,
            ready_timeout_ms: 2_000,
        }
    }
}

/// Overrides from the command line or the environment; `None` keeps the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `server.listen`.
    pub listen: Option<String>,
    /// Replaces `upstream.url`.
    pub upstream: Option<String>,
}

/// A configuration that passed [`Config::validate`], with parsed values ready for use.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The configuration as given.
    pub config: Config,
    /// `server.listen`, parsed.
    pub listen: SocketAddr,
    /// `upstream.url`, parsed, without a trailing slash.
    pub upstream: http::Uri,
    /// `auth.keys`, resolved (inline, from the environment or as a digest) and hashed.
    pub keys: Vec<ApiKey>,
    /// `[limits]`' per-client defaults: for each key without its own values, and for each
    /// client IP when no key is configured.
    pub default_limits: ClientLimits,
}

impl Config {
    /// Reads and parses a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] when it is not
    /// valid TOML or has an unknown key or a wrong type (the message names the key).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] as for [`Config::from_file`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Applies overrides: `overrides` first, then the environment variables
    /// [`ENV_LISTEN`] and [`ENV_UPSTREAM`] where the override is absent.
    pub fn apply(&mut self, overrides: Overrides) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(listen) = overrides.listen.or_else(|| env(ENV_LISTEN)) {
            self.server.listen = listen;
        }
        if let Some(url) = overrides.upstream.or_else(|| env(ENV_UPSTREAM)) {
            self.upstream.url = url;
        }
    }

    /// Checks every value once, naming the key that is wrong.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the full key path and the reason.
    pub fn validate(self) -> Result<Validated, ConfigError> {
        let invalid = |key: &str, why: String| ConfigError::Invalid {
            key: key.to_owned(),
            why,
        };
        let listen = self
            .server
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.listen", format!("{e} (want host:port)")))?;
        let upstream =
            parse_upstream(&self.upstream.url).map_err(|why| invalid("upstream.url", why))?;
        let positive = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            (
                "upstream.connect_timeout_ms",
                self.upstream.connect_timeout_ms,
            ),
            (
                "upstream.response_timeout_ms",
                self.upstream.response_timeout_ms,
            ),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.write_idle_timeout_ms",
                self.server.write_idle_timeout_ms,
            ),
            ("server.max_connections", self.server.max_connections as u64),
            ("upstream.idle_timeout_ms", self.upstream.idle_timeout_ms),
            ("upstream.keepalive_ms", self.upstream.keepalive_ms),
            ("openai.max_choices", u64::from(self.openai.max_choices)),
            (
                "upstream.max_line_bytes",
                self.upstream.max_line_bytes as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than 0".to_owned()));
        }
        if !self.metrics.path.starts_with('/') || self.metrics.path.starts_with("/v1/") {
            return Err(invalid(
                "metrics.path",
                "must start with / and not be under /v1/".to_owned(),
            ));
        }
        for (alias, target) in &self.aliases {
            let at = format!("aliases.{alias:?}");
            if alias.is_empty() || target.is_empty() {
                return Err(invalid(&at, "names must not be empty".to_owned()));
            }
            if self.aliases.contains_key(target) {
                return Err(invalid(&at, format!("{target:?} is an alias itself")));
            }
        }
        if let Some(path) = self
            .native
            .allowed_paths
            .iter()
            .find(|p| !p.starts_with("/api/"))
        {
            return Err(invalid(
                "native.allowed_paths",
                format!("{path:?} does not start with /api/"),
            ));
        }
        let default_limits = self.limits.validate()?;
        let keys = self.auth.validate(&default_limits)?;
        Ok(Validated {
            config: self,
            listen,
            upstream,
            keys,
            default_limits,
        })
    }
}

impl Config {
    /// The Ollama model for a requested name: its alias target, or the name itself.
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        self.aliases
            .get(requested)
            .map_or(requested, String::as_str)
    }
}

impl UpstreamConfig {
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `response_timeout_ms` as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// `ready_timeout_ms` as a duration.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.ready_timeout_ms)
    }
    /// `keepalive_ms` as a duration.
    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms)
    }
}

fn parse_upstream(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// upstreams are supported".to_owned());
    }
    if uri.authority().is_none() {
        return Err("missing host".to_owned());
    }
    if uri.query().is_some() {
        return Err("a query string is not allowed".to_owned());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[upstream]\nurl = \"http://x:1\"\nidle_timeout = 3\n");
        let msg = format!("{:?}", err.err());
        assert!(msg.contains("idle_timeout"), "{msg}");
    }

    #[test]
    fn defaults_validate() {
        let v = Config::default().validate();
        let v = v.ok();
        assert_eq!(
            v.map(|v| v.listen.to_string()),
            Some("127.0.0.1:8080".to_owned())
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = Config::default();
        c.upstream.url = "https://x".to_owned();
        let msg = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("upstream.url"), "{msg}");
        let mut c = Config::default();
        c.upstream.idle_timeout_ms = 0;
        let msg = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("upstream.idle_timeout_ms"), "{msg}");
    }

    #[test]
    fn aliases_resolve_once_and_may_not_chain() {
        let c = Config::from_toml("[aliases]\n\"gpt-4o-mini\" = \"llama3.2:3b\"\n").unwrap();
        assert_eq!(c.upstream_model("gpt-4o-mini"), "llama3.2:3b");
        assert_eq!(c.upstream_model("qwen3:8b"), "qwen3:8b");
        let chained = Config::from_toml("[aliases]\na = \"b\"\nb = \"llama3.2\"\n").unwrap();
        let msg = chained
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("aliases.\"a\"") && msg.contains("alias itself"),
            "{msg}"
        );
    }

    #[test]
    fn overrides_win_over_file() {
        let mut c = Config::default();
        c.apply(Overrides {
            listen: Some("127.0.0.1:9".to_owned()),
            upstream: Some("http://10.0.0.1:1".to_owned()),
        });
        assert_eq!(c.server.listen, "127.0.0.1:9");
        assert_eq!(c.upstream.url, "http://10.0.0.1:1");
    }
}
