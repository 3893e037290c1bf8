//! A caller rings the companion from a browser: the str0m peer says "Hello! What is the
//! weather like today?" as real-time Opus over loopback UDP, then stays quiet. The gateway's
//! voice bridge runs the pipeline session on mock providers, and the caller hears a spoken
//! answer and sees the whole conversation on the `events` channel: the session starts, the
//! question is transcribed, the answer streams as text with lipsync, the turn's latency is
//! reported. A message the bridge does not understand gets an `error`, `interrupt` silences
//! the answer, and `hang_up` ends it all.

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{RecordingPeer, server::TestVerifier, voice::microphone};
use gateway::{Config, Gateway, VoiceConfig};
use pipeline::mock::MockConfig;
use protocol::ServerEvent;
use reqwest::StatusCode;
use test_support::providers;
use test_support::webrtc::post_offer;
use tokio::net::UdpSocket;

const QUESTION: &str = "hello what is the weather like today";

/// Moves the peer's packets for `d` (str0m paces its sends, so it needs time to pass).
async fn run_peer_for(peer: &mut RecordingPeer, socket: &UdpSocket, d: Duration) {
    let end = Instant::now() + d;
    let mut buf = [0u8; 2048];
    loop {
        for t in std::mem::take(&mut peer.outbox) {
            socket
                .send_to(&t.contents, t.destination)
                .await
                .expect("send");
        }
        let now = Instant::now();
        if now >= end {
            return;
        }
        let wait = peer.drain().min(end).saturating_duration_since(now);
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => peer.receive(Instant::now(), from, &buf[..n]),
            Ok(Err(e)) => panic!("recv: {e}"),
            Err(_) => peer.tick(Instant::now()),
        }
    }
}

fn events(peer: &RecordingPeer) -> Vec<ServerEvent> {
    peer.seen
        .messages
        .iter()
        .map(|m| ServerEvent::from_json_str(m).unwrap_or_else(|e| panic!("{m}: {e}")))
        .collect()
}

fn count(events: &[ServerEvent], type_name: &str) -> usize {
    events.iter().filter(|e| e.type_name() == type_name).count()
}

