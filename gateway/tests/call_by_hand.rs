//! A browser-like str0m peer calls the gateway's call registry with packets moved by hand and
//! time advanced by the test: no sockets, no runtime. The caller talks (a tone), hears the
//! gateway's tone back, chats on `events`, and hangs up.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{RecordingPeer, STEP, decoded_rms, tone_frames};
use gateway::{CallEvent, CallId, CallRegistry, CloseReason, RegistryOutput, RegistrySettings};

const GATEWAY: &str = "10.99.0.1:3478";
const BROWSER: &str = "10.99.0.2:50000";

fn settings() -> RegistrySettings {
    RegistrySettings {
        max_calls: 10,
        connect_timeout: Duration::from_secs(15),
        disconnect_timeout: Duration::from_secs(10),
        max_event_bytes: 16 * 1024,
    }
}

/// Moves every pending datagram both ways until nothing is in flight; returns gateway events.
fn exchange(
    now: Instant,
    peer: &mut RecordingPeer,
    registry: &mut CallRegistry,
    events: &mut Vec<(CallId, CallEvent)>,
) {
    let gateway: SocketAddr = GATEWAY.parse().unwrap();
    loop {
        let mut moved = false;
        for t in std::mem::take(&mut peer.outbox) {
            assert_eq!(t.destination, gateway);
            registry.handle_datagram(now, 0, peer.addr(), &t.contents);
            moved = true;
        }
        while let Some(out) = registry.poll_output() {
            match out {
                RegistryOutput::Transmit {
                    socket,
                    destination,
                    contents,
                } => {
                    assert_eq!((socket, destination), (0, peer.addr()));
                    peer.receive(now, gateway, &contents);
                    moved = true;
                }
                RegistryOutput::Event(id, e) => events.push((id, e)),
            }
        }
        if !moved {
            return;
        }
    }
}

/// Advances time by `d` in small steps, firing both sides' timers.
fn run_for(
    now: &mut Instant,
    d: Duration,
    peer: &mut RecordingPeer,
    registry: &mut CallRegistry,
    events: &mut Vec<(CallId, CallEvent)>,
) {
    let end = *now + d;
    while *now < end {
        *now += STEP;
        peer.tick(*now);
        registry.handle_timeout(*now);
        exchange(*now, peer, registry, events);
    }
}

