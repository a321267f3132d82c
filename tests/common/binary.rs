//! The `ollama-bridge` binary as a child process: started, its address read from its start
//! line, its JSON log lines read.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary, with the environment overrides removed and stderr piped.
pub fn bridge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ollama-bridge"));
    command
        .env_remove("OLLAMA_BRIDGE_LISTEN")
        .env_remove("OLLAMA_BRIDGE_UPSTREAM")
        .env_remove("RUST_LOG");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary and returns it with the address of its start line.
pub async fn start(mut command: Command) -> (Child, String, String) {
    let mut child = command.spawn().expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("listening on") {
                return line;
            }
        }
        panic!("exited without a start line");
    })
    .await
    .expect("start line within 10 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split("/v1").next())
        .expect("address in start line")
        .to_owned();
    (child, addr, line)
}

pub type LogLines = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// Starts the binary with `--log-format json`; returns it, its address and its log lines.
pub async fn start_json(mut command: Command) -> (Child, std::net::SocketAddr, LogLines) {
    command.args(["--log-format", "json"]);
    let mut child = command.spawn().expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines.next_line().await.expect("read").expect("start line");
    let start: serde_json::Value = serde_json::from_str(&first).expect("JSON start line");
    let message = start["fields"]["message"].as_str().expect("message");
    let addr = message
        .split("http://")
        .nth(1)
        .and_then(|s| s.split("/v1").next())
        .expect("address")
        .parse()
        .expect("address");
    (child, addr, lines)
}

/// The next `count` log entries whose message starts with `message`, checking every line
/// read with `check`.
pub async fn log_entries(
    lines: &mut LogLines,
    message: &str,
    count: usize,
    check: impl Fn(&str),
) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while found.len() < count {
            let line = lines.next_line().await.expect("read").expect("a log line");
            check(&line);
            let entry: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            let text = entry["fields"]["message"].as_str().unwrap_or_default();
            if text.starts_with(message) {
                found.push(entry);
            }
        }
    });
    read.await.expect("log lines within 10 s");
    found
}
