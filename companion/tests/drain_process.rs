//! The binary drains on SIGTERM: with a call live, it keeps serving HTTP but refuses new calls
//! (503 `draining` with `Retry-After`), reports not ready, and exits once the drain deadline
//! has passed and the call is closed.

use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use test_support::{
    process::{self, signup, sigterm},
    webrtc,
};

/// A browser's offer (Chromium 156: Opus audio and the `events` data channel).
const OFFER: &str = include_str!("../../gateway/testdata/chromium-156-offer.sdp");
const DRAIN_SECS: u64 = 3;

/// Starts the service on a free port with a short drain; returns it with its URL.
fn start() -> (Child, String) {
    process::spawn(
        process::command(env!("CARGO_BIN_EXE_companion"), "drain")
            .args(["--listen", "127.0.0.1:0"])
            .env(
                "COMPANION__GATEWAY__DRAIN_DEADLINE_SECS",
                DRAIN_SECS.to_string(),
            )
            .stderr(Stdio::null()),
    )
}

async fn offer(url: &str, token: &str) -> reqwest::Response {
    webrtc::post_offer(url, token, OFFER).await
}

#[tokio::test]
async fn sigterm_with_a_live_call_drains_before_exiting() {
    let (mut child, url) = start();
    let token = signup(&url, "drain@example.com").await;
    // A call is answered (the browser never connects, so it stays live until the drain
    // closes it: the connect timeout is longer than the drain).
    let answered = offer(&url, &token).await;
    assert_eq!(answered.status(), 201);

    sigterm(&child);
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
    let exited = process::wait_with_deadline(&mut child, Duration::from_secs(60));
    assert!(exited.success(), "exit status {exited}");
    assert!(
        terminated.elapsed() >= Duration::from_secs(DRAIN_SECS),
        "exited {:?} after SIGTERM, before the {DRAIN_SECS} s drain deadline",
        terminated.elapsed()
    );
}
