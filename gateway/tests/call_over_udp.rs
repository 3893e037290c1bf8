//! A str0m peer calls a served gateway over real loopback UDP: signaling over HTTP, the
//! tokio media endpoint in between, and the voice session's call handle at the far end.
//! The session hangs up, and the peer sees the call end.

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    RecordingPeer,
    server::{TestVerifier, serve},
    tone_frames,
};
use gateway::{CallState, CloseReason, Config};
use reqwest::StatusCode;
use test_support::webrtc::post_offer;
use tokio::net::UdpSocket;

/// Runs the peer on `socket` for `d` (str0m paces its sends, so it needs time to pass).
async fn run_peer_for(peer: &mut RecordingPeer, socket: &UdpSocket, d: Duration) {
    let end = Instant::now() + d;
    run_peer(peer, socket, d + Duration::from_secs(1), |_| {
        Instant::now() >= end
    })
    .await;
}

/// Runs the peer on `socket` until `done` says so; panics after `limit`.
async fn run_peer(
    peer: &mut RecordingPeer,
    socket: &UdpSocket,
    limit: Duration,
    mut done: impl FnMut(&RecordingPeer) -> bool,
) {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    while !done(peer) {
        assert!(Instant::now() < end, "peer timed out: {:?}", peer.seen);
        for t in std::mem::take(&mut peer.outbox) {
            socket
                .send_to(&t.contents, t.destination)
                .await
                .expect("send");
        }
        let next = peer.drain().min(Instant::now() + Duration::from_millis(10));
        let wait = next.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => peer.receive(Instant::now(), from, &buf[..n]),
            Ok(Err(e)) => panic!("recv: {e}"),
            Err(_) => peer.tick(Instant::now()),
        }
    }
    for t in std::mem::take(&mut peer.outbox) {
        socket
            .send_to(&t.contents, t.destination)
            .await
            .expect("send");
    }
}

#[tokio::test]
async fn a_peer_talks_over_udp_and_the_session_hangs_up() {
    let config = Config {
        udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..Config::default()
    };
    let mut s = serve(config, Some(Arc::new(TestVerifier))).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let (mut peer, offer, pending) = RecordingPeer::offer(Instant::now(), addr);

    let posted = Instant::now();
    let res = post_offer(&s.url, "bob-token", offer).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let answer = res.text().await.unwrap();
    peer.accept_answer(pending, &answer);
    let mut call = s.calls.recv().await.expect("the session gets the call");
    let sender = call.sender();
    assert_eq!(sender.state(), CallState::Connecting);

    run_peer(&mut peer, &socket, Duration::from_secs(5), |p| {
        p.seen.connected && p.seen.events_open
    })
    .await;
    sender
        .connected()
        .await
        .expect("the gateway side connects too");
    println!("udp-call: POST -> connected {:?}", posted.elapsed());

    // The peer talks for half a second; the session hears every packet with its RTP fields.
    for frame in tone_frames(25) {
        peer.write_opus(Instant::now(), &frame);
        run_peer_for(&mut peer, &socket, Duration::from_millis(20)).await;
    }
    let mut packets = Vec::new();
    while let Ok(p) = tokio::time::timeout(Duration::from_millis(300), call.recv_audio()).await {
        packets.push(p.expect("call open"));
    }
    // str0m may hold the newest packet back for reordering until the next one arrives.
    assert!(
        packets.len() >= 24,
        "the session heard {} of 25 packets",
        packets.len()
    );
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
        assert_eq!(
            pair[1].rtp_timestamp,
            pair[0].rtp_timestamp.wrapping_add(960)
        );
        assert!(pair[1].arrival >= pair[0].arrival);
    }

    // The session answers with audio and a message; the peer gets both.
    for frame in tone_frames(10) {
        sender.send_audio(frame.into(), 960).await.unwrap();
    }
    sender
        .send_message(r#"{"type":"transcript","text":"hi"}"#)
        .await
        .unwrap();
    run_peer(&mut peer, &socket, Duration::from_secs(3), |p| {
        p.seen.audio_packets >= 10 && !p.seen.messages.is_empty()
    })
    .await;
    assert_eq!(
        peer.seen.messages,
        vec![r#"{"type":"transcript","text":"hi"}"#.to_owned()]
    );
    peer.send_text(r#"{"type":"mute"}"#);
    run_peer_for(&mut peer, &socket, Duration::from_millis(50)).await;
    let text = tokio::time::timeout(Duration::from_secs(2), call.recv_message())
        .await
        .expect("message arrives");
    assert_eq!(text.as_deref(), Some(r#"{"type":"mute"}"#));

    let stats = sender.stats();
    assert_eq!(stats.audio_packets_in, packets.len() as u64);
    assert_eq!(stats.audio_packets_out, 10);
    assert_eq!((stats.messages_in, stats.messages_out), (1, 1));

    // The session hangs up: the handle closes at once and the peer's data channel ends.
    sender.hang_up().await.unwrap();
    assert_eq!(sender.closed().await, CloseReason::ServerHungUp);
    assert!(
        call.recv_audio().await.is_none(),
        "no audio after the call ends"
    );
    assert!(sender.send_audio(vec![0u8; 3].into(), 960).await.is_err());
    assert_eq!(s.gateway.active_calls(), 0);
}
