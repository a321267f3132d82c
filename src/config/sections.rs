//! The small sections: `[native]`, `[metrics]`, `[logging]`, `[openai]`.

use serde::Deserialize;

/// `[native]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NativeConfig {
    /// Path prefixes under `/api/` passed through to Ollama; others get 403. Default
    /// `["/api/"]` (all); `[]` turns the passthrough off.
    pub allowed_paths: Vec<String>,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            allowed_paths: vec!["/api/".to_owned()],
        }
    }
}

impl NativeConfig {
    /// Whether `path` may be passed through.
    pub fn allows(&self, path: &str) -> bool {
        self.allowed_paths
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
    }
}

/// `[metrics]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Path of the Prometheus text endpoint. Default `/metrics`.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            path: "/metrics".to_owned(),
        }
    }
}

/// `[logging]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `pretty` (human-readable lines) or `json` (one JSON object per line). Default `pretty`.
    pub format: LogFormat,
    /// Log prompts and completions. Default `false`: bodies are never logged.
    pub log_bodies: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[openai]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// Where Ollama's `thinking` goes in deltas and messages. Default `reasoning_content`.
    pub reasoning_field: ReasoningField,
    /// Most choices one request may ask for (`n`, times the prompts of a completions
    /// request); each is its own Ollama generation. Default 16.
    pub max_choices: u32,
    /// `max_tokens` of a `/v1/completions` request that sets none. Default 16, as OpenAI's;
    /// 0 leaves the limit to the model.
    pub completions_default_max_tokens: u32,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            reasoning_field: ReasoningField::default(),
            max_choices: 16,
            completions_default_max_tokens: 16,
        }
    }
}

/// The field name(s) that carry reasoning text to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningField {
    /// `reasoning_content`, as DeepSeek and most OpenAI-compatible servers write it.
    #[default]
    ReasoningContent,
    /// `reasoning`, as OpenRouter and Ollama's own `/v1` write it.
    Reasoning,
    /// Both fields, same text.
    Both,
}

impl ReasoningField {
    /// The JSON keys to write, in order.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::ReasoningContent => &["reasoning_content"],
            Self::Reasoning => &["reasoning"],
            Self::Both => &["reasoning_content", "reasoning"],
        }
    }
}
