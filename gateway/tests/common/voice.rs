//! A gateway whose calls run real voice sessions (pipeline's mock providers over HTTP, the
//! Silero VAD from `.deps`), served on 127.0.0.1:0, and a caller that dials it over loopback
//! UDP.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use gateway::{
    AuthError, Caller as Verified, CallerVerifier, Config, Gateway, VoiceConfig,
    VoiceSessionFactory,
};
use pipeline::mock::{MockConfig, MockServer};
use protocol::ServerEvent;
use reqwest::{StatusCode, header};
use test_support::providers;
use test_support::webrtc::post_offer;
use tokio::net::UdpSocket;

use super::{RecordingPeer, server::TestVerifier};

/// The test tokens of [`TestVerifier`], plus `load:<user>` tokens that may hold 10,000 calls
/// (for many calls at once).
pub struct LoadVerifier;

impl CallerVerifier for LoadVerifier {
    fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        match token.strip_prefix("load:") {
            Some(user) if !user.is_empty() => Ok(Verified {
                user_id: user.to_owned(),
                tier: "test".to_owned(),
                max_concurrent_calls: 10_000,
            }),
            _ => TestVerifier.verify(token),
        }
    }
}

pub struct VoiceNode {
    pub gateway: Gateway,
    pub factory: VoiceSessionFactory,
    pub url: String,
    /// Serves the providers while kept.
    pub mock: MockServer,
}

/// A voice gateway with `config` (its UDP socket on 127.0.0.1:0) whose recogniser hears
/// `transcript` in every turn.
pub async fn voice_node(config: Config, transcript: &str) -> VoiceNode {
    let mock = providers::mock_server(MockConfig {
        transcript: transcript.into(),
        ..MockConfig::default()
    })
    .await;
    let factory = providers::voice_factory(&mock, VoiceConfig::default());
    let gateway = Gateway::new(Config {
        udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..config
    })
    .with_verifier(Arc::new(LoadVerifier))
    .with_call_handler(factory.clone());
    gateway.start().await.expect("media endpoint");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    VoiceNode {
        gateway,
        factory,
        url,
        mock,
    }
}

/// A caller on its own UDP socket.
pub struct Caller {
    pub peer: RecordingPeer,
    pub socket: UdpSocket,
    /// `/v1/calls/{id}`.
    pub location: String,
}

/// POSTs an offer with `token`; the answered caller, or the refusal's status, headers and body.
pub async fn dial(
    url: &str,
    token: &str,
) -> Result<Caller, (StatusCode, header::HeaderMap, String)> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let (mut peer, offer, pending) = RecordingPeer::offer(Instant::now(), addr);
    let res = post_offer(url, token, offer).await;
    let status = res.status();
    let headers = res.headers().clone();
    if status != StatusCode::CREATED {
        return Err((status, headers, res.text().await.unwrap_or_default()));
    }
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    peer.accept_answer(pending, &res.text().await.unwrap());
    Ok(Caller {
        peer,
        socket,
        location,
    })
}

impl Caller {
    /// Moves the peer's packets until `done` says so; panics after `limit`.
    pub async fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&RecordingPeer) -> bool,
    ) {
        let end = Instant::now() + limit;
        while !done(&self.peer) {
            assert!(
                Instant::now() < end,
                "caller timed out: {:?}",
                self.peer.seen.messages
            );
            self.step(Duration::from_millis(10)).await;
        }
        self.flush().await;
    }

    /// Moves the peer's packets for `d`.
    pub async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.step(end.saturating_duration_since(Instant::now()))
                .await;
        }
        self.flush().await;
    }

    async fn flush(&mut self) {
        for t in std::mem::take(&mut self.peer.outbox) {
            // The gateway's socket may be gone at the end of a test: loss is fine.
            let _ = self.socket.send_to(&t.contents, t.destination).await;
        }
    }

    async fn step(&mut self, at_most: Duration) {
        self.flush().await;
        let mut buf = [0u8; 2048];
        let now = Instant::now();
        let wait = self
            .peer
            .drain()
            .min(now + at_most.min(Duration::from_millis(10)))
            .saturating_duration_since(now);
        match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => self.peer.receive(Instant::now(), from, &buf[..n]),
            Ok(Err(e)) => panic!("recv: {e}"),
            Err(_) => self.peer.tick(Instant::now()),
        }
    }

    /// Runs until connected with `events` open and `session_started` received.
    pub async fn until_session_started(&mut self) {
        self.run_until(Duration::from_secs(10), |p| {
            p.seen.connected
                && p.seen.events_open
                && events(p).iter().any(|e| e.type_name() == "session_started")
        })
        .await;
    }
}

/// Every event the peer received, decoded.
pub fn events(peer: &RecordingPeer) -> Vec<ServerEvent> {
    peer.seen
        .messages
        .iter()
        .map(|m| ServerEvent::from_json_str(m).unwrap_or_else(|e| panic!("{m}: {e}")))
        .collect()
}

pub fn count(events: &[ServerEvent], type_name: &str) -> usize {
    events.iter().filter(|e| e.type_name() == type_name).count()
}

/// The caller's microphone: a 48 kHz mono wav as 20 ms Opus packets, plus one packet of
/// silence to send after it.
pub fn microphone(wav: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let (rate, pcm) = pipeline::pcm::parse_wav(wav).expect("a mono 16-bit wav");
    assert_eq!(rate, 48_000);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    let mut out = [0u8; 1500];
    let packets = samples
        .chunks(960)
        .map(|chunk| {
            let mut frame = [0i16; 960];
            frame[..chunk.len()].copy_from_slice(chunk);
            let len = enc.encode(&frame, &mut out).expect("encode");
            out[..len].to_vec()
        })
        .collect();
    let len = enc.encode(&[0i16; 960], &mut out).expect("encode");
    (packets, out[..len].to_vec())
}
