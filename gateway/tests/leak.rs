//! Hang-up cleans up every task and buffer: many callers, a few at a time, each dial a node
//! whose calls run real voice sessions (mock providers, Silero VAD), wait for
//! `session_started`, and hang up in one of the three ways a call ends (signaling `DELETE`,
//! `hang_up` on the data channel, DTLS close from the browser). Afterwards the node holds no
//! call state, no voice session, no extra tokio task, and its memory has not grown per call.
//!
//! CI places 100 calls. The 1,000-call run (numbers in benches/README.md, "gateway: leak
//! check"):
//!
//! ```sh
//! cargo nextest run --release -p gateway --test leak --run-ignored only --no-capture
//! ```
//!
//! `GATEWAY_LEAK_CALLS=<n>` changes the count of the CI test.

// The measured numbers go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::voice::{VoiceNode, dial, voice_node};
use gateway::{Config, MediaCensus};
use reqwest::{Client, StatusCode};

/// Callers dialling at the same time.
const CONCURRENCY: usize = 4;
/// Calls placed before the baseline is taken: they warm the allocator, the provider
/// connection pools and the runtime's worker state, which a node keeps whatever the count.
const WARM_UP: usize = 2 * CONCURRENCY;
/// A leaked call costs far more than this (its session's buffers alone are hundreds of KiB;
/// see the measured growth in benches/README.md, which is about a tenth of this).
const MAX_RSS_GROWTH_PER_CALL: u64 = 64 * 1024;

/// Tasks the provider connection pools may add over a run (see `leak_check`).
const POOL_SLACK: usize = 4;

/// How call `i` ends.
#[derive(Debug, Clone, Copy)]
enum HangUp {
    /// `DELETE /v1/calls/{id}`.
    Signaling,
    /// `{"type":"hang_up"}` on `events`: the voice bridge hangs up.
    DataChannel,
    /// The browser closes its peer connection (DTLS close_notify).
    Browser,
}

async fn one_call(node: &VoiceNode, http: &Client, i: usize) {
    let mut caller = dial(&node.url, &format!("load:caller-{}", i % CONCURRENCY))
        .await
        .unwrap_or_else(|refused| panic!("call {i} refused: {refused:?}"));
    caller.until_session_started().await;
    match [HangUp::Signaling, HangUp::DataChannel, HangUp::Browser][i % 3] {
        HangUp::Signaling => {
            let res = http
                .delete(format!("{}{}", node.url, caller.location))
                .bearer_auth(format!("load:caller-{}", i % CONCURRENCY))
                .send()
                .await
                .expect("DELETE");
            assert_eq!(res.status(), StatusCode::OK);
            caller
                .run_until(Duration::from_secs(10), |p| p.seen.closed)
                .await;
        }
        HangUp::DataChannel => {
            caller.peer.send_text(r#"{"type":"hang_up"}"#);
            caller
                .run_until(Duration::from_secs(10), |p| p.seen.closed)
                .await;
        }
        HangUp::Browser => {
            caller.peer.rtc_mut().close().expect("close");
            caller.peer.drain();
            // Sends the close_notify; the node notices on its own.
            caller.run_for(Duration::from_millis(20)).await;
        }
    }
}

/// Places `n` calls, `CONCURRENCY` at a time.
async fn place_calls(node: &VoiceNode, n: usize) {
    let http = &Client::new();
    let next = &std::sync::atomic::AtomicUsize::new(0);
    let worker = move || async move {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return;
            }
            one_call(node, http, i).await;
        }
    };
    let workers: Vec<_> = (0..CONCURRENCY).map(|_| worker()).collect();
    futures_join_all(workers).await;
}

/// Runs futures concurrently on this task (no extra tokio tasks to count).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Waits until every call, session and task the calls added is gone; panics after `limit`.
async fn settle(node: &VoiceNode, tasks: usize, limit: Duration) -> usize {
    let runtime = tokio::runtime::Handle::current().metrics();
    let end = Instant::now() + limit;
    loop {
        let alive = runtime.num_alive_tasks();
        let census = node.gateway.media_census().await.expect("endpoint running");
        if node.gateway.active_calls() == 0
            && node.factory.active_sessions() == 0
            && census == MediaCensus::default()
            && alive <= tasks
        {
            return alive;
        }
        assert!(
            Instant::now() < end,
            "after {limit:?}: {} calls, {} sessions, {census:?}, {alive} tasks (baseline {tasks})",
            node.gateway.active_calls(),
            node.factory.active_sessions(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

async fn leak_check(calls: usize) {
    let node = voice_node(Config::default(), "hello").await;
    place_calls(&node, WARM_UP).await;
    let baseline_tasks = settle(&node, usize::MAX, Duration::from_secs(30)).await;
    let baseline_rss = rss();

    let started = Instant::now();
    place_calls(&node, calls).await;
    let elapsed = started.elapsed();
    // Provider connection pools (a task per pooled connection on each side of the in-process
    // mock) may end a burst holding a connection or two more than after the warm-up; a task
    // leaked per call would show up `calls` times over.
    let tasks = settle(&node, baseline_tasks + POOL_SLACK, Duration::from_secs(30)).await;
    let grown = rss().saturating_sub(baseline_rss);
    let per_call = grown / calls as u64;
    println!(
        "gateway leak check: {calls} calls in {elapsed:.1?} ({:.1} calls/s, {CONCURRENCY} at a \
         time); after hang-up: 0 calls, 0 sessions, {tasks} tokio tasks (baseline \
         {baseline_tasks}), RSS +{} KiB ({} B per call)",
        calls as f64 / elapsed.as_secs_f64(),
        grown / 1024,
        per_call
    );
    assert_eq!(node.factory.sessions_started(), WARM_UP + calls);
    assert_eq!(node.factory.sessions_failed(), 0);
    assert!(
        per_call < MAX_RSS_GROWTH_PER_CALL,
        "RSS grew {grown} bytes over {calls} calls ({per_call} per call)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_hung_up_every_way_leave_nothing_behind() {
    let calls = std::env::var("GATEWAY_LEAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    leak_check(calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1,000 calls: run in release, see the module docs"]
async fn a_thousand_calls_leave_nothing_behind() {
    leak_check(1_000).await;
}