/// Reply frames the caller hears, i.e. that decode to more than near-silence.
fn audible_frames(packets: &[Vec<u8>]) -> usize {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
    let mut pcm = [0i16; 5760];
    packets
        .iter()
        .filter(|p| {
            let n = dec
                .decode(p, &mut pcm, false)
                .expect("the reply is valid opus");
            let energy: f64 = pcm[..n].iter().map(|s| f64::from(*s).powi(2)).sum();
            (energy / n.max(1) as f64).sqrt() > 300.0
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_says_hello_and_hears_the_companion_answer() {
    // The companion: mock providers that hear QUESTION, and the Silero VAD from `.deps`.
    let mock = providers::mock_server(MockConfig {
        transcript: QUESTION.into(),
        ..MockConfig::default()
    })
    .await;
    let factory = providers::voice_factory(&mock, VoiceConfig::default());

    // The gateway, served as the hosting binary would.
    let gateway = Gateway::new(Config {
        udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..Config::default()
    })
    .with_verifier(Arc::new(TestVerifier))
    .with_call_handler(factory.clone());
    gateway.start().await.expect("media endpoint");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The browser calls.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let (mut peer, offer, pending) = RecordingPeer::offer(Instant::now(), addr);
    let res = post_offer(&url, "alice-token", offer).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    peer.accept_answer(pending, &res.text().await.unwrap());
    let dialled = Instant::now();
    while !(peer.seen.connected && peer.seen.events_open) {
        assert!(dialled.elapsed() < Duration::from_secs(5), "no connection");
        run_peer_for(&mut peer, &socket, Duration::from_millis(10)).await;
    }
    assert_eq!(factory.active_sessions(), 1);

    // The caller asks, in real time, then stays quiet until the answer has played a while.
    let (question, silence) = microphone(include_bytes!("../testdata/hello.48k.wav"));
    let speaking = Instant::now();
    let mut sent = 0usize;
    let mut first_audio_at = None;
    loop {
        let packet = question.get(sent).unwrap_or(&silence);
        peer.write_opus(Instant::now(), packet);
        sent += 1;
        // Keep the 20 ms cadence against the wall clock, not against loop overhead.
        let due = speaking + Duration::from_millis(20 * sent as u64);
        run_peer_for(
            &mut peer,
            &socket,
            due.saturating_duration_since(Instant::now()),
        )
        .await;
        if first_audio_at.is_none() && peer.seen.audio_packets > 0 {
            first_audio_at = Some(speaking.elapsed());
        }
        let seen = events(&peer);
        if count(&seen, "turn_metrics") > 0 && peer.seen.audio_packets >= 75 {
            break;
        }
        assert!(
            speaking.elapsed() < Duration::from_secs(12),
            "no answer: {} audio packets, events {:?}",
            peer.seen.audio_packets,
            peer.seen.messages
        );
    }

    // The caller was greeted, heard, transcribed and answered.
    let seen = events(&peer);
    let ServerEvent::SessionStarted(started) = &seen[0] else {
        panic!("first event: {:?}", seen[0]);
    };
    assert_eq!(count(&seen, "session_started"), 1);
    let finals: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::TranscriptFinal(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finals, [QUESTION]);
    for ty in [
        "response_started",
        "text_delta",
        "audio_started",
        "visemes",
        "turn_metrics",
    ] {
        assert!(count(&seen, ty) > 0, "no {ty}: {:?}", peer.seen.messages);
    }
    let order = |ty: &str| seen.iter().position(|e| e.type_name() == ty).unwrap();
    assert!(order("transcript_final") < order("response_started"));
    assert!(order("response_started") < order("audio_started"));
    let reply: String = seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::TextDelta(d) => Some(d.delta.as_str()),
            _ => None,
        })
        .collect();
    assert!(reply.contains("weather like today"), "{reply}");
    let visemes: usize = seen
        .iter()
        .map(|e| match e {
            ServerEvent::Visemes(v) => v.frames.len(),
            _ => 0,
        })
        .sum();
    assert!(
        visemes > count(&seen, "visemes"),
        "visemes come in batches: {visemes} in {} events",
        count(&seen, "visemes")
    );
    let latency = seen
        .iter()
        .find_map(|e| match e {
            ServerEvent::TurnMetrics(m) => m.latency.response_latency_ms(),
            _ => None,
        })
        .expect("voice-to-voice latency");

    // ... and heard the answer: real speech-like audio, not silence.
    let audible = audible_frames(&peer.seen.audio_payloads);
    assert!(
        audible >= 40,
        "{audible} of {} reply frames are audible",
        peer.seen.audio_packets
    );
    println!(
        "voice-call: first reply audio {:?} after the caller began, voice-to-voice {latency} ms, \
         {} reply packets ({audible} audible), {} events, {visemes} visemes",
        first_audio_at.unwrap(),
        peer.seen.audio_packets,
        seen.len()
    );

    // Nonsense on the channel gets an error, not a dropped call; hang_up ends the session.
    let before_errors = peer.seen.audio_packets;
    peer.send_text(r#"{"type":"dance"}"#);
    peer.send_text("not json");
    run_peer_for(&mut peer, &socket, Duration::from_millis(200)).await;
    let errors = count(&events(&peer), "error");
    assert_eq!(errors, 2, "{:?}", peer.seen.messages);
    // The caller presses stop: the companion falls silent at once (within what was already
    // on the wire) and stays silent.
    peer.send_text(r#"{"type":"interrupt"}"#);
    run_peer_for(&mut peer, &socket, Duration::from_millis(200)).await;
    let at_stop = peer.seen.audio_packets;
    assert!(at_stop > before_errors, "the answer was still playing");
    run_peer_for(&mut peer, &socket, Duration::from_millis(600)).await;
    assert_eq!(
        peer.seen.audio_packets, at_stop,
        "audio kept coming after interrupt"
    );

    peer.send_text(r#"{"type":"hang_up"}"#);
    let hung_up = Instant::now();
    while factory.active_sessions() > 0 || gateway.active_calls() > 0 {
        assert!(
            hung_up.elapsed() < Duration::from_secs(3),
            "session or call still alive"
        );
        run_peer_for(&mut peer, &socket, Duration::from_millis(10)).await;
    }
    let seen = events(&peer);
    let ended = seen.iter().find_map(|e| match e {
        ServerEvent::SessionEnded(e) => Some(e),
        _ => None,
    });
    let ended = ended.expect("session_ended before the call closed");
    assert_eq!(ended.session_id, started.session_id);
    assert_eq!(ended.reason, protocol::voice::EndReason::HangUp);
    assert_eq!(factory.sessions_started(), 1);
}
