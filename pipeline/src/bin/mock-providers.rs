//! Runs the mock provider server (OpenAI, Anthropic, Groq-compatible, Deepgram, ElevenLabs
//! wire formats) for local development, demos and benchmarks.
//!
//! ```text
//! mock-providers --listen 127.0.0.1:8089 --ttft-ms 200 --token-interval-ms 20
//! mock-providers --config mock.toml        # a [MockConfig] as TOML
//! ```

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use pipeline::mock::{MockConfig, MockServer};

/// Mock LLM / STT / TTS providers speaking the real vendors' wire formats.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// TOML file with a mock config (fields as in `MockConfig`); flags below override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Delay before the first LLM token, ms.
    #[arg(long)]
    ttft_ms: Option<u64>,
    /// Delay between LLM tokens, ms.
    #[arg(long)]
    token_interval_ms: Option<u64>,
    /// Delay before the first TTS audio byte, ms.
    #[arg(long)]
    tts_ttfb_ms: Option<u64>,
    /// Delay between TTS chunks, ms.
    #[arg(long)]
    tts_chunk_interval_ms: Option<u64>,
    /// What the STT endpoints hear.
    #[arg(long)]
    transcript: Option<String>,
    /// Server-wide fault: none, 500, 429:3, hang, cut:5, stall:5, error:2.
    #[arg(long)]
    fault: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<MockConfig>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => MockConfig::default(),
    };
    if let Some(v) = args.ttft_ms {
        config.ttft_ms = v;
    }
    if let Some(v) = args.token_interval_ms {
        config.token_interval_ms = v;
    }
    if let Some(v) = args.tts_ttfb_ms {
        config.tts_ttfb_ms = v;
    }
    if let Some(v) = args.tts_chunk_interval_ms {
        config.tts_chunk_interval_ms = v;
    }
    if let Some(v) = args.transcript {
        config.transcript = v;
    }
    if let Some(v) = args.fault {
        config.fault = v;
    }
    let server = MockServer::bind(args.listen, config).await?;
    tracing::info!(url = %server.url(), "mock providers listening");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    drop(server);
    Ok(())
}
