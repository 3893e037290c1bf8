//! One caller: WHIP signaling, then a small tokio shell around the sans-IO [`Peer`] that plays
//! the script in real time and records every reply packet's arrival.
//!
//! Each call owns its UDP socket and task rather than sharing one socket loop: a browser has
//! its own socket per call too (so the gateway sees N distinct 5-tuples, as in production), a
//! slow or failed call cannot delay another's 20 ms cadence, and the per-call driver stays
//! straight-line code. The cost — one task and one socket per call — is small next to the
//! Opus decode every call does anyway.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use media::{MediaTime, OpusDecoder};
use reqwest::{StatusCode, header};
use test_support::webrtc::{Peer, PeerError, PeerEvent};
use tokio::net::UdpSocket;

use crate::{
    analysis::{Rx, TurnResult, analyse},
    script::Script,
};

/// Decoded reply frames louder than this (RMS, full scale 1.0; about -41 dBFS) count as
/// audible: Opus's own comfort noise and the silence before speech stay below it.
pub const AUDIBLE_RMS: f32 = 300.0 / 32768.0;

/// How a caller reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// A WHIP-signalled WebRTC call (Opus over RTP, events on the data channel).
    #[default]
    Webrtc,
    /// `start_session` on the chat WebSocket, audio as binary Opus frames both ways.
    Ws,
}

/// What one call needs to know.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// Gateway base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// WebRTC or WebSocket.
    pub transport: Transport,
    /// Bearer token.
    pub token: String,
    /// What to say.
    pub script: Arc<Script>,
    /// Silence sent after the recording while replies finish.
    pub tail: Duration,
    /// Time from POST to connected + `events` open.
    pub connect_timeout: Duration,
    /// The whole run stops here, finished or not.
    pub deadline: Instant,
}

/// What one call measured.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    /// `None` when the call went through; else why not (short, for grouping).
    pub failure: Option<String>,
    /// POST -> ICE/DTLS connected and `events` open.
    pub setup: Option<Duration>,
    /// Connected time (first frame due -> hang-up).
    pub connected_for: Duration,
    /// Per turn of the script (empty when the call failed before speaking).
    pub turns: Vec<TurnResult>,
    /// Opus frames sent.
    pub frames_out: u64,
    /// Reply RTP packets received.
    pub packets_in: u64,
    /// Reply packets missing from the received sequence-number range.
    pub lost_in: u64,
    /// Reply packets that did not decode.
    pub corrupt_in: u64,
    /// Largest delay of a microphone frame behind its 20 ms schedule (the generator's own
    /// lag: large values mean this client, not the gateway, fell behind).
    pub max_send_lag: Duration,
    /// `events` messages received, by `type`.
    pub events: BTreeMap<String, u64>,
}

/// Counts connected calls, for the CPU sampler; decrements when dropped.
pub(crate) struct ConnectedGuard(pub(crate) Arc<AtomicUsize>);

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

struct Live {
    peer: Peer,
    socket: UdpSocket,
    events: Vec<PeerEvent>,
    buf: Vec<u8>,
    decoder: OpusDecoder,
    /// Time zero of the call's timeline (the first microphone frame's due time).
    t0: Instant,
    rx: Vec<Rx>,
    seq: Option<(u64, u64)>,
    connected: bool,
    events_open: bool,
    disconnected: bool,
    record: CallRecord,
}

#[derive(Debug, thiserror::Error)]
enum Fail {
    #[error("{0}")]
    Peer(#[from] PeerError),
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    #[error("hard timeout")]
    Deadline,
}

impl Live {
    /// Moves packets until `until` (str0m paces its sends, so time must pass for it).
    async fn pump(&mut self, until: Instant, deadline: Instant) -> Result<(), Fail> {
        loop {
            for t in std::mem::take(&mut self.peer.outbox) {
                // A full socket buffer drops the datagram, as a network would.
                let _ = self.socket.send_to(&t.contents, t.destination).await;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Fail::Deadline);
            }
            if now >= until {
                return Ok(());
            }
            let wake = self.peer.next_timeout.min(until);
            tokio::select! {
                r = self.socket.recv_from(&mut self.buf) => {
                    let (n, from): (usize, SocketAddr) = r?;
                    let now = Instant::now();
                    self.peer.receive(now, from, &self.buf[..n], &mut self.events)?;
                    self.absorb(now);
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.peer.tick(now, &mut self.events)?;
                    self.absorb(now);
                }
            }
        }
    }

    fn absorb(&mut self, now: Instant) {
        for e in std::mem::take(&mut self.events) {
            match e {
                PeerEvent::Connected => self.connected = true,
                PeerEvent::EventsOpen => self.events_open = true,
                PeerEvent::Disconnected => self.disconnected = true,
                // Not a measurement: a call ends on its script or on an error.
                PeerEvent::Closed => {}
                PeerEvent::Message(text) => {
                    let ty = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("type")?.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "<unparsed>".to_owned());
                    *self.record.events.entry(ty).or_default() += 1;
                }
                PeerEvent::Audio { seq, payload } => {
                    self.record.packets_in += 1;
                    self.seq = Some(match self.seq {
                        None => (seq, seq),
                        Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
                    });
                    let audible = match self.decoder.decode(&payload, MediaTime::ZERO) {
                        Ok(frame) => frame.rms() > AUDIBLE_RMS,
                        Err(_) => {
                            self.record.corrupt_in += 1;
                            false
                        }
                    };
                    self.rx.push(Rx {
                        at: now.saturating_duration_since(self.t0),
                        audible,
                    });
                }
            }
        }
    }
}

