//! `fake-ollama`: a deterministic Ollama stand-in (see `ollama_bridge::fake_ollama`).
//!
//! `fake-ollama --listen 127.0.0.1:11434 --transcripts tests/fixtures/recorded-local --tokens 100
//! --rate 20` replays the transcripts by name and synthesises `synth` streams.

use std::path::PathBuf;

use clap::Parser;
use ollama_bridge::fake_ollama::{FakeOllama, Synth, load_transcripts};

/// Serves a fake Ollama API: transcripts replayed by model name, synthetic streams for
/// model `synth` (or `synth?tokens=N&rate=R&…`), 404 for other models.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:11434")]
    listen: String,
    /// Folder of `*.ndjson` transcripts, served under their file stem as model name.
    #[arg(long)]
    transcripts: Option<PathBuf>,
    /// Default content tokens of a synthetic stream.
    #[arg(long, default_value_t = 20)]
    tokens: u32,
    /// Default tokens per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Default thinking tokens before the content.
    #[arg(long, default_value_t = 0)]
    think_tokens: u32,
    /// Default delay before the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let transcripts = match &cli.transcripts {
        Some(dir) => load_transcripts(dir)?,
        None => Default::default(),
    };
    let synth = Synth {
        tokens: cli.tokens,
        rate: cli.rate,
        think_tokens: cli.think_tokens,
        delay_ms: cli.delay_ms,
        ..Synth::default()
    };
    let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
    let fake = FakeOllama::spawn(listener, transcripts, synth);
    tracing::info!("fake-ollama listening on {}", fake.url());
    tokio::signal::ctrl_c().await
}
