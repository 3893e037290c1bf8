//! `--spawn`: starts `mock-providers` and a `companion` gateway on 127.0.0.1 (development
//! tokens, the mock as STT/LLM/TTS with realistic latencies, SQLite in a temporary folder), so
//! one command reproduces the numbers; stops both afterwards.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::report::SessionLog;

/// Why the service could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A binary is missing.
    #[error(
        "{0} not found: build it first with `cargo build --release -p companion -p pipeline --bin companion --bin mock-providers` (or pass --bin-dir)"
    )]
    Missing(PathBuf),
    /// Files or processes could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A process exited or never became ready.
    #[error("{what} did not become ready: {detail}")]
    NotReady {
        /// Which process.
        what: &'static str,
        /// What was seen (exit status, last log lines).
        detail: String,
    },
}

/// Mock provider timings. Defaults are typical of the hosted vendors in one region: a final
/// transcript 150 ms after the audio ends (Deepgram streaming), 250 ms to the first LLM token
/// then 15 ms per token (a small hosted model), 150 ms to the first TTS byte (ElevenLabs
/// turbo), TTS streaming at about four times real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockLatencies {
    /// Final transcript delay, ms.
    pub stt_ms: u64,
    /// Time to first LLM token, ms.
    pub ttft_ms: u64,
    /// Between LLM tokens, ms.
    pub token_ms: u64,
    /// Time to first TTS audio, ms.
    pub tts_ttfb_ms: u64,
    /// Between 40 ms TTS chunks, ms.
    pub tts_chunk_interval_ms: u64,
}

impl Default for MockLatencies {
    fn default() -> Self {
        Self {
            stt_ms: 150,
            ttft_ms: 250,
            token_ms: 15,
            tts_ttfb_ms: 150,
            tts_chunk_interval_ms: 10,
        }
    }
}

/// How to start the service.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Folder holding `companion` and `mock-providers` (release builds).
    pub bin_dir: PathBuf,
    /// Folder with the Silero model and ONNX Runtime (`COMPANION_DEPS_DIR`).
    pub deps_dir: PathBuf,
    /// Provider timings.
    pub latencies: MockLatencies,
    /// `gateway.max_calls`.
    pub max_calls: usize,
}

/// The running service.
#[derive(Debug)]
pub struct Spawned {
    dir: PathBuf,
    mock: Child,
    companion: Child,
    log: PathBuf,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub base_url: String,
    /// The gateway's process id.
    pub pid: u32,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SpawnError {
    let what = what.into();
    move |source| SpawnError::Io { what, source }
}

fn free_port() -> Result<u16, SpawnError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The companion configuration for a load run against mock providers at `mock`.
#[must_use]
pub fn companion_toml(port: u16, mock: &str, dir: &Path, max_calls: usize) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
shutdown_grace_secs = 2

[log]
filter = "info"
format = "json"

[gateway]
dev_tokens = true
dev_max_concurrent_calls = 1
max_calls = {max_calls}

[control_plane]
database_url = "sqlite://{db}?mode=rwc"

[pipeline.llm]
order = ["openai"]

[pipeline.llm.openai]
base_url = "http://{mock}/v1"
model = "mock-openai"
api_key = "mock-key"

[pipeline.stt]
order = ["deepgram"]

[pipeline.stt.deepgram]
url = "ws://{mock}/v1/listen"
api_key = "mock-key"

[pipeline.tts]
order = ["elevenlabs"]

[pipeline.tts.elevenlabs]
base_url = "http://{mock}"
api_key = "mock-key"
"#,
        db = dir.join("companion.sqlite").display()
    )
}

fn mock_toml(l: &MockLatencies) -> String {
    format!(
        "stt_latency_ms = {}\nttft_ms = {}\ntoken_interval_ms = {}\ntts_ttfb_ms = {}\ntts_chunk_interval_ms = {}\n",
        l.stt_ms, l.ttft_ms, l.token_ms, l.tts_ttfb_ms, l.tts_chunk_interval_ms
    )
}

