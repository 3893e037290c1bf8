//! A browser chats over WebTransport: headless Debian Chromium opens a session to the
//! gateway's QUIC endpoint, pinning its self-signed certificate with
//! `serverCertificateHashes` (fetched from `GET /v1/webtransport/cert-hash`), reads `hello`
//! from the server's control stream, and streams a reply from the mock LLM through the real
//! chat service and control plane; a stream with a bad token is refused without closing the
//! session.
//!
//! QUIC over localhost UDP needs no network namespace (unlike WebRTC in `browser.rs`). The
//! page is served from `http://localhost`, a secure context, as WebTransport requires. Needs
//! `chromium`, `node` and `npm ci` in `tests/webtransport` (`scripts/bootstrap --test`).

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod quic_support;

use std::{path::PathBuf, time::Duration};

use axum::{Router, response::Html, routing::get};
use pipeline::mock::MockConfig;
use quic_support::service::Service;
use serde_json::Value;
use test_support::browser;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The events of one request stream as the page decoded them: `(sequence, event)`.
fn events(frames: &Value) -> Vec<(u64, Value)> {
    frames
        .as_array()
        .expect("a frame list")
        .iter()
        .map(|f| {
            assert_eq!(f["type"], 3, "event frames only: {f}");
            (f["sequence"].as_u64().unwrap(), f["event"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_streams_a_reply_over_webtransport() {
    let js = manifest_dir().join("tests/webtransport");
    browser::require_chromium("the WebTransport browser test", &js);

    let page = Router::new().route(
        "/wt.html",
        get(|| async { Html(include_str!("webtransport/wt.html")) }),
    );
    let mock = MockConfig {
        ttft_ms: 20,
        token_interval_ms: 10,
        ..MockConfig::default()
    };
    let service = Service::start(mock, page).await;
    let token = service.user("browser-wt@example.com").await;
    let conversation = service.conversation(&token).await;
    // `localhost` is a secure context, which WebTransport requires.
    let url = format!("http://localhost:{}/wt.html", service.http.port());

    let mut node = tokio::process::Command::new("node");
    node.arg(js.join("wt.mjs"))
        .args([url.as_str(), token.as_str(), conversation.as_str()]);
    let (report, _) = browser::node_report(&mut node, Duration::from_secs(60)).await;

    let port = service.quic.local_addr().port();
    assert_eq!(
        report["url"],
        format!("https://127.0.0.1:{port}/v1/chat/wt")
    );
    assert_eq!(report["hello"]["event"]["type"], "hello", "{report}");
    assert_eq!(report["hello"]["sequence"], 0);

    // The reply, in order, numbered from 0, its deltas adding up to the final message.
    let reply = events(&report["reply"]);
    let kinds: Vec<&str> = reply
        .iter()
        .map(|(_, e)| e["type"].as_str().unwrap())
        .collect();
    for (i, (sequence, _)) in reply.iter().enumerate() {
        assert_eq!(*sequence, i as u64, "{kinds:?}");
    }
    assert_eq!(kinds.first(), Some(&"typing_start"), "{kinds:?}");
    assert_eq!(kinds[1], "message_start", "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"typing_stop"), "{kinds:?}");
    let deltas: String = reply
        .iter()
        .filter(|(_, e)| e["type"] == "message_delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    let complete = &reply[reply.len() - 2].1;
    assert_eq!(complete["type"], "message_complete", "{kinds:?}");
    assert_eq!(complete["finishReason"], "stop");
    assert_eq!(complete["requestId"], "wt-1");
    assert!(deltas.len() > 10, "a real reply: {deltas:?}");
    assert_eq!(complete["message"]["content"], deltas.as_str());
    let stored = service.messages(&token, &conversation).await;
    assert!(
        stored
            .iter()
            .any(|(role, content)| role == "companion" && *content == deltas),
        "{stored:?}"
    );

    // A bad token fails its stream only; the session answers the next request.
    let refused = events(&report["refused"]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].1["type"], "error");
    assert_eq!(refused[0].1["code"], "unauthorized");
    let again = events(&report["again"]);
    assert!(
        again.iter().any(|(_, e)| e["type"] == "message_complete"),
        "{again:?}"
    );

    let first_delta = reply
        .iter()
        .position(|(_, e)| e["type"] == "message_delta")
        .map(|i| report["reply"][i]["atMs"].as_f64().unwrap());
    println!(
        "webtransport: session ready {:.0} ms after new WebTransport(); first delta {:.0} ms \
         after send (mock time to first token 20 ms); {} deltas",
        report["readyMs"].as_f64().unwrap_or(f64::NAN),
        first_delta.unwrap_or(f64::NAN) - report["sentAt"].as_f64().unwrap_or(f64::NAN),
        kinds.iter().filter(|k| **k == "message_delta").count()
    );
}
