//! A node is told to stop while a caller talks to the companion. It stops taking calls at
//! once (503 `draining` with `Retry-After`, `/readyz` failing) but the live call goes on:
//! the caller is told `goodbye` with the deadline, keeps talking and hears the answer. At
//! the deadline the session ends (`session_ended{server_shutdown}`) and the call is closed
//! (DTLS close). A drain whose last call ends early finishes early, and signaling keeps
//! serving hang-ups and trickle while the node drains.

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::voice::{Caller, count, dial, events, microphone, voice_node};
use gateway::{Config, DrainPhase, DrainReport};
use protocol::{ServerEvent, control::GoodbyeReason, voice::EndReason};
use reqwest::{Client, StatusCode, header};

const QUESTION: &str = "hello what is the weather like today";

/// Asserts that a new call is refused because the node drains.
async fn refused_while_draining(url: &str) {
    let Err((status, headers, body)) = dial(url, "bob-token").await else {
        panic!("a new call was answered while draining");
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "draining", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// Speaks `packets` in real time, moving the caller's traffic.
async fn speak(caller: &mut Caller, packets: &[Vec<u8>]) {
    let start = Instant::now();
    for (i, packet) in packets.iter().enumerate() {
        caller.peer.write_opus(Instant::now(), packet);
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        caller
            .run_for(due.saturating_duration_since(Instant::now()))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_refuses_new_calls_and_closes_live_ones_at_the_deadline() {
    let node = voice_node(Config::default(), QUESTION).await;
    let mut caller = dial(&node.url, "alice-token").await.expect("answered");
    caller.until_session_started().await;
    assert_eq!(node.gateway.drain_phase(), DrainPhase::Serving);
    let ready = node.gateway.readiness().await;
    assert!(ready.iter().all(|(_, r)| r.is_ok()), "{ready:?}");

    // The node is told to stop: live calls get 12 s.
    let deadline = Duration::from_secs(12);
    let drain_started = Instant::now();
    let drainer = tokio::spawn({
        let gateway = node.gateway.clone();
        async move { gateway.drain(deadline).await }
    });

    // The caller is told at once, with the time left and a spread-out reconnect hint.
    caller
        .run_until(Duration::from_secs(3), |p| {
            count(&events(p), "goodbye") == 1
        })
        .await;
    let goodbye = events(&caller.peer)
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::Goodbye(g) => Some(g),
            _ => None,
        })
        .unwrap();
    assert_eq!(goodbye.reason, GoodbyeReason::Draining);
    assert!(
        goodbye.deadline_ms <= 12_000 && goodbye.deadline_ms > 6_000,
        "{goodbye:?}"
    );
    assert!(
        goodbye.reconnect_after_ms.is_some_and(|ms| ms < 5_000),
        "{goodbye:?}"
    );

    // No new calls, and load balancers are told.
    refused_while_draining(&node.url).await;
    let ready = node.gateway.readiness().await;
    let accepting = ready.iter().find(|(name, _)| *name == "accepting_calls");
    assert!(
        matches!(accepting, Some((_, Err(why))) if why.contains("draining")),
        "{ready:?}"
    );

    // The live call goes on: the caller asks and hears the companion answer.
    caller.peer.send_text(r#"{"type":"ping","nonce":7}"#);
    let (question, silence) = microphone(include_bytes!("../testdata/hello.48k.wav"));
    speak(&mut caller, &question).await;
    let mut spoken = 0;
    let answer_by = Instant::now() + Duration::from_secs(8);
    while caller.peer.seen.audio_packets < 25 {
        assert!(
            Instant::now() < answer_by,
            "no answer while draining: {:?}",
            caller.peer.seen.messages
        );
        caller.peer.write_opus(Instant::now(), &silence);
        spoken += 1;
        caller.run_for(Duration::from_millis(20)).await;
    }
    let answered_at = drain_started.elapsed();
    assert!(
        answered_at < deadline,
        "the answer came after the deadline ({answered_at:?}); nothing was shown"
    );
    let seen = events(&caller.peer);
    assert!(count(&seen, "pong") == 1, "{:?}", caller.peer.seen.messages);
    let finals: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::TranscriptFinal(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finals, [QUESTION]);
    assert_eq!(
        count(&seen, "session_ended"),
        0,
        "ended before the deadline"
    );

    // At the deadline the session ends for shutdown and the call is closed.
    caller
        .run_until(deadline + Duration::from_secs(10), |p| {
            p.seen.closed && count(&events(p), "session_ended") == 1
        })
        .await;
    let ended_after = drain_started.elapsed();
    assert!(
        ended_after >= deadline - Duration::from_millis(100),
        "closed {ended_after:?} into a {deadline:?} drain"
    );
    let seen = events(&caller.peer);
    let Some(ServerEvent::SessionEnded(ended)) = seen.last() else {
        panic!(
            "session_ended is the last event: {:?}",
            caller.peer.seen.messages
        );
    };
    assert_eq!(ended.reason, EndReason::ServerShutdown);
    assert_eq!(count(&seen, "goodbye"), 1);

    let report: DrainReport = drainer.await.expect("drain ran");
    assert_eq!(
        report,
        DrainReport {
            calls_at_start: 1,
            ended_before_deadline: 0,
            closed_at_deadline: 1,
            forced: 0,
            left: 0,
        },
        "the voice bridge hung up by itself"
    );
    assert_eq!(node.gateway.active_calls(), 0);
    let gone_by = Instant::now() + Duration::from_secs(5);
    while node.factory.active_sessions() > 0 {
        assert!(
            Instant::now() < gone_by,
            "a voice session outlived its call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.gateway.drain_phase(), DrainPhase::Closing);
    refused_while_draining(&node.url).await;
    println!(
        "drain: answer heard {answered_at:?} into the drain ({spoken} silent frames after the \
         question), call closed {ended_after:?} in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_when_the_last_caller_hangs_up_and_signaling_keeps_serving() {
    let node = voice_node(Config::default(), QUESTION).await;
    let mut caller = dial(&node.url, "alice-token").await.expect("answered");
    caller.until_session_started().await;

    let drain_started = Instant::now();
    let drainer = tokio::spawn({
        let gateway = node.gateway.clone();
        async move { gateway.drain(Duration::from_secs(600)).await }
    });
    caller
        .run_until(Duration::from_secs(3), |p| {
            count(&events(p), "goodbye") == 1
        })
        .await;
    refused_while_draining(&node.url).await;

    // Trickle still reaches the call ...
    let url = format!("{}{}", node.url, caller.location);
    let frag = "a=candidate:1 1 udp 2122260223 10.99.0.2 50001 typ host\r\n";
    let res = Client::new()
        .patch(&url)
        .bearer_auth("alice-token")
        .header(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag")
        .body(frag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // ... and so does the caller's hang-up, which ends the drain long before its deadline.
    let res = Client::new()
        .delete(&url)
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    caller
        .run_until(Duration::from_secs(5), |p| p.seen.closed)
        .await;
    let report = tokio::time::timeout(Duration::from_secs(30), drainer)
        .await
        .expect("the drain ends with its last call")
        .expect("drain ran");
    assert_eq!(
        report,
        DrainReport {
            calls_at_start: 1,
            ended_before_deadline: 1,
            closed_at_deadline: 0,
            forced: 0,
            left: 0,
        }
    );
    assert!(drain_started.elapsed() < Duration::from_secs(60));
    assert_eq!(node.gateway.active_calls(), 0);
}

#[tokio::test]
async fn a_node_that_never_took_a_call_drains_at_once() {
    let gateway = gateway::Gateway::new(Config::default());
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        gateway.drain(Duration::from_secs(600)),
    )
    .await
    .expect("nothing to wait for");
    assert_eq!(report, DrainReport::default());
    assert_eq!(gateway.drain_phase(), DrainPhase::Closing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_connecting_at_the_deadline_is_closed_without_force() {
    let node = voice_node(Config::default(), QUESTION).await;
    // Answered, but the caller never connects.
    let caller = dial(&node.url, "alice-token").await.expect("answered");
    assert_eq!(node.gateway.active_calls(), 1);
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        node.gateway.drain(Duration::from_millis(500)),
    )
    .await
    .expect("the drain ends");
    assert_eq!(
        report,
        DrainReport {
            calls_at_start: 1,
            ended_before_deadline: 0,
            closed_at_deadline: 1,
            forced: 0,
            left: 0,
        }
    );
    drop(caller);
}