#[test]
fn a_caller_talks_hears_a_tone_chats_and_hangs_up() {
    let mut now = Instant::now();
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let (mut peer, offer, pending) = RecordingPeer::offer(now, BROWSER.parse().unwrap());

    // Signaling: the offer is answered and the answer names the gateway's host candidate.
    let created = registry
        .create_call(now, "alice", 2, &offer)
        .expect("the offer is answered");
    assert!(
        created.answer.contains("a=candidate:"),
        "{}",
        created.answer
    );
    assert!(
        created.answer.contains(" 10.99.0.1 3478 typ host"),
        "{}",
        created.answer
    );
    assert!(created.answer.contains("a=ice-lite"), "{}", created.answer);
    peer.accept_answer(pending, &created.answer);
    assert_eq!(registry.len(), 1);

    // ICE, DTLS and SCTP come up within a few simulated round trips.
    let mut events = Vec::new();
    let started = now;
    exchange(now, &mut peer, &mut registry, &mut events);
    while !(peer.seen.connected && peer.seen.events_open) {
        run_for(&mut now, STEP, &mut peer, &mut registry, &mut events);
        assert!(
            now - started < Duration::from_secs(5),
            "no connection: {events:?}"
        );
    }
    assert!(events.contains(&(created.id, CallEvent::Connected)));

    // The caller talks: one second of a 440 Hz tone reaches the gateway as Opus packets.
    let frames = tone_frames(50);
    for frame in &frames {
        peer.write_opus(now, frame);
        run_for(
            &mut now,
            Duration::from_millis(20),
            &mut peer,
            &mut registry,
            &mut events,
        );
    }
    let heard: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEvent::Audio(p) => Some(p.payload.to_vec()),
            _ => None,
        })
        .collect();
    assert!(
        heard.len() >= 48,
        "gateway got {} of 50 packets",
        heard.len()
    );
    assert!(decoded_rms(&heard) > 2000.0, "the gateway hears the tone");
    let seqs: Vec<u16> = events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEvent::Audio(p) => Some(p.seq),
            _ => None,
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "in order: {seqs:?}"
    );

    // The gateway speaks: its frames arrive at the caller as decodable audio.
    for frame in &frames {
        registry
            .write_audio(now, created.id, frame, 960)
            .expect("the gateway writes opus");
        run_for(
            &mut now,
            Duration::from_millis(20),
            &mut peer,
            &mut registry,
            &mut events,
        );
    }
    assert!(
        peer.seen.audio_packets >= 48,
        "caller got {}",
        peer.seen.audio_packets
    );
    assert!(
        decoded_rms(&peer.seen.audio_payloads) > 2000.0,
        "the caller hears the tone"
    );

    // Messages cross the `events` channel both ways.
    peer.send_text(r#"{"type":"hello"}"#);
    run_for(
        &mut now,
        Duration::from_millis(50),
        &mut peer,
        &mut registry,
        &mut events,
    );
    assert!(events.contains(&(
        created.id,
        CallEvent::Text(r#"{"type":"hello"}"#.to_owned())
    )));
    registry
        .send_text(now, created.id, r#"{"type":"welcome"}"#)
        .expect("the gateway sends a message");
    run_for(
        &mut now,
        Duration::from_millis(50),
        &mut peer,
        &mut registry,
        &mut events,
    );
    assert_eq!(peer.seen.messages, vec![r#"{"type":"welcome"}"#.to_owned()]);

    // Someone else cannot hang up Alice's call; Alice can.
    assert!(
        registry
            .hang_up(now, created.id, Some("mallory"), CloseReason::CallerHungUp)
            .is_err()
    );
    registry
        .hang_up(now, created.id, Some("alice"), CloseReason::CallerHungUp)
        .expect("alice hangs up");
    run_for(
        &mut now,
        Duration::from_millis(100),
        &mut peer,
        &mut registry,
        &mut events,
    );
    assert!(registry.is_empty(), "the call is gone");
    assert!(events.contains(&(created.id, CallEvent::Closed(CloseReason::CallerHungUp))));
}

#[test]
fn a_call_that_never_connects_is_dropped_after_the_connect_timeout() {
    let now = Instant::now();
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let (_peer, offer, _pending) = RecordingPeer::offer(now, BROWSER.parse().unwrap());
    let created = registry
        .create_call(now, "bob", 1, &offer)
        .expect("answered");

    // Bob's second call is over his limit of one.
    let (_peer2, offer2, _) = RecordingPeer::offer(now, "10.99.0.3:50000".parse().unwrap());
    assert!(registry.create_call(now, "bob", 1, &offer2).is_err());

    let deadline = registry.poll_timeout().expect("a timer is armed");
    assert!(deadline <= now + Duration::from_secs(15));
    let mut t = now;
    while !registry.is_empty() {
        t = registry.poll_timeout().expect("timer").max(t);
        registry.handle_timeout(t);
        assert!(
            t <= now + Duration::from_secs(16),
            "still alive at {:?}",
            t - now
        );
    }
    let closed: Vec<_> = std::iter::from_fn(|| registry.poll_output())
        .filter_map(|o| match o {
            RegistryOutput::Event(id, CallEvent::Closed(r)) => Some((id, r)),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![(created.id, CloseReason::ConnectTimeout)]);

    // With the first call gone, Bob may call again.
    assert!(registry.create_call(t, "bob", 1, &offer2).is_ok());
}

#[test]
fn a_caller_whose_certificate_does_not_match_the_offer_fingerprint_is_refused() {
    let mut now = Instant::now();
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let (mut peer, offer, pending) = RecordingPeer::offer(now, BROWSER.parse().unwrap());

    // Someone on the signaling path swaps the fingerprint (one hex digit is enough).
    let line = offer
        .lines()
        .find(|l| l.starts_with("a=fingerprint:sha-256 "))
        .expect("the offer has a sha-256 fingerprint");
    let mut tampered_line = line.to_owned();
    let last = tampered_line.pop().expect("hex digit");
    tampered_line.push(if last == '0' { '1' } else { '0' });
    let tampered = offer.replace(line, &tampered_line);

    let created = registry
        .create_call(now, "alice", 2, &tampered)
        .expect("the offer itself is well formed");
    peer.accept_answer(pending, &created.answer);

    let mut events = Vec::new();
    exchange(now, &mut peer, &mut registry, &mut events);
    run_for(
        &mut now,
        Duration::from_secs(3),
        &mut peer,
        &mut registry,
        &mut events,
    );

    assert!(
        !events.contains(&(created.id, CallEvent::Connected)),
        "{events:?}"
    );
    assert!(!peer.seen.connected, "no media keys may be derived");
    let closed = events.iter().find_map(|(id, e)| match e {
        CallEvent::Closed(CloseReason::Failed(why)) if *id == created.id => Some(why.clone()),
        _ => None,
    });
    let why = closed.expect("the gateway drops the call at once");
    assert!(why.to_lowercase().contains("fingerprint"), "{why}");
    assert!(registry.is_empty());
}

#[test]
fn chromiums_offer_is_answered_with_opus_111_and_the_events_channel() {
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let offer = include_str!("../testdata/chromium-156-offer.sdp");
    let created = registry
        .create_call(Instant::now(), "alice", 1, offer)
        .expect("Chromium's offer is answered");
    let a = &created.answer;
    assert!(a.contains("a=rtpmap:111 opus/48000/2"), "{a}");
    assert!(
        !a.contains("PCMU") && !a.contains("G722"),
        "only Opus is accepted: {a}"
    );
    assert!(
        a.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
        "{a}"
    );
    assert!(
        a.contains("a=setup:active") || a.contains("a=setup:passive"),
        "{a}"
    );
    assert!(
        a.contains("a=ssrc:"),
        "the gateway announces its own sending SSRC: {a}"
    );
}

#[test]
fn a_caller_who_vanishes_without_hanging_up_is_dropped() {
    let mut now = Instant::now();
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let (mut peer, offer, pending) = RecordingPeer::offer(now, BROWSER.parse().unwrap());
    let created = registry
        .create_call(now, "alice", 1, &offer)
        .expect("answered");
    peer.accept_answer(pending, &created.answer);
    let mut events = Vec::new();
    while !peer.seen.connected {
        run_for(&mut now, STEP, &mut peer, &mut registry, &mut events);
    }

    // The tab is closed: nothing more arrives from the caller.
    let vanished = now;
    while !registry.is_empty() {
        now += Duration::from_millis(100);
        registry.handle_timeout(now);
        while let Some(out) = registry.poll_output() {
            if let RegistryOutput::Event(id, e) = out {
                events.push((id, e));
            }
        }
        assert!(
            now - vanished < Duration::from_secs(60),
            "still alive after a minute"
        );
    }
    let gone_after = now - vanished;
    assert!(
        gone_after <= Duration::from_secs(30),
        "dropped after {gone_after:?}"
    );
    assert!(
        events.contains(&(created.id, CallEvent::Closed(CloseReason::Disconnected))),
        "{events:?}"
    );
}

#[test]
fn junk_from_unknown_addresses_is_dropped_without_disturbing_calls() {
    let now = Instant::now();
    let mut registry = CallRegistry::new(settings(), vec![GATEWAY.parse().unwrap()]);
    let (_peer, offer, _) = RecordingPeer::offer(now, BROWSER.parse().unwrap());
    registry
        .create_call(now, "alice", 1, &offer)
        .expect("answered");

    let stranger: SocketAddr = "198.51.100.7:4444".parse().unwrap();
    // An RTP-looking packet, a DTLS-looking one, and bytes that are nothing at all.
    let mut rtp = vec![0x80, 111, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    rtp.extend_from_slice(&[0u8; 40]);
    let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10];
    for junk in [&rtp[..], &dtls[..], &[0xffu8; 3][..], &[][..]] {
        registry.handle_datagram(now, 0, stranger, junk);
    }
    let stats = registry.stats();
    assert_eq!(
        stats.unmatched_datagrams + stats.malformed_datagrams,
        4,
        "{stats:?}"
    );
    assert!(
        registry.poll_output().is_none(),
        "nothing is sent to a stranger"
    );
    assert_eq!(registry.len(), 1);
}

/// A STUN binding request from nowhere, its USERNAME naming `ufrag` as the gateway's.
fn stray_binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:stranger");
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    attrs.resize(attrs.len().div_ceil(4) * 4, 0);
    // PRIORITY and a MESSAGE-INTEGRITY made up by someone without the call's password:
    // well-formed enough for str0m to parse, and to be refused by the call it names.
    attrs.extend_from_slice(&[0x00, 0x24, 0, 4, 0x6e, 0, 0x1e, 0xff]);
    attrs.extend_from_slice(&[0x00, 0x08, 0, 20]);
    attrs.extend_from_slice(&[0xAB; 20]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&attrs);
    m
}

#[test]
fn stray_stun_from_unknown_addresses_costs_one_lookup_however_many_calls_there_are() {
    let now = Instant::now();
    let mut registry = CallRegistry::new(
        RegistrySettings {
            max_calls: 200,
            ..settings()
        },
        vec![GATEWAY.parse().unwrap()],
    );
    let mut ufrags = Vec::new();
    for i in 0..150u16 {
        let browser = SocketAddr::from(([10, 99, 1, (i % 250) as u8], 40_000 + i));
        let (_peer, offer, _) = RecordingPeer::offer(now, browser);
        let created = registry
            .create_call(now, &format!("user{i}"), 1, &offer)
            .expect("answered");
        let ufrag = created
            .answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .expect("the answer has a ufrag")
            .trim()
            .to_owned();
        ufrags.push(ufrag);
    }
    assert_eq!(registry.tables().ufrags, 150);
    let stranger: SocketAddr = "198.51.100.7:4444".parse().unwrap();

    // Naming no call: no call is asked.
    registry.handle_datagram(now, 0, stranger, &stray_binding_request("nosuchufrag"));
    assert_eq!(registry.stats().calls_asked, 0);
    // Naming a real call, with credentials it cannot verify: that one call is asked, once.
    registry.handle_datagram(now, 0, stranger, &stray_binding_request(&ufrags[77]));
    assert_eq!(registry.stats().calls_asked, 1);
    assert_eq!(registry.stats().unmatched_datagrams, 2);
    assert!(
        registry.poll_output().is_some_and(|o| !matches!(
            o,
            RegistryOutput::Transmit { destination, .. } if destination == stranger
        )) || registry.poll_output().is_none()
    );
    assert_eq!(registry.len(), 150);
}
