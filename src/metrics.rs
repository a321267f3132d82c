//! Every metric of the bridge, described once, in Prometheus text format at `/metrics`.
//!
//! Names follow the OpenTelemetry GenAI semantic conventions in their Prometheus form
//! (`gen_ai.server.time_to_first_token` -> `gen_ai_server_time_to_first_token_seconds`), with
//! OTel's recommended bucket boundaries, so existing GenAI dashboards work. Bridge-specific
//! metrics start with `ollama_bridge_`. Label values are bounded: operation names and route
//! names are fixed strings, models are the names Ollama reported, never request text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// `gen_ai_operation_name`.
pub const OPERATION: &str = "gen_ai_operation_name";
/// `gen_ai_request_model`.
pub const MODEL: &str = "gen_ai_request_model";

/// OTel GenAI boundaries for `gen_ai.server.time_to_first_token`, seconds.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// OTel GenAI boundaries for `gen_ai.server.time_per_output_token`, seconds.
const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// OTel GenAI boundaries for `gen_ai.server.request.duration`, seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// OTel GenAI boundaries for `gen_ai.client.token.usage`, tokens.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// Tokens per second of one response.
const RATE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];
/// Time spent inside the bridge for one request, seconds (10 µs to 100 ms).
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
/// Ollama's own load / prompt-eval / eval durations, seconds.
const OLLAMA_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The registry and every metric handle.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `gen_ai_server_time_to_first_token_seconds{op,model}`: request arrival to the first
    /// content, reasoning or tool-call byte handed to the client.
    pub ttft: HistogramVec,
    /// `gen_ai_server_time_per_output_token_seconds{op,model}`:
    /// (duration - TTFT) / (output tokens - 1).
    pub time_per_output_token: HistogramVec,
    /// `gen_ai_server_request_duration_seconds{op,model,error_type}`; `error_type` is empty
    /// on success.
    pub request_duration: HistogramVec,
    /// `gen_ai_client_token_usage{op,model,gen_ai_token_type}`: `input` from Ollama's
    /// `prompt_eval_count`, `output` from `eval_count`.
    pub token_usage: HistogramVec,
    /// `ollama_bridge_output_tokens_per_second{op,model}`: output tokens over the time from
    /// the first token to the end, per request.
    pub output_tokens_per_second: HistogramVec,
    /// `ollama_bridge_requests_total{endpoint,model,status_class}`.
    pub requests: IntCounterVec,
    /// `ollama_bridge_active_streams`: responses being generated right now.
    pub active_streams: IntGauge,
    /// `ollama_bridge_client_disconnects_total{op,model}`: clients gone before the end.
    pub client_disconnects: IntCounterVec,
    /// `ollama_bridge_upstream_errors_total{kind}`.
    pub upstream_errors: IntCounterVec,
    /// `ollama_bridge_rate_limited_total{key,limit}`: requests refused by a limit; `key` is
    /// the key's name (empty without keys), `limit` is `requests`, `tokens` or `concurrency`.
    pub rate_limited: IntCounterVec,
    /// `ollama_bridge_auth_failures_total{reason}`: requests refused for their API key;
    /// `reason` is `missing` or `invalid`.
    pub auth_failures: IntCounterVec,
    /// `ollama_bridge_overhead_seconds{op}`: time inside the bridge per request (parsing,
    /// mapping, transcoding), excluding waits on Ollama and on the client.
    pub overhead: HistogramVec,
    /// `ollama_bridge_ollama_load_duration_seconds{model}`: Ollama's `load_duration`.
    pub load_duration: HistogramVec,
    /// `ollama_bridge_ollama_prompt_eval_duration_seconds{model}`: `prompt_eval_duration`.
    pub prompt_eval_duration: HistogramVec,
    /// `ollama_bridge_ollama_eval_duration_seconds{model}`: `eval_duration`.
    pub eval_duration: HistogramVec,
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers every metric (and the process collector on Linux) in a new registry.
    ///
    /// # Errors
    /// A `prometheus::Error` if a description is invalid, which the tests rule out.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let op_model = &[OPERATION, MODEL];
        let active_streams = IntGauge::new(
            "ollama_bridge_active_streams",
            "Responses being generated right now.",
        )?;
        r.register(Box::new(active_streams.clone()))?;
        Ok(Self {
            ttft: histogram(
                &r,
                "gen_ai_server_time_to_first_token_seconds",
                "Time from the request's arrival to the first output byte sent to the client.",
                TTFT_BUCKETS,
                op_model,
            )?,
            time_per_output_token: histogram(
                &r,
                "gen_ai_server_time_per_output_token_seconds",
                "Time per output token after the first: (duration - TTFT) / (output tokens - 1).",
                TPOT_BUCKETS,
                op_model,
            )?,
            request_duration: histogram(
                &r,
                "gen_ai_server_request_duration_seconds",
                "Time from the request's arrival to the end of its response.",
                DURATION_BUCKETS,
                &[OPERATION, MODEL, "error_type"],
            )?,
            token_usage: histogram(
                &r,
                "gen_ai_client_token_usage",
                "Tokens per request, input (prompt_eval_count) or output (eval_count).",
                TOKEN_BUCKETS,
                &[OPERATION, MODEL, "gen_ai_token_type"],
            )?,
            output_tokens_per_second: histogram(
                &r,
                "ollama_bridge_output_tokens_per_second",
                "Output tokens per second of one response, from its first token to its end.",
                RATE_BUCKETS,
                op_model,
            )?,
            requests: counter(
                &r,
                "ollama_bridge_requests_total",
                "Requests answered, by endpoint, model and status class.",
                &["endpoint", MODEL, "status_class"],
            )?,
            active_streams,
            client_disconnects: counter(
                &r,
                "ollama_bridge_client_disconnects_total",
                "Clients that went away before their response ended.",
                op_model,
            )?,
            upstream_errors: counter(
                &r,
                "ollama_bridge_upstream_errors_total",
                "Failures of the Ollama server, by kind.",
                &["kind"],
            )?,
            rate_limited: counter(
                &r,
                "ollama_bridge_rate_limited_total",
                "Requests refused by a rate limit or concurrency cap, by key name and limit.",
                &["key", "limit"],
            )?,
            auth_failures: counter(
                &r,
                "ollama_bridge_auth_failures_total",
                "Requests refused for a missing or invalid API key.",
                &["reason"],
            )?,
            overhead: histogram(
                &r,
                "ollama_bridge_overhead_seconds",
                "Time spent inside the bridge per request, without waiting on Ollama or the client.",
                OVERHEAD_BUCKETS,
                &[OPERATION],
            )?,
            load_duration: histogram(
                &r,
                "ollama_bridge_ollama_load_duration_seconds",
                "Ollama's reported load_duration per request.",
                OLLAMA_DURATION_BUCKETS,
                &[MODEL],
            )?,
            prompt_eval_duration: histogram(
                &r,
                "ollama_bridge_ollama_prompt_eval_duration_seconds",
                "Ollama's reported prompt_eval_duration per request.",
                OLLAMA_DURATION_BUCKETS,
                &[MODEL],
            )?,
            eval_duration: histogram(
                &r,
                "ollama_bridge_ollama_eval_duration_seconds",
                "Ollama's reported eval_duration per request.",
                OLLAMA_DURATION_BUCKETS,
                &[MODEL],
            )?,
            registry: r,
        })
    }

    /// The current values in Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on a broken metric family, which cannot be built here.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// `2xx`, `4xx`, … for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_registers_and_encodes() {
        let metrics = super::Metrics::new();
        assert!(metrics.is_ok(), "{metrics:?}");
        if let Ok(m) = metrics {
            m.ttft.with_label_values(&["chat", "m"]).observe(0.1);
            let text = String::from_utf8_lossy(&m.encode()).into_owned();
            assert!(text.contains("gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"m\"} 1"), "{text}");
            assert!(text.contains("# TYPE ollama_bridge_active_streams gauge"));
        }
    }
}
