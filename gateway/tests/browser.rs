//! A person opens a page in a real browser (headless Debian Chromium, fake microphone playing
//! `testdata/hello.48k.wav`), presses Call, talks and hears the gateway: the call connects,
//! Opus flows both ways, a message round-trips on `events`, and hanging up cleans the call up.
//!
//! Chromium never gathers loopback candidates, so the test re-runs itself inside a network
//! namespace it creates (`unshare -n`) with a veth pair at 10.99.0.1 and .2: browser and
//! gateway talk over that address and no packet can leave the machine. Needs root (or
//! unprivileged user namespaces), `chromium`, `node` and `npm ci` in `tests/browser`
//! (`scripts/bootstrap --test` installs all of them).

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::{path::PathBuf, time::Duration};

use axum::{Router, response::Html, routing::get};
use gateway::{CloseReason, Config};
use test_support::browser;

const IN_NETNS: &str = "GATEWAY_BROWSER_TEST_IN_NETNS";
const INNER: &str = "browser_call_inside_the_namespace";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_browser_calls_talks_hears_the_gateway_chats_and_hangs_up() {
    browser::require_chromium("the browser test", &manifest_dir().join("tests/browser"));
    browser::rerun_in_namespace(INNER, IN_NETNS, "browser-call:");
}

/// Runs inside the namespace (started by the test above); a no-op anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_browser_calls_talks_hears_the_gateway_chats_and_hangs_up in a network namespace"]
async fn browser_call_inside_the_namespace() {
    if !browser::in_namespace(IN_NETNS) {
        return;
    }
    browser::set_up_namespace_links();

    let config = Config {
        udp_listen: vec!["10.99.0.1:0".parse().unwrap()],
        dev_tokens: true,
        ..Config::default()
    };
    let page = Router::new().route(
        "/call.html",
        get(|| async { Html(include_str!("browser/call.html")) }),
    );
    let mut server =
        common::server::serve_at(config, None, "127.0.0.1:0".parse().unwrap(), page).await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    // `localhost` is a secure context, which getUserMedia requires.
    let url = format!("http://localhost:{port}/call.html");

    let session = tokio::spawn(async move {
        let call = server
            .calls
            .recv()
            .await
            .expect("the browser's call arrives");
        (common::session::tone_and_echo(call).await, server)
    });

    let wav = manifest_dir().join("testdata/hello.48k.wav");
    let mut node = tokio::process::Command::new("node");
    node.arg(manifest_dir().join("tests/browser/call.mjs"))
        .args([
            url.as_str(),
            wav.to_str().unwrap(),
            "dev:browser-user",
            "3000",
        ]);
    let (report, _) = browser::node_report(&mut node, Duration::from_secs(60)).await;
    println!(
        "browser-call: browser heard {} packets, {} bytes, peak RMS {} over {}",
        report["inbound"]["packetsReceived"],
        report["inbound"]["bytesReceived"],
        report["peakRms"],
        report["pair"]["remoteAddress"]
    );

    // The browser's view: answered, connected over the namespace address, heard Opus.
    assert_eq!(report["postStatus"], 201, "{report}");
    assert!(report["offer"].as_str().unwrap().contains("opus/48000/2"));
    assert!(
        report["patches"].as_u64().unwrap() >= 1,
        "trickle ICE was used: {report}"
    );
    let pair = report["pair"]["remoteAddress"].as_str().unwrap_or("");
    assert!(pair.starts_with("10.99.0.1:"), "{report}");
    let inbound = &report["inbound"];
    assert_eq!(
        inbound["codec"].as_str().unwrap_or(""),
        "audio/opus/111",
        "{report}"
    );
    assert!(
        inbound["packetsReceived"].as_u64().unwrap() >= 100,
        "{report}"
    );
    assert!(
        inbound["bytesReceived"].as_u64().unwrap() >= 5_000,
        "{report}"
    );
    // The 440 Hz tone at 8000/32768 has an RMS of ~0.17; speech-grade codecs keep it near.
    assert!(
        report["peakRms"].as_f64().unwrap() > 0.05,
        "the tone is audible: {report}"
    );
    let echo = report["messages"][0].as_str().unwrap_or("");
    assert_eq!(echo, r#"{"type":"echo","of":{"type":"ping","n":1}}"#);
    assert_eq!(report["deleteStatus"], 200);
    assert_eq!(report["secondDeleteStatus"], 404);
    assert_eq!(
        report["finalChannelState"], "closed",
        "the gateway said goodbye: {report}"
    );

    // The gateway's view: it heard the fake microphone and cleaned the call up.
    let (heard, server) = tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("the session ends after DELETE")
        .expect("session task");
    println!(
        "browser-call: gateway heard {} packets, {} bytes, RMS {:.0}; sent {} frames; \
         process CPU while connected {:.2} % of a core (debug build)",
        heard.audio_packets,
        heard.audio_bytes,
        heard.rms,
        heard.frames_sent,
        heard.cpu_share * 100.0
    );
    assert_eq!(heard.closed, CloseReason::CallerHungUp);
    assert!(heard.audio_packets >= 100, "{heard:?}");
    assert!(heard.audio_bytes >= 5_000, "{heard:?}");
    assert!(
        heard.rms > 100.0,
        "the gateway hears speech, not silence: {heard:?}"
    );
    assert_eq!(heard.messages, vec![r#"{"type":"ping","n":1}"#.to_owned()]);
    assert!(heard.frames_sent >= 100, "{heard:?}");
    assert_eq!(server.gateway.active_calls(), 0);
    println!(
        "browser-call: POST->connected {} ms, POST->events open {} ms, message round trip {} ms",
        report["postToConnectedMs"], report["postToChannelOpenMs"], report["roundTripMs"]
    );
}