impl Spawned {
    /// Starts both processes and waits until the gateway answers `/readyz` with 200.
    pub async fn start(opts: &SpawnOptions) -> Result<Self, SpawnError> {
        let companion_bin = opts.bin_dir.join("companion");
        let mock_bin = opts.bin_dir.join("mock-providers");
        for b in [&companion_bin, &mock_bin] {
            if !b.exists() {
                return Err(SpawnError::Missing(b.clone()));
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("voice-calls-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;

        let mock_addr = format!("127.0.0.1:{}", free_port()?);
        let mock_cfg = dir.join("mock.toml");
        std::fs::write(&mock_cfg, mock_toml(&opts.latencies)).map_err(io("writing mock.toml"))?;
        let mock_log = dir.join("mock.log");
        let mut mock = Command::new(&mock_bin)
            .args(["--listen", &mock_addr, "--config"])
            .arg(&mock_cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&mock_log).map_err(io("creating mock.log"))?)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", mock_bin.display())))?;
        wait_tcp(&mut mock, &mock_addr, &mock_log).await?;

        let port = free_port()?;
        let cfg = dir.join("companion.toml");
        std::fs::write(&cfg, companion_toml(port, &mock_addr, &dir, opts.max_calls))
            .map_err(io("writing companion.toml"))?;
        let log = dir.join("companion.log");
        let out = std::fs::File::create(&log).map_err(io("creating companion.log"))?;
        let err = out.try_clone().map_err(io("creating companion.log"))?;
        let companion = Command::new(&companion_bin)
            .arg("--config")
            .arg(&cfg)
            .current_dir(&dir)
            .env("COMPANION_DEPS_DIR", &opts.deps_dir)
            .env_remove("RUST_LOG")
            .env_remove("COMPANION_CONFIG")
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", companion_bin.display())))?;
        let pid = companion.id().unwrap_or(0);
        let mut spawned = Self {
            dir,
            mock,
            companion,
            log,
            base_url: format!("http://127.0.0.1:{port}"),
            pid,
        };
        spawned.wait_ready().await?;
        Ok(spawned)
    }

    async fn wait_ready(&mut self) -> Result<(), SpawnError> {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.base_url);
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.companion.try_wait() {
                return Err(SpawnError::NotReady {
                    what: "companion",
                    detail: format!("exited with {status}:\n{}", tail(&self.log, 20)),
                });
            }
            if let Ok(res) = http.get(&url).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > give_up {
                return Err(SpawnError::NotReady {
                    what: "companion",
                    detail: format!("no 200 from {url} in 60 s:\n{}", tail(&self.log, 20)),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Counts voice-session lines in the gateway's log so far.
    #[must_use]
    pub fn session_log(&self) -> SessionLog {
        parse_log(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Where the gateway's log is (kept after `stop` only when it failed).
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGTERM (the gateway's graceful shutdown), then a kill after 10 s; removes the
    /// temporary folder.
    pub async fn stop(mut self) {
        for child in [&mut self.companion, &mut self.mock] {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_tcp(child: &mut Child, addr: &str, log: &Path) -> Result<(), SpawnError> {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SpawnError::NotReady {
                what: "mock-providers",
                detail: format!("exited with {status}:\n{}", tail(log, 20)),
            });
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(SpawnError::NotReady {
                what: "mock-providers",
                detail: format!("nothing listening on {addr} after 20 s"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts `voice session started` / `ended` lines of a JSON-lines `tracing` log and sums the
/// loss counters the gateway logs when a session ends.
#[must_use]
pub fn parse_log(text: &str) -> SessionLog {
    let mut out = SessionLog::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if matches!(
            v.get("level").and_then(|l| l.as_str()),
            Some("WARN" | "ERROR")
        ) {
            out.warnings += 1;
        }
        let Some(fields) = v.get("fields") else {
            continue;
        };
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        match fields.get("message").and_then(|m| m.as_str()) {
            Some("voice session started") => out.started += 1,
            Some("voice session ended") => {
                out.ended += 1;
                out.lost += num("lost");
                out.late += num("late");
                out.frames_dropped += num("frames_dropped");
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lines_are_counted_from_json_logs() {
        let log = r#"{"timestamp":"t","level":"INFO","fields":{"message":"voice session started","call":"a"},"target":"gateway::voice::call"}
{"timestamp":"t","level":"INFO","fields":{"message":"voice session started","call":"b"},"target":"gateway::voice::call"}
{"timestamp":"t","level":"INFO","fields":{"message":"voice session ended","lost":3,"late":1,"frames_dropped":0},"target":"gateway::voice::call"}
{"timestamp":"t","level":"WARN","fields":{"message":"something"},"target":"x"}
not json at all"#;
        let l = parse_log(log);
        assert_eq!((l.started, l.ended, l.open()), (2, 1, 1));
        assert_eq!((l.lost, l.late, l.frames_dropped, l.warnings), (3, 1, 0, 1));
    }

    #[test]
    fn the_companion_config_uses_dev_tokens_and_the_mock() {
        let t = companion_toml(9000, "127.0.0.1:9001", Path::new("/tmp/x"), 100);
        let v: toml::Table = t.parse().unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert_eq!(v["gateway"]["dev_tokens"].as_bool(), Some(true));
        assert_eq!(v["gateway"]["max_calls"].as_integer(), Some(100));
        assert_eq!(
            v["pipeline"]["stt"]["deepgram"]["url"].as_str(),
            Some("ws://127.0.0.1:9001/v1/listen")
        );
        let m: toml::Table = mock_toml(&MockLatencies::default()).parse().unwrap();
        assert_eq!(m["ttft_ms"].as_integer(), Some(250));
    }
}
