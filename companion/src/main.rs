//! `companion`: runs the companion service. With no configuration it runs everything in one
//! process on embedded defaults (SQLite, in-process limits) and prints the URL to open.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use companion::config::{self, Config, LogFormat, Mode};
use tracing_subscriber::EnvFilter;

/// Runs the companion service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Default: $COMPANION_CONFIG, else ./companion.toml if present.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Which planes to run; overrides `server.mode`.
    #[arg(long, value_parser = ["all", "gateway", "control-plane"])]
    mode: Option<String>,
    /// Address to listen on; overrides `server.listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let file = args
        .config
        .clone()
        .or_else(|| std::env::var_os(config::ENV_CONFIG_FILE).map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from(config::DEFAULT_CONFIG_FILE);
            default.exists().then_some(default)
        });
    // Flags are the most specific source, so they go in as the last overrides.
    let flags = [
        ("SERVER__MODE", &args.mode),
        ("SERVER__LISTEN", &args.listen),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((format!("{}{key}", config::ENV_PREFIX), value.clone()?)));
    let config = match Config::load(file.as_deref(), std::env::vars().chain(flags)) {
        Ok(config) => config,
        Err(e) => {
            report(&format!("companion: {e}"));
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        match toml::to_string_pretty(&config) {
            Ok(text) => emit(&text),
            Err(e) => {
                report(&format!("companion: cannot print the configuration: {e}"));
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    init_tracing(&config.log);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("companion: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mode = config.server.mode;
    let result = runtime.block_on(async {
        let signals = companion::Signals::install()?;
        let on_listening = |url: &str| {
            let what = match mode {
                Mode::All | Mode::Gateway => "companion is running; open",
                Mode::ControlPlane => "companion control plane is running at",
            };
            emit(&format!("{what} {url}"));
        };
        companion::run(config, on_listening, signals.recv()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "companion stopped with an error");
            report(&format!("companion: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(log: &config::LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Standard output carries only what a person or script asked for: the URL, the config.
#[allow(clippy::print_stdout, reason = "the binary's output")]
fn emit(line: &str) {
    println!("{line}");
}

#[allow(clippy::print_stderr, reason = "errors before logging is set up")]
fn report(line: &str) {
    eprintln!("{line}");
}
