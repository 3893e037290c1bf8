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

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use axum::{Router, response::Html, routing::get};
use gateway::{CloseReason, Config};
use serde_json::Value;

const IN_NETNS: &str = "GATEWAY_BROWSER_TEST_IN_NETNS";
const INNER: &str = "browser_call_inside_the_namespace";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_browser_calls_talks_hears_the_gateway_chats_and_hangs_up() {
    let js = manifest_dir().join("tests/browser");
    for (what, ok, fix) in [
        (
            "chromium",
            Path::new("/usr/bin/chromium").exists(),
            "apt-get install chromium",
        ),
        (
            "playwright-core",
            js.join("node_modules/playwright-core").exists(),
            "npm ci in gateway/tests/browser",
        ),
    ] {
        assert!(
            ok,
            "the browser test needs {what}: run scripts/bootstrap --test ({fix})"
        );
    }
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--net", "--map-root-user", "--"])
        .arg(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            INNER,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NETNS, "1")
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the call inside the namespace failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    // Show the measurements in the test log.
    for line in stdout.lines() {
        if let Some(at) = line.find("browser-call:") {
            println!("{}", &line[at..]);
        }
    }
    println!("browser-call: whole test {:?}", started.elapsed());
}

/// Runs inside the namespace (started by the test above); a no-op anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_browser_calls_talks_hears_the_gateway_chats_and_hangs_up in a network namespace"]
async fn browser_call_inside_the_namespace() {
    if std::env::var_os(IN_NETNS).is_none() {
        return;
    }
    for args in [
        &["link", "set", "lo", "up"][..],
        // A veth pair (dummy links need a kernel module containers often lack).
        &["link", "add", "gw0", "type", "veth", "peer", "name", "gw1"],
        &["addr", "add", "10.99.0.1/24", "dev", "gw0"],
        &["addr", "add", "10.99.0.2/24", "dev", "gw1"],
        &["link", "set", "gw0", "up"],
        &["link", "set", "gw1", "up"],
        // Chromium looks for a default route to pick its addresses; this one leads nowhere.
        &["route", "add", "default", "dev", "gw0"],
    ] {
        let status = Command::new("ip")
            .args(args)
            .status()
            .expect("run ip (iproute2)");
        assert!(status.success(), "ip {args:?} failed");
    }

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
    let node = tokio::process::Command::new("node")
        .arg(manifest_dir().join("tests/browser/call.mjs"))
        .args([
            url.as_str(),
            wav.to_str().unwrap(),
            "dev:browser-user",
            "3000",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), node)
        .await
        .expect("the browser finishes within 60 s")
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
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
