//! `voice-calls`: places N concurrent WebRTC voice calls to a gateway and reports turn latency,
//! barge-in stop time, packet loss and the gateway's CPU and memory.
//!
//! ```text
//! voice-calls --spawn --wav media/testdata/call-two-turns.48k.wav --calls 10
//! voice-calls --url http://127.0.0.1:8080 --gateway-pid 1234 --wav call.wav --calls 50 --json
//! voice-calls --spawn --transport ws --wav media/testdata/call-two-turns.48k.wav --calls 2
//! ```
// A command-line tool: its report goes to stdout, progress and errors to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use voice_calls::{
    call::Transport,
    report::{self, Setup},
    run::{Options, run},
    script::{Script, parse_turns},
    spawn::{MockLatencies, SpawnOptions, Spawned},
};

/// Voice-call load generator: WebRTC callers playing a WAV in real time.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Gateway base URL (not with --spawn).
    #[arg(long, required_unless_present = "spawn", conflicts_with = "spawn")]
    url: Option<String>,
    /// Start mock-providers and a release companion gateway on 127.0.0.1 (development
    /// tokens, SQLite in a temporary folder), measure it, and stop it afterwards.
    #[arg(long)]
    spawn: bool,
    /// Where `companion` and `mock-providers` are (--spawn). Default: this binary's folder.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Silero model and ONNX Runtime folder. Default: $COMPANION_DEPS_DIR, else ./.deps.
    #[arg(long)]
    deps_dir: Option<PathBuf>,
    /// How callers connect: WebRTC calls, or voice sessions on the chat WebSocket.
    #[arg(long, value_enum, default_value_t = Transport::Webrtc)]
    transport: Transport,
    /// Bearer token per call; `{i}` becomes the call's index.
    #[arg(long, default_value = "dev:voice-load-{i}")]
    token: String,
    /// The caller's microphone: a 48 kHz mono 16-bit WAV.
    #[arg(long)]
    wav: PathBuf,
    /// Turns as START-END seconds (e.g. 0.51-2.98,5.84-8.18). Default: found by the VAD.
    #[arg(long)]
    turns: Option<String>,
    /// Calls live at once.
    #[arg(long, default_value_t = 1)]
    calls: usize,
    /// Calls placed in all; more than --calls places them in waves. Default: --calls.
    #[arg(long)]
    total: Option<usize>,
    /// Play only the first SECONDS of the WAV (turns ending later are not measured).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of silence sent after the WAV while the last answer plays.
    #[arg(long, default_value_t = 3.0)]
    tail: f64,
    /// The first wave's calls start spread over this many seconds.
    #[arg(long, default_value_t = 1.0)]
    ramp: f64,
    /// Seconds a call may take from POST to connected.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Hard limit on the whole run in seconds. Default: enough for every wave plus 60 s.
    #[arg(long)]
    timeout: Option<f64>,
    /// The gateway process to measure (CPU from /proc/PID/stat, RSS from /proc/PID/status).
    #[arg(long, conflicts_with = "spawn")]
    gateway_pid: Option<u32>,
    /// CPU/memory sampling interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    sample_ms: u64,
    /// Print the report as JSON on stdout (the human report then goes to stderr).
    #[arg(long)]
    json: bool,
    /// --spawn: mock STT final-transcript delay, ms.
    #[arg(long, default_value_t = MockLatencies::default().stt_ms)]
    mock_stt_ms: u64,
    /// --spawn: mock LLM time to first token, ms.
    #[arg(long, default_value_t = MockLatencies::default().ttft_ms)]
    mock_ttft_ms: u64,
    /// --spawn: mock LLM delay between tokens, ms.
    #[arg(long, default_value_t = MockLatencies::default().token_ms)]
    mock_token_ms: u64,
    /// --spawn: mock TTS time to first audio, ms.
    #[arg(long, default_value_t = MockLatencies::default().tts_ttfb_ms)]
    mock_tts_ttfb_ms: u64,
}

fn secs(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("--{flag}: {v} is not a duration"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match real_main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("voice-calls: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let deps_dir = args.deps_dir.clone().unwrap_or_else(|| {
        std::env::var_os(media::deps::DEPS_DIR_ENV)
            .map_or_else(|| PathBuf::from(".deps"), PathBuf::from)
    });
    let turns = args.turns.as_deref().map(parse_turns).transpose()?;
    let duration = args.duration.map(|d| secs(d, "duration")).transpose()?;
    let script = Arc::new(Script::load(
        &args.wav,
        duration,
        turns,
        &media::RuntimePaths::in_dir(&deps_dir),
    )?);
    let concurrency = args.calls.max(1);
    let total = args.total.unwrap_or(concurrency).max(concurrency);
    let tail = secs(args.tail, "tail")?;
    let ramp = secs(args.ramp, "ramp")?;
    let connect_timeout = secs(args.connect_timeout, "connect-timeout")?;
    let waves = total.div_ceil(concurrency) as u32;
    let timeout = match args.timeout {
        Some(t) => secs(t, "timeout")?,
        None => ramp + (script.length() + tail + connect_timeout) * waves + Duration::from_secs(60),
    };

    let spawned = if args.spawn {
        let bin_dir = match &args.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default(),
        };
        let opts = SpawnOptions {
            bin_dir,
            deps_dir: std::path::absolute(&deps_dir)?,
            latencies: MockLatencies {
                stt_ms: args.mock_stt_ms,
                ttft_ms: args.mock_ttft_ms,
                token_ms: args.mock_token_ms,
                tts_ttfb_ms: args.mock_tts_ttfb_ms,
                ..MockLatencies::default()
            },
            max_calls: concurrency * 2 + 10,
        };
        let s = Spawned::start(&opts).await?;
        eprintln!(
            "voice-calls: started companion (pid {}) at {}",
            s.pid, s.base_url
        );
        Some(s)
    } else {
        None
    };
    let base_url = match (&spawned, &args.url) {
        (Some(s), _) => s.base_url.clone(),
        (None, Some(u)) => u.clone(),
        (None, None) => anyhow::bail!("--url or --spawn is required"),
    };
    let options = Options {
        base_url: base_url.clone(),
        transport: args.transport,
        token: args.token.clone(),
        concurrency,
        total,
        ramp,
        tail,
        connect_timeout,
        timeout,
        gateway_pid: spawned.as_ref().map(|s| s.pid).or(args.gateway_pid),
        sample_every: Duration::from_millis(args.sample_ms.max(10)),
    };
    eprintln!(
        "voice-calls: {total} calls, {concurrency} at once, {:.1} s of audio + {:.1} s tail each, hard timeout {:.0} s",
        script.length().as_secs_f64(),
        tail.as_secs_f64(),
        timeout.as_secs_f64()
    );
    let result = run(&options, &script).await;
    let session_log = spawned.as_ref().map(Spawned::session_log);
    if let Some(s) = spawned {
        s.stop().await;
    }

    let setup = Setup {
        base_url,
        wav: args.wav.display().to_string(),
        turns: script.turns.clone(),
        audio_ms: script.length().as_millis() as u64,
        tail_ms: tail.as_millis() as u64,
        concurrency,
        total,
        ramp_ms: ramp.as_millis() as u64,
    };
    let report = report::build(setup, &result, session_log);
    let text = report::human(&report);
    if args.json {
        eprint!("{text}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{text}");
    }
    let clean = report.calls.failed == 0
        && !report.timed_out
        && report.session_log.is_none_or(|l| l.open() == 0);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
