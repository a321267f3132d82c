//! The servers under load, each a child process so that its CPU time and RSS are its own:
//! fake-ollama, the bridge and (optionally) LiteLLM's proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running server: its process and the address it listens on.
pub struct Server {
    /// Held so that the process is killed when the server is dropped.
    _child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

/// The first `http://host:port` in `line`.
fn address_in(line: &str) -> Option<SocketAddr> {
    let rest = line.split("http://").nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Starts `command` and waits for the stderr line that names its address; the rest of
/// stderr is drained, its warnings and errors shown.
async fn spawn_logging_address(mut command: Command) -> Server {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next_line().await.ok().flatten();
        let Some(line) = line else {
            panic!("{command:?} ended before naming its address");
        };
        if let Some(addr) = address_in(&line) {
            break addr;
        }
    };
    let name = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("{name}: {line}");
            }
        }
    });
    let pid = child.id().unwrap_or(0);
    Server {
        _child: child,
        pid,
        addr,
    }
}

/// The release fake-ollama: `synth` streams of `tokens` at `rate` tokens/s, the first
/// after `delay_ms`.
pub async fn fake_ollama(tokens: u32, rate: f64, delay_ms: u64) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fake-ollama"));
    command.args(["--listen", "127.0.0.1:0"]).args([
        "--tokens".to_owned(),
        tokens.to_string(),
        "--rate".to_owned(),
        rate.to_string(),
        "--delay-ms".to_owned(),
        delay_ms.to_string(),
    ]);
    spawn_logging_address(command).await
}

/// The release bridge in front of `upstream`, with its default configuration and JSON logs.
pub async fn bridge(upstream: SocketAddr) -> Server {
    bridge_logging(upstream, "info").await
}

/// As [`bridge`], logging at `level` (`RUST_LOG`).
pub async fn bridge_logging(upstream: SocketAddr, level: &str) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ollama-bridge"));
    command.env("RUST_LOG", level);
    command.args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
    command.args(["--upstream", &format!("http://{upstream}")]);
    spawn_logging_address(command).await
}

/// LiteLLM's proxy (`litellm` is its command, from a venv) serving `models` as
/// `ollama_chat/<model>` of `upstream`, on `port`; returns once its liveness probe answers.
pub async fn litellm(litellm: &Path, upstream: SocketAddr, port: u16, models: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!("ollama-bridge-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut yaml = String::from("model_list:\n");
    for model in models {
        yaml.push_str(&format!(
            "  - model_name: \"{model}\"\n    litellm_params:\n      model: \"ollama_chat/{model}\"\n      api_base: \"http://{upstream}\"\n"
        ));
    }
    yaml.push_str("litellm_settings:\n  telemetry: false\n  drop_params: true\n");
    let config = dir.join("litellm.yaml");
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    let mut command = Command::new(litellm);
    command
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("LITELLM_MASTER_KEY", crate::clients::LOAD_KEY)
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .env("DISABLE_SCHEMA_UPDATE", "True")
        .stdout(Stdio::null())
        .stderr(log_file(&dir.join("litellm.log")))
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", litellm.display()));
    let pid = child.id().unwrap_or(0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..600 {
        if crate::clients::get_ok(addr, "/health/liveliness").await {
            return Server {
                _child: child,
                pid,
                addr,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "LiteLLM did not answer /health/liveliness within 60 s; see {}",
        dir.join("litellm.log").display()
    );
}

fn log_file(path: &Path) -> Stdio {
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(parent) = stat_fields(child).get(1).and_then(|f| f.parse().ok()) {
            parents.push((child, parent));
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        all.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    all
}

/// The fields of `/proc/<pid>/stat` after the command name (state first).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().map(str::to_owned).collect()
}

/// utime + stime of `pid` and its descendants, in seconds (clock ticks of 10 ms).
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks: u64 = tree(pid)
        .into_iter()
        .map(|p| {
            let fields = stat_fields(p);
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            // stat(5) fields 14 and 15 (utime, stime) are 11 and 12 after the name.
            field(11).unwrap_or(0) + field(12).unwrap_or(0)
        })
        .sum();
    ticks as f64 / 100.0
}

/// VmRSS of `pid` and its descendants, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        })
        .sum()
}
