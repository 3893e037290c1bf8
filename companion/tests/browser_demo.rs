//! A person uses the demo page in a real browser against the whole service in one process:
//! creates an account, signs out and in again, presses Call and talks (headless Debian
//! Chromium whose fake microphone plays a recording), sees both questions transcribed, hears
//! the companion (reply RTP arrives), watches its mouth move with the visemes, sees each
//! turn's latency, and in a second run talks over the answer and sees it cut to what was
//! heard. A screenshot taken mid-call is kept in `target/test-artefacts/`.
//!
//! The providers are the in-tree mock (`pipeline::mock::MockServer`); what the recogniser
//! "hears" in each turn is scripted by a small TCP relay in front of the mock's Deepgram
//! endpoint that adds `x-mock-transcript` to the n-th listening connection.
//!
//! Chromium never gathers loopback candidates, so each test re-runs itself inside a network
//! namespace (`unshare --net --map-root-user`) with a veth pair at 10.99.0.1/.2, as
//! `gateway/tests/browser.rs` does. Needs `chromium`, `node`, `ip`, `unshare` and `npm ci`
//! in `companion/tests/browser` (`scripts/bootstrap --test` installs them).

// The measured timings and the artefact's path go to the test log on purpose.
#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use pipeline::mock::{MockConfig, MockServer, reply_for};
use serde_json::Value;
use test_support::browser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const IN_NETNS: &str = "COMPANION_BROWSER_DEMO_IN_NETNS";
const HELLO: &str = "hello what is the weather like today";
const MINECRAFT: &str = "can you help me build a house in minecraft";
const STORY: &str = "tell me a short story about a robot who learns to paint";
const INTERRUPT: &str = "wait stop i have a different question";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("companion sits in the workspace")
        .to_owned()
}

/// `target/test-artefacts` under `CARGO_TARGET_DIR` when set, else the workspace's `target`.
fn artefacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(
            || workspace_root().join("target"),
            |t| {
                if t.is_absolute() {
                    t
                } else {
                    workspace_root().join(t)
                }
            },
        );
    target.join("test-artefacts")
}

/// Re-runs `inner` (an ignored test of this binary) inside a fresh network namespace and
/// passes its log through.
fn in_namespace(inner: &str) {
    browser::require_chromium(
        "the demo browser test",
        &manifest_dir().join("tests/browser"),
    );
    browser::rerun_in_namespace(inner, IN_NETNS, "demo-page:");
}

#[test]
fn a_person_signs_up_calls_and_sees_two_turns_answered_by_a_moving_face() {
    in_namespace("two_turns_inside_the_namespace");
}

#[test]
fn talking_over_the_companion_shows_its_answer_cut_to_what_was_heard() {
    in_namespace("barge_in_inside_the_namespace");
}