/// Places one call, plays the script, hangs up, and reports. Never panics; every failure
/// ends up in [`CallRecord::failure`].
pub async fn place(
    spec: &CallSpec,
    http: &reqwest::Client,
    connected: &Arc<AtomicUsize>,
) -> CallRecord {
    if spec.transport == Transport::Ws {
        return crate::ws_call::place(spec, connected).await;
    }
    let mut location = None;
    let result = run(spec, http, connected, &mut location).await;
    let mut record = match result {
        Ok(record) => record,
        Err((record, reason)) => CallRecord {
            failure: Some(reason),
            ..record
        },
    };
    // Hang up even after a failure, so the gateway frees the call at once.
    if let Some(url) = location {
        match http.delete(&url).bearer_auth(&spec.token).send().await {
            Ok(res) if res.status().is_success() => {}
            Ok(res) if record.failure.is_none() => {
                record.failure = Some(format!("hang-up answered {}", res.status().as_u16()));
            }
            Err(e) if record.failure.is_none() => {
                record.failure = Some(format!("hang-up failed: {}", without_url(&e)));
            }
            _ => {}
        }
    }
    record
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "URL");
    }
    s
}

async fn run(
    spec: &CallSpec,
    http: &reqwest::Client,
    connected: &Arc<AtomicUsize>,
    location: &mut Option<String>,
) -> Result<CallRecord, (CallRecord, String)> {
    let fail = |r: &str| (CallRecord::default(), r.to_owned());
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(&format!("udp bind: {e}")))?;
    let addr = socket
        .local_addr()
        .map_err(|e| fail(&format!("udp: {e}")))?;
    let posted = Instant::now();
    let (peer, offer, pending) = Peer::offer(posted, addr).map_err(|e| fail(&e.to_string()))?;

    let res = http
        .post(format!("{}/v1/calls", spec.base_url.trim_end_matches('/')))
        .bearer_auth(&spec.token)
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|e| fail(&format!("POST failed: {}", without_url(&e))))?;
    let status = res.status();
    if status != StatusCode::CREATED {
        let body = res.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/error/code")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(fail(&format!("POST answered {} {code}", status.as_u16())));
    }
    if let Some(loc) = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        *location = Some(if loc.starts_with("http") {
            loc.to_owned()
        } else {
            format!("{}{loc}", spec.base_url.trim_end_matches('/'))
        });
    } else {
        return Err(fail("201 without Location"));
    }
    let answer = res
        .text()
        .await
        .map_err(|e| fail(&format!("answer body: {e}")))?;

    let mut live = Live {
        peer,
        socket,
        events: Vec::new(),
        buf: vec![0u8; 2048],
        decoder: OpusDecoder::new().map_err(|e| fail(&e.to_string()))?,
        t0: posted,
        rx: Vec::new(),
        seq: None,
        connected: false,
        events_open: false,
        disconnected: false,
        record: CallRecord::default(),
    };
    let out = drive(spec, &mut live, pending, &answer, posted, connected).await;
    let mut record = std::mem::take(&mut live.record);
    if let Some((lo, hi)) = live.seq {
        record.lost_in = (hi - lo + 1).saturating_sub(record.packets_in);
    }
    record.turns = analyse(&spec.script.turns, &live.rx);
    match out {
        Ok(()) => Ok(record),
        Err(reason) => Err((record, reason)),
    }
}

async fn drive(
    spec: &CallSpec,
    live: &mut Live,
    pending: str0m::change::SdpPendingOffer,
    answer: &str,
    posted: Instant,
    connected: &Arc<AtomicUsize>,
) -> Result<(), String> {
    let deadline = spec.deadline;
    live.peer
        .accept_answer(pending, answer, &mut live.events)
        .map_err(|e| e.to_string())?;
    live.absorb(Instant::now());

    // ICE + DTLS + SCTP.
    let give_up = (posted + spec.connect_timeout).min(deadline);
    while !(live.connected && live.events_open) {
        if Instant::now() >= give_up {
            return Err(if live.connected {
                "events channel did not open".to_owned()
            } else {
                "connect timeout".to_owned()
            });
        }
        live.pump(Instant::now() + Duration::from_millis(10), give_up)
            .await
            .map_err(|e| match e {
                Fail::Deadline if give_up < deadline => "connect timeout".to_owned(),
                e => e.to_string(),
            })?;
    }
    live.record.setup = Some(posted.elapsed());
    connected.fetch_add(1, Relaxed);
    let _guard = ConnectedGuard(connected.clone());

    // The microphone: one frame every 20 ms against the wall clock (not against loop
    // overhead), the recording and then the tail of silence.
    let script = &spec.script;
    let frames = script.speech.len() + (spec.tail.as_millis() / 20) as usize;
    let t0 = Instant::now();
    live.t0 = t0;
    for k in 0..frames {
        let due = t0 + Duration::from_millis(20 * k as u64);
        live.pump(due, deadline).await.map_err(|e| e.to_string())?;
        let now = Instant::now();
        live.record.max_send_lag = live
            .record
            .max_send_lag
            .max(now.saturating_duration_since(due));
        let frame = script.speech.get(k).unwrap_or(&script.silence);
        live.peer
            .write_opus(now, frame, &mut live.events)
            .map_err(|e| e.to_string())?;
        live.absorb(now);
        live.record.frames_out += 1;
        if live.disconnected {
            return Err("ICE disconnected mid-call".to_owned());
        }
        if live.record.events.contains_key("session_ended") {
            return Err("session ended by the gateway mid-call".to_owned());
        }
    }
    let end = t0 + Duration::from_millis(20 * frames as u64);
    live.pump(end, deadline).await.map_err(|e| e.to_string())?;
    live.record.connected_for = t0.elapsed();
    // The caller hangs up with DELETE (in `place`), as a WHIP client does.
    Ok(())
}
