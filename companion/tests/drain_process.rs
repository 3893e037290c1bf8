//! The binary drains on SIGTERM: with a call live, it keeps serving HTTP but refuses new calls
//! (503 `draining` with `Retry-After`), reports not ready, and exits once the drain deadline
//! has passed and the call is closed.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A browser's offer (Chromium 156: Opus audio and the `events` data channel).
const OFFER: &str = include_str!("../../gateway/testdata/chromium-156-offer.sdp");
const DRAIN_SECS: u64 = 3;

/// Starts the service on a free port with a short drain; returns it with its URL.
fn start() -> (Child, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("companion-drain-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let deps = std::env::var_os("COMPANION_DEPS_DIR")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps").into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_companion"))
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("COMPANION_DEPS_DIR", deps)
        .env_remove("COMPANION_CONFIG")
        .env("RUST_LOG", "warn")
        .env(
            "COMPANION__GATEWAY__DRAIN_DEADLINE_SECS",
            DRAIN_SECS.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn companion");
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

async fn signup(url: &str, email: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/auth/signup"))
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

async fn offer(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/calls"))
        .header("content-type", "application/sdp")
        .bearer_auth(token)
        .body(OFFER)
        .send()
        .await
        .expect("POST /v1/calls")
}

#[tokio::test]
async fn sigterm_with_a_live_call_drains_before_exiting() {
    let (mut child, url) = start();
    let token = signup(&url, "drain@example.com").await;
    // A call is answered (the browser never connects, so it stays live until the drain
    // closes it: the connect timeout is longer than the drain).
    let answered = offer(&url, &token).await;
    assert_eq!(answered.status(), 201);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let terminated = Instant::now();

    // HTTP still serves while the node drains: not ready, and no new calls.
    let mut saw_draining = false;
    while terminated.elapsed() < Duration::from_secs(DRAIN_SECS) - Duration::from_millis(500) {
        let ready = reqwest::get(format!("{url}/readyz"))
            .await
            .expect("GET /readyz");
        if ready.status() == 503 {
            let body: serde_json::Value = ready.json().await.expect("JSON body");
            assert_eq!(body["status"], "not_ready", "{body}");
            assert_eq!(
                body["checks"]["accepting_calls"]["status"], "failing",
                "{body}"
            );
            let refused = offer(&url, &token).await;
            assert_eq!(refused.status(), 503);
            assert_eq!(refused.headers()["retry-after"], "1");
            let body: serde_json::Value = refused.json().await.expect("JSON error");
            assert_eq!(body["error"]["code"], "draining", "{body}");
            saw_draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_draining, "the node never reported draining");

    // It exits by itself once the deadline has passed, not before.
    let exited = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(60),
            "the process did not exit after its drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exited.success(), "exit status {exited}");
    assert!(
        terminated.elapsed() >= Duration::from_secs(DRAIN_SECS),
        "exited {:?} after SIGTERM, before the {DRAIN_SECS} s drain deadline",
        terminated.elapsed()
    );
}
