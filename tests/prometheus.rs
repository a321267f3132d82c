//! A real Prometheus server (Debian's `prometheus` package; `scripts/test` installs it)
//! scrapes the bridge on loopback; `promtool` checks the exposition; every PromQL expression
//! of the Grafana dashboard is parsed by that Prometheus and names only metrics that exist.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::scrape::parse;
use common::{Harness, chat, chat_body, request};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn installed(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: scripts/test installs Debian's prometheus package")
        })
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(prometheus: std::net::SocketAddr, promql: &str) -> Value {
    let reply = request(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={}", encode(promql)),
        "",
    )
    .await;
    reply.json()
}

/// Label-list modifiers of PromQL: `by (…)`, `on (…)`, …
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Aggregation operators (may stand before `by`) and binary keywords.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
];

/// Metric names in a PromQL expression: identifiers outside `{…}`, `[…]` and strings that
/// are not followed by `(` (functions, aggregations) and not grouping labels after by/without.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut depth_brace, mut depth_bracket, mut in_string, mut grouping) =
        (0, 0, 0, false, 0);
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            in_string = c != '"';
        } else if c == '"' {
            in_string = true;
        } else if c == '{' || c == '}' {
            depth_brace += if c == '{' { 1 } else { -1 };
        } else if c == '[' || c == ']' {
            depth_bracket += if c == '[' { 1 } else { -1 };
        } else if c == ')' && grouping > 0 {
            grouping -= 1;
        } else if (c.is_ascii_alphabetic() || c == '_') && depth_brace == 0 && depth_bracket == 0 {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if GROUPING.contains(&word.as_str()) && next == Some(&'(') {
                grouping += 1;
            } else if next != Some(&'(') && grouping == 0 && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Starts a slow stream, reads its first bytes, leaves, and waits until the bridge counted it.
async fn disconnect_mid_stream(h: &Harness) {
    let mut stream =
        common::send_raw_chat(h.bridge, &chat_body("synth?tokens=100&rate=20", true)).await;
    let mut buf = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
        .await
        .expect("read");
    assert!(n > 0);
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !request(h.bridge, "GET", "/metrics", "")
        .await
        .text()
        .contains("ollama_bridge_client_disconnects_total{")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "disconnect never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_bridge_and_the_dashboard_holds() {
    let prometheus_bin = installed("prometheus");
    let promtool = installed("promtool");
    let h = Harness::start().await;
    for model in ["plain_stop", "think_true", "tool_think"] {
        assert_eq!(chat(h.bridge, &chat_body(model, true)).await.status, 200);
    }
    chat(h.bridge, &chat_body("synth?tokens=6&error_after=3", true)).await;
    disconnect_mid_stream(&h).await;

    // promtool accepts the exposition.
    let exposition = request(h.bridge, "GET", "/metrics", "").await.text();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .await
        .expect("write");
    let checked = check.wait_with_output().await.expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A Prometheus on loopback scrapes the bridge every second.
    let dir = std::env::temp_dir().join(format!("ollama-bridge-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ollama-bridge\n    static_configs:\n      - targets: ['{}']\n",
        h.bridge
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let mut server = Command::new(&prometheus_bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    // The traffic is over: Prometheus must come to the count the bridge exposes (4 or 5: the
    // disconnected stream may have left before its first token).
    let ttft_count = "sum(gen_ai_server_time_to_first_token_seconds_count)";
    let exposition = request(h.bridge, "GET", "/metrics", "").await.text();
    let samples = parse(&exposition);
    let expected = common::scrape::sum(
        &samples,
        "gen_ai_server_time_to_first_token_seconds_count",
        &[],
    );
    assert!(expected >= 4.0, "{expected}: {exposition}");
    let expected = expected.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = std::net::TcpStream::connect(port).is_ok();
        if ready {
            let answer = query(port, ttft_count).await;
            if answer["data"]["result"][0]["value"][1] == expected.as_str() {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never saw {expected} TTFT samples: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every dashboard expression parses in Prometheus and names only live metrics.
    let scraped: BTreeSet<String> = parse(&request(h.bridge, "GET", "/metrics", "").await.text())
        .into_iter()
        .map(|s| s.name)
        .collect();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/dashboards/ollama-bridge.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    // The model variable's label_values(metric, label) is asked as count by (label) (metric).
    let variable = dashboard["templating"]["list"][1]["definition"]
        .as_str()
        .expect("model variable");
    let inner = variable
        .strip_prefix("label_values(")
        .and_then(|v| v.strip_suffix(')'))
        .expect("label_values(…)");
    let (metric, label) = inner.rsplit_once(',').expect("metric, label");
    exprs.push(format!("count by ({}) ({metric})", label.trim()));
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    for expr in &exprs {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$model", ".*");
        let answer = query(port, &promql).await;
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        let names = metric_names(&promql);
        assert!(!names.is_empty(), "no metric found in {promql}");
        for name in names {
            assert!(
                scraped.contains(&name),
                "{name} (in {promql}) is not in the scrape"
            );
        }
    }
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    h.stop().await;
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.5, sum by (le, m) (rate(a_bucket{x=~"y", le!="z"}[1m]))) / ignoring(q) b"#,
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a_bucket", "b"]);
}
