//! The `ollama-bridge` binary: flags -> configuration -> logging -> `server::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ollama_bridge::config::{Config, LogFormat, Overrides};

/// Serves the OpenAI API in front of an Ollama server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see config.toml for every key).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on, host:port [default: 127.0.0.1:8080; env OLLAMA_BRIDGE_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Ollama base URL [default: http://127.0.0.1:11434; env OLLAMA_BRIDGE_UPSTREAM].
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Log format [default: logging.format of the config, else pretty]. Filter with RUST_LOG.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = cli.config.as_deref().map(Config::from_file).transpose();
    let file_format = loaded
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|c| c.logging.format);
    init_logging(cli.log_format.or(file_format).unwrap_or_default());
    let mut config = match loaded {
        Ok(config) => config.unwrap_or_default(),
        Err(e) => return fail(&e),
    };
    config.apply(Overrides {
        listen: cli.listen,
        upstream: cli.upstream,
    });
    let validated = match config.validate() {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let listener = match tokio::net::TcpListener::bind(validated.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", validated.listen)),
    };
    let local = listener.local_addr().map_or(validated.listen, |a| a);
    tracing::info!(
        "ollama-bridge listening on http://{local}/v1, upstream Ollama at {}",
        validated.config.upstream.url
    );
    match ollama_bridge::server::run(listener, validated, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    tracing::error!("{error}");
    ExitCode::FAILURE
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