/// Inside the namespace: the two-question call at desktop width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_person_signs_up_calls_and_sees_two_turns_answered_by_a_moving_face in a network namespace"]
async fn two_turns_inside_the_namespace() {
    if !browser::in_namespace(IN_NETNS) {
        return;
    }
    let report = demo_call(
        "call-two-turns.48k.wav",
        &[HELLO, MINECRAFT],
        "two-turns",
        "demo-mid-call.png",
    )
    .await;
    let page = &report["page"];

    // Both questions, final, in order; the partials they replaced are gone.
    let user = page["user"].as_array().expect("user lines");
    let finals: Vec<(u64, &str)> = user
        .iter()
        .filter(|l| l["final"] == true)
        .map(|l| (l["turn"].as_u64().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert!(finals.len() >= 2, "{report}");
    assert_eq!(finals[..2], [(1, HELLO), (2, MINECRAFT)], "{report}");
    // The first answer is the mock model's reply to the first question (possibly cut when
    // the second question talked over it: the mock's answers run ~15 s).
    let first = &page["companion"][0];
    assert_eq!(first["turn"], 1, "{report}");
    let answer = first["text"].as_str().unwrap_or("");
    assert!(
        !answer.is_empty() && reply_for(HELLO).starts_with(answer),
        "the first answer is the reply to HELLO: {answer:?}"
    );

    // Heard and seen: reply audio arrived, the mouth moved through several shapes on the
    // playback clock of the RTP receiver, and a turn's latency is shown.
    assert!(page["rtpBytes"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(page["visemesApplied"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(page["mouthShapes"].as_u64().unwrap_or(0) > 1, "{report}");
    assert_eq!(
        page["sync"], "rtp",
        "lipsync follows the RTP receiver: {report}"
    );
    let latency = page["latencyMs"].as_u64().expect("a latency is shown");
    assert!(page["latencyTurns"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(
        page["latencyText"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("{latency} ms")),
        "{report}"
    );
    assert!(page["notice"].is_null(), "no error shown: {report}");
    assert_eq!(page["horizontalOverflow"], false, "{report}");

    // Hanging up returns the page to ready.
    assert_eq!(report["afterHangUp"]["state"], "ready", "{report}");
    println!(
        "demo-page: latency shown {latency} ms, {} visemes applied, {} reply RTP bytes",
        page["visemesApplied"], page["rtpBytes"]
    );
}

/// Inside the namespace: the barge-in call at phone width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by talking_over_the_companion_shows_its_answer_cut_to_what_was_heard in a network namespace"]
async fn barge_in_inside_the_namespace() {
    if !browser::in_namespace(IN_NETNS) {
        return;
    }
    let report = demo_call(
        "call-barge-in.48k.wav",
        &[STORY, INTERRUPT],
        "barge-in",
        "demo-barge-in-phone.png",
    )
    .await;
    let page = &report["page"];

    let cut = page["companion"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["interrupted"] == true))
        .unwrap_or_else(|| panic!("an interrupted answer is shown: {report}"));
    assert_eq!(cut["turn"], 1, "{report}");
    let heard = cut["heard"].as_str().expect("heardText");
    // What is shown is exactly what was heard: a part of the full answer, not all of it.
    assert_eq!(cut["text"], heard, "{report}");
    let full = reply_for(STORY);
    assert!(
        !heard.is_empty() && heard.len() < full.len() && full.starts_with(heard.trim_end()),
        "heard {heard:?} is a beginning of {full:?}"
    );
    assert_eq!(cut["note"], "interrupted", "{report}");
    assert!(page["interruptions"].as_u64().unwrap_or(0) >= 1, "{report}");
    // The question that interrupted is transcribed as the second turn.
    let second = page["user"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["turn"] == 2))
        .unwrap_or_else(|| panic!("turn 2 shown: {report}"));
    assert_eq!(second["text"], INTERRUPT, "{report}");
    assert_eq!(page["horizontalOverflow"], false, "fits a phone: {report}");
    println!(
        "demo-page: the phone showed the answer cut after {} of {} characters",
        heard.len(),
        full.len()
    );
}

/// Runs the whole service with mock providers and drives the page through one call; returns
/// the page's report after checking it went through without errors.
async fn demo_call(wav: &str, transcripts: &[&str], scenario: &str, screenshot: &str) -> Value {
    browser::set_up_namespace_links();
    let started = Instant::now();

    let mock = MockServer::start(MockConfig::default())
        .await
        .expect("mock providers");
    let stt = script_transcripts(mock.addr(), transcripts).await;

    let scratch =
        std::env::temp_dir().join(format!("companion-demo-{scenario}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let mut config = companion::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.control_plane.database_url = format!(
        "sqlite://{}?mode=rwc",
        scratch.join("companion.sqlite").display()
    );
    config.gateway.udp_listen = vec!["10.99.0.1:0".parse().unwrap()];
    config.media = media::RuntimePaths::from_env_or(&workspace_root());
    let mut providers = mock.pipeline_config();
    providers.stt.order = vec!["deepgram".into()];
    providers.stt.deepgram.url = format!("ws://{stt}/v1/listen");
    providers.llm.order = vec!["openai".into()];
    providers.tts.order = vec!["elevenlabs".into()];
    config.pipeline = providers;

    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = companion::run(
        config,
        move |url| {
            let _ = url_tx.send(url.to_owned());
        },
        async move {
            let _ = stop_rx.await;
        },
    );
    // The browser session, beside the service in this task; it stops the service when done.
    let browser = async move {
        let outcome = browse(url_rx, started, wav, scenario, screenshot).await;
        let _ = stop_tx.send(());
        outcome
    };
    let (stopped, outcome) = tokio::join!(
        async { tokio::time::timeout(Duration::from_secs(80), service).await },
        browser
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let (report, stderr) = outcome;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the service stops cleanly: {stopped:?}\n{stderr}"
    );

    assert!(
        report["error"].is_null(),
        "the page run failed: {report}\n{stderr}"
    );
    assert!(
        report["pageErrors"].is_null(),
        "script errors: {report}\n{stderr}"
    );
    assert_eq!(
        report["cspViolations"].as_array().map(Vec::len),
        Some(0),
        "the page runs under its own policy: {report}"
    );
    assert_eq!(report["pageStatus"], 200, "{report}");
    assert!(
        report["csp"]
            .as_str()
            .is_some_and(|p| p.contains("script-src 'self'")),
        "{report}"
    );
    assert!(
        report["refusedSignIn"]
            .as_str()
            .is_some_and(|s| s.contains("(invalid_credentials)")),
        "a refused sign-in shows the error body: {report}"
    );
    assert!(
        report["signedInAs"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("demo-{scenario}-"))),
        "{report}"
    );
    match report["screenshot"].as_str() {
        Some(path) => println!("demo-page: mid-call screenshot at {path}"),
        None => panic!("no mid-call screenshot: {report}"),
    }
    println!(
        "demo-page: {scenario}: signed up at {} ms, connected {} ms after Call, talking at {} ms, done at {} ms",
        report["timings"]["signedUpMs"],
        report["timings"]["connectedMs"],
        report["timings"]["talkingMs"],
        report["timings"]["doneMs"]
    );
    report
}

/// Waits for the service's URL, then runs the page in Chromium; returns its report and
/// node's stderr (the page's console).
async fn browse(
    url_rx: tokio::sync::oneshot::Receiver<String>,
    started: Instant,
    wav: &str,
    scenario: &str,
    screenshot: &str,
) -> (Value, String) {
    let url = tokio::time::timeout(Duration::from_secs(20), url_rx)
        .await
        .expect("the service starts within 20 s")
        .expect("the service printed its URL");
    // `localhost` is a secure context, which getUserMedia requires.
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let page_url = format!("http://localhost:{port}/");
    println!("demo-page: service up in {:?}", started.elapsed());

    let artefacts = artefacts_dir();
    std::fs::create_dir_all(&artefacts).expect("artefacts dir");
    let shot = artefacts.join(screenshot);
    // The recordings (and their word timings) live with the media crate's tests.
    // Chromium's fake microphone plays silence for a path it cannot resolve, so no `..`.
    let data = manifest_dir()
        .join("../media/testdata")
        .join(wav)
        .canonicalize()
        .expect("recording present");
    let mut node = tokio::process::Command::new("node");
    node.arg(manifest_dir().join("tests/browser/demo.mjs"))
        .args([
            page_url.as_str(),
            data.to_str().expect("a UTF-8 path"),
            scenario,
            shot.to_str().expect("a UTF-8 path"),
        ]);
    browser::node_report(&mut node, Duration::from_secs(55)).await
}

/// A relay in front of the mock's Deepgram endpoint: the n-th `GET /v1/listen` (one per turn)
/// gets `x-mock-transcript: transcripts[n]` (the last one again after that); other requests
/// pass unchanged. Returns the relay's address.
async fn script_transcripts(
    mock: std::net::SocketAddr,
    transcripts: &[&str],
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
    let addr = listener.local_addr().expect("relay address");
    let transcripts: Arc<Vec<String>> =
        Arc::new(transcripts.iter().map(|t| (*t).to_owned()).collect());
    let turns = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (transcripts, turns) = (transcripts.clone(), turns.clone());
            tokio::spawn(async move {
                let _ = relay(client, mock, &transcripts, &turns).await;
            });
        }
    });
    addr
}

async fn relay(
    mut client: TcpStream,
    mock: std::net::SocketAddr,
    transcripts: &[String],
    turns: &AtomicUsize,
) -> std::io::Result<()> {
    // Read the request head (the WebSocket upgrade request is small and comes first).
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if head.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let first_line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(end);
    let mut forwarded = head.clone();
    if head.starts_with(b"GET /v1/listen") {
        let n = turns.fetch_add(1, Ordering::Relaxed);
        let text = &transcripts[n.min(transcripts.len() - 1)];
        let line = format!("\r\nx-mock-transcript: {text}");
        forwarded.splice(first_line_end..first_line_end, line.into_bytes());
    }
    let mut upstream = TcpStream::connect(mock).await?;
    upstream.write_all(&forwarded).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
