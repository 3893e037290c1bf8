//! The binary as an operator runs it: start, print the URL, answer health checks, stop
//! cleanly on SIGTERM, and refuse a bad configuration with a message naming the key.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use test_support::{
    process::{self, signup, sigterm, wait_with_deadline},
    webrtc,
};

fn companion() -> Command {
    process::command(env!("CARGO_BIN_EXE_companion"), "process")
}

/// Starts the service on a free port and returns it with the URL it printed.
fn start(extra: &[&str]) -> (Child, String) {
    start_with(extra, &[])
}

fn start_with_env(env: &[(&str, &str)]) -> (Child, String) {
    start_with(&[], env)
}

fn start_with(extra: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let (child, url) = process::spawn(
        companion()
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied()),
    );
    assert!(url.starts_with("http://127.0.0.1:"), "printed {url:?}");
    (child, url)
}

/// Offers a (malformed) call with `bearer` and returns the status: 401 when the token is
/// refused, 400 when it was accepted and the SDP was not.
async fn post_offer(gateway: &str, bearer: &str) -> u16 {
    webrtc::post_offer(gateway, bearer, "not an SDP offer")
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn starts_prints_its_url_answers_health_and_stops_on_sigterm() {
    let (mut child, url) = start(&[]);

    let health = reqwest::get(format!("{url}/healthz"))
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    assert!(
        health.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = health.json().await.expect("JSON body");
    assert_eq!(body["status"], "ok");

    let ready = reqwest::get(format!("{url}/readyz"))
        .await
        .expect("GET /readyz");
    let status = ready.status();
    let body: serde_json::Value = ready.json().await.expect("JSON body");
    assert!(body["checks"].is_object(), "{body}");
    assert_eq!(status == 200, body["status"] == "ready", "{body}");
    // QUIC chat is on by default: its endpoint is bound and accepting.
    assert_eq!(body["checks"]["quic"]["status"], "ok", "{body}");

    let page = reqwest::get(format!("{url}/")).await.expect("GET /");
    assert_eq!(page.status(), 200);

    sigterm(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_stalled_request_does_not_hold_shutdown_past_the_grace_period() {
    use tokio::io::AsyncWriteExt as _;

    let (mut child, url) = start_with_env(&[("COMPANION__SERVER__SHUTDOWN_GRACE_SECS", "2")]);
    let mut stalled = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .expect("connect");
    // Half a request: the server must not wait for the rest beyond the grace period.
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    sigterm(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_bad_config_value_stops_start_up_naming_the_key() {
    let out = companion()
        .env("COMPANION__SERVER__SHUTDOWN_GRACE_SECS", "soon")
        .output()
        .expect("run companion");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.shutdown_grace_secs"), "{stderr}");
    assert!(
        stderr.contains("COMPANION__SERVER__SHUTDOWN_GRACE_SECS"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_gateway_node_and_a_control_plane_node_run_as_separate_processes() {
    const SERVICE_TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let tokens = format!("[\"{SERVICE_TOKEN}\"]");
    let (mut control, control_url) = start_with(
        &["--mode", "control-plane"],
        &[("COMPANION__CONTROL_PLANE__SERVICE_TOKENS", &tokens)],
    );
    // A gateway node without the data plane's credential would have every chat turn and
    // quota call refused: it does not start.
    let out = companion()
        .args(["--listen", "127.0.0.1:0", "--mode", "gateway"])
        .env("COMPANION__GATEWAY__CONTROL_PLANE_URL", &control_url)
        .output()
        .expect("run companion");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.control_plane_service_token"),
        "{stderr}"
    );
    let (mut gateway, gateway_url) = start_with(
        &["--mode", "gateway"],
        &[
            ("COMPANION__GATEWAY__CONTROL_PLANE_URL", &control_url),
            (
                "COMPANION__GATEWAY__CONTROL_PLANE_SERVICE_TOKEN",
                SERVICE_TOKEN,
            ),
        ],
    );
    for url in [&control_url, &gateway_url] {
        let health = reqwest::get(format!("{url}/healthz"))
            .await
            .expect("GET /healthz");
        assert_eq!(health.status(), 200, "{url}");
    }
    // The status page belongs to the gateway only.
    let page = reqwest::get(format!("{control_url}/"))
        .await
        .expect("GET /");
    assert_eq!(page.status(), 404);
    for child in [&mut control, &mut gateway] {
        sigterm(child);
        assert!(wait_with_deadline(child, Duration::from_secs(10)).success());
    }
}

#[tokio::test]
async fn the_gateway_accepts_the_control_planes_tokens_and_refuses_others() {
    let (mut child, url) = start(&[]);
    let token = signup(&url, "caller@example.com").await;

    // A valid token gets past authentication to the SDP check.
    assert_eq!(post_offer(&url, &token).await, 400);
    // A tampered one does not.
    let mut tampered = token.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(post_offer(&url, &tampered).await, 401);
    let dev = post_offer(&url, "dev:someone").await;
    assert_eq!(dev, 401, "development tokens are off by default");

    sigterm(&child);
    assert!(wait_with_deadline(&mut child, Duration::from_secs(10)).success());
}

#[test]
fn a_missing_vad_model_stops_start_up_saying_what_to_install() {
    let out = companion()
        .args(["--listen", "127.0.0.1:0"])
        .env("COMPANION__MEDIA__MODEL", "/nonexistent/silero_vad.onnx")
        .output()
        .expect("run companion");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/silero_vad.onnx"), "{stderr}");
    assert!(stderr.contains("scripts/bootstrap"), "{stderr}");
}

#[test]
fn a_printed_configuration_shows_no_secret() {
    let secrets = [
        (
            "COMPANION__CONTROL_PLANE__STRIPE__SECRET_KEY",
            "sk_live_topsecret",
            "topsecret",
        ),
        (
            "COMPANION__CONTROL_PLANE__STRIPE__WEBHOOK_SECRETS",
            "[\"whsec_webhook_secret_value\"]",
            "webhook_secret_value",
        ),
        (
            "COMPANION__CONTROL_PLANE__DATABASE_URL",
            "postgres://app:pa@ss@db:5432/c",
            "pa@ss",
        ),
        (
            "COMPANION__CONTROL_PLANE__SIGNING_KEY_SECRET",
            "signing-secret-value",
            "signing-secret-value",
        ),
        (
            "COMPANION__CONTROL_PLANE__SERVICE_TOKENS",
            "[\"service-credential-0123456789\"]",
            "service-credential",
        ),
        (
            "COMPANION__GATEWAY__CONTROL_PLANE_SERVICE_TOKEN",
            "gateway-credential-0123456789",
            "gateway-credential",
        ),
        (
            "COMPANION__CONTROL_PLANE__OAUTH_PROVIDERS",
            "[{name = \"google\", client_id = \"id\", client_secret = \"oauth-secret-value\", \
             redirect_uri = \"https://x.example/cb\"}]",
            "oauth-secret-value",
        ),
    ];
    let out = companion()
        .arg("--print-config")
        .envs(secrets.iter().map(|(k, v, _)| (*k, *v)))
        .output()
        .expect("run companion");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stripe"), "{stdout}");
    assert!(stdout.contains("postgres://app:***@db:5432/c"), "{stdout}");
    for (var, _, secret) in secrets {
        assert!(!stdout.contains(secret), "{var} printed: {stdout}");
    }
}
