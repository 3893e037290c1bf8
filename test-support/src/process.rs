//! The service as an operator runs it: the `companion` binary as a child process, the URL it
//! prints, sign-up over HTTP, SIGTERM, and waiting for the exit with a deadline.
//!
//! [`in_process`] runs a node inside the test process instead, for tests that change its
//! configuration in code.
//!
//! The binary's path comes from the caller (`env!("CARGO_BIN_EXE_companion")`): only the
//! binary's own package can name it.

use std::{
    ffi::OsString,
    future::Future,
    io::{BufRead, BufReader},
    path::Path,
    pin::Pin,
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// A command for `binary` in a fresh scratch folder of its own (named after `tag`), so its
/// embedded SQLite file lands there, not in the repository nor beside another test's. The
/// voice models come from `COMPANION_DEPS_DIR` (the workspace's `.deps` by default), any
/// `COMPANION_CONFIG` of the caller is dropped, logs are at `warn`; stdin is closed, stdout
/// and stderr are piped.
pub fn command(binary: impl AsRef<Path>, tag: &str) -> Command {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("companion-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    // The gateway's voice needs the Silero model and ONNX runtime scripts/bootstrap links.
    let deps: OsString = std::env::var_os("COMPANION_DEPS_DIR")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps").into());
    let mut cmd = Command::new(binary.as_ref());
    cmd.current_dir(dir)
        .env("COMPANION_DEPS_DIR", deps)
        .env_remove("COMPANION_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns `cmd` (its stdout piped) and reads the first line it prints, `companion is
/// running; open URL`; returns the child and the URL without a trailing slash.
pub fn spawn(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.spawn().expect("spawn companion");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read first line");
    let url = line
        .split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, url)
}

/// Signs up `email` at the control plane at `base` (adult, terms accepted) and returns its
/// access token.
pub async fn signup(base: &str, email: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/auth/signup"))
        .json(&serde_json::json!({
            "email": email, "password": "correct horse battery",
            "birth_year": 1990, "consent_terms": true
        }))
        .send()
        .await
        .expect("POST /api/auth/signup");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("JSON body");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Sends SIGTERM to `child` (with `kill`, which needs no unsafe code).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits for `child` to exit, failing the test if it takes longer than `deadline`.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            start.elapsed() < deadline,
            "process did not exit within {deadline:?}"
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Runs a node in this process the way `companion::run(config, on_listening, shutdown)` runs:
/// `run` gets the URL callback and the shutdown future and returns the node's future, which
/// runs in a task of its own (a failure fails the test). Returns the URL it reported (no
/// trailing slash, within 60 s) and the sender that stops it (dropping it stops it too).
///
/// ```ignore
/// let (url, stop) = in_process(|on_url, shutdown| companion::run(config, on_url, shutdown)).await;
/// ```
pub async fn in_process<F, Fut, E>(run: F) -> (String, oneshot::Sender<()>)
where
    F: FnOnce(OnListening, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (url_tx, url_rx) = oneshot::channel::<String>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let on_listening: OnListening = Box::new(move |url: &str| {
        let _ = url_tx.send(url.trim_end_matches('/').to_owned());
    });
    let shutdown: Shutdown = Box::pin(async move {
        let _ = stop_rx.await;
    });
    let node = run(on_listening, shutdown);
    tokio::spawn(async move {
        if let Err(e) = node.await {
            panic!("companion::run failed: {e:#}");
        }
    });
    let url = tokio::time::timeout(Duration::from_secs(60), url_rx)
        .await
        .expect("node started within 60 s")
        .expect("node started");
    (url, stop_tx)
}

/// The URL callback [`in_process`] hands to the node.
pub type OnListening = Box<dyn FnOnce(&str) + Send>;
/// The shutdown future [`in_process`] hands to the node: it completes when the stop sender is
/// used or dropped.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;
