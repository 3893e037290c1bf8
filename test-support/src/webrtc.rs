//! A browser stand-in: a sans-IO str0m `Rtc` that offers what Chromium offers for a voice call
//! (Opus send+receive and a data channel named `events`).
//!
//! [`Peer`] returns errors and hands its events out: the load generator drives it and must
//! not panic. [`RecordingPeer`] wraps it for tests: it keeps what it saw in [`Seen`], counts
//! the gateway closing the call as an event, and fails the test on anything else.

use std::{
    net::SocketAddr,
    ops::{Deref, DerefMut},
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    channel::ChannelId,
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid},
    net::{DatagramRecv, Protocol, Receive, Transmit},
};

/// What the peer noticed while handling input.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// The `events` data channel opened.
    EventsOpen,
    /// A text message on the `events` channel.
    Message(String),
    /// One reply RTP packet: its sequence number and Opus payload.
    Audio {
        /// Extended RTP sequence number.
        seq: u64,
        /// The Opus payload.
        payload: Vec<u8>,
    },
    /// ICE lost the gateway.
    Disconnected,
    /// The gateway closed the call (DTLS close_notify or SCTP shutdown arrived).
    Closed,
}

/// A str0m error, or an answer that does not fit the offer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// str0m refused input or failed to produce output.
    #[error("webrtc: {0}")]
    Rtc(#[from] RtcError),
    /// The gateway's SDP did not parse or did not match.
    #[error("bad SDP answer: {0}")]
    Answer(String),
    /// The offer could not be built.
    #[error("offer: {0}")]
    Setup(String),
    /// Audio was written before Opus was negotiated.
    #[error("no Opus sender negotiated")]
    NoOpus,
    /// Text was sent before the `events` channel opened.
    #[error("the events channel is not open")]
    NoChannel,
}

impl PeerError {
    /// Whether this is str0m reporting that the gateway closed the call.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Rtc(e) if e.to_string().contains("connection closed"))
    }
}

/// One caller's WebRTC state.
pub struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    events: ChannelId,
    rtp_time: u64,
    /// Datagrams to send, in order.
    pub outbox: Vec<Transmit>,
    /// When str0m next wants `Input::Timeout`.
    pub next_timeout: Instant,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer at `addr` and its SDP offer, as a browser would POST it.
    pub fn offer(
        now: Instant,
        addr: SocketAddr,
    ) -> Result<(Self, String, SdpPendingOffer), PeerError> {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        let host = Candidate::host(addr, "udp")
            .map_err(|e| PeerError::Setup(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(host);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let events = change.add_channel("events".to_owned());
        let (offer, pending): (SdpOffer, SdpPendingOffer) = change
            .apply()
            .ok_or_else(|| PeerError::Setup("str0m produced no offer".into()))?;
        let peer = Self {
            rtc,
            addr,
            mid,
            events,
            rtp_time: 0,
            outbox: Vec::new(),
            next_timeout: now,
        };
        Ok((peer, offer.to_sdp_string(), pending))
    }

    /// The peer's own address (its host candidate).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The str0m state, for what this type does not wrap.
    pub fn rtc_mut(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    /// Applies the gateway's answer.
    pub fn accept_answer(
        &mut self,
        pending: SdpPendingOffer,
        answer: &str,
        events: &mut Vec<PeerEvent>,
    ) -> Result<(), PeerError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| PeerError::Answer(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.drain(events)
    }

    /// Runs str0m to its next timeout, queueing datagrams and collecting events.
    pub fn drain(&mut self, events: &mut Vec<PeerEvent>) -> Result<(), PeerError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => self.outbox.push(t),
                Output::Event(e) => {
                    if let Some(e) = self.translate(e) {
                        events.push(e);
                    }
                }
            }
        }
    }

    fn translate(&self, e: Event) -> Option<PeerEvent> {
        match e {
            Event::Connected => Some(PeerEvent::Connected),
            Event::ChannelOpen(id, _) if id == self.events => Some(PeerEvent::EventsOpen),
            Event::ChannelData(d) if !d.binary => Some(PeerEvent::Message(
                String::from_utf8_lossy(&d.data).into_owned(),
            )),
            Event::MediaData(d) => Some(PeerEvent::Audio {
                seq: **d.seq_range.start(),
                payload: d.data.to_vec(),
            }),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                Some(PeerEvent::Disconnected)
            }
            Event::Closed => Some(PeerEvent::Closed),
            _ => None,
        }
    }

    /// Feeds one datagram from the gateway. Datagrams str0m does not recognise are ignored.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
        events: &mut Vec<PeerEvent>,
    ) -> Result<(), PeerError> {
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.addr,
                contents,
            },
        );
        self.rtc.handle_input(input)?;
        self.drain(events)
    }

    /// Lets str0m's timers run.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<PeerEvent>) -> Result<(), PeerError> {
        self.rtc.handle_input(Input::Timeout(now))?;
        self.drain(events)
    }

    /// Sends one 20 ms Opus frame (RTP time advances 960 ticks per frame).
    pub fn write_opus(
        &mut self,
        now: Instant,
        payload: &[u8],
        events: &mut Vec<PeerEvent>,
    ) -> Result<(), PeerError> {
        let writer = self.rtc.writer(self.mid).ok_or(PeerError::NoOpus)?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .ok_or(PeerError::NoOpus)?
            .pt();
        let time = MediaTime::new(self.rtp_time, Frequency::FORTY_EIGHT_KHZ);
        self.rtp_time += 960;
        writer.write(pt, now, time, payload.to_vec())?;
        self.drain(events)
    }

    /// Sends a text message on the `events` channel; `false` when its buffer is full.
    pub fn send_text(
        &mut self,
        text: &str,
        events: &mut Vec<PeerEvent>,
    ) -> Result<bool, PeerError> {
        let mut channel = self.rtc.channel(self.events).ok_or(PeerError::NoChannel)?;
        let written = channel.write(false, text.as_bytes())?;
        self.drain(events)?;
        Ok(written)
    }

    /// Closes the connection from this side (what a closing tab does).
    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }
}

/// What a [`RecordingPeer`] has seen so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// ICE and DTLS came up.
    pub connected: bool,
    /// The `events` channel opened.
    pub events_open: bool,
    /// Reply RTP packets.
    pub audio_packets: usize,
    /// Their Opus payload bytes.
    pub audio_bytes: usize,
    /// Their Opus payloads, in arrival order.
    pub audio_payloads: Vec<Vec<u8>>,
    /// Text messages on `events`, in order.
    pub messages: Vec<String>,
    /// ICE lost the gateway.
    pub disconnected: bool,
    /// The gateway closed the call (DTLS close_notify or SCTP shutdown arrived).
    pub closed: bool,
}

/// A [`Peer`] for tests: it records what it sees in [`Seen`], treats str0m's "connection
/// closed" as the gateway closing the call, and fails the test on any other error (and on a
/// datagram str0m does not understand). Dereferences to the [`Peer`] (`outbox`, `addr`).
#[derive(Debug)]
pub struct RecordingPeer {
    peer: Peer,
    events: Vec<PeerEvent>,
    /// What it has seen so far.
    pub seen: Seen,
}

impl Deref for RecordingPeer {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl DerefMut for RecordingPeer {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }
}

impl RecordingPeer {
    /// A peer at `addr` and its SDP offer, as a browser would POST it.
    pub fn offer(now: Instant, addr: SocketAddr) -> (Self, String, SdpPendingOffer) {
        let (peer, offer, pending) =
            Peer::offer(now, addr).unwrap_or_else(|e| panic!("an offer: {e}"));
        let peer = Self {
            peer,
            events: Vec::new(),
            seen: Seen::default(),
        };
        (peer, offer, pending)
    }

    /// Applies the gateway's answer, which must parse and match the offer.
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, answer: &str) {
        let result = self.peer.accept_answer(pending, answer, &mut self.events);
        if let Err(e) = result {
            panic!("the gateway's answer is accepted: {e}");
        }
        self.record();
    }

    /// Drains str0m to its next timeout, keeping transmits in `outbox`; returns the timeout.
    pub fn drain(&mut self) -> Instant {
        let result = self.peer.drain(&mut self.events);
        self.record();
        match result {
            Ok(()) => self.peer.next_timeout,
            // The gateway closed the call: str0m says so once more as an error.
            Err(e) if e.is_closed() => {
                self.seen.closed = true;
                Instant::now() + Duration::from_secs(1)
            }
            Err(e) => panic!("peer output: {e}"),
        }
    }

    /// Feeds one datagram from the gateway (which must be one str0m understands).
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        assert!(
            DatagramRecv::try_from(data).is_ok(),
            "a datagram str0m understands"
        );
        let result = self.peer.receive(now, source, data, &mut self.events);
        self.after("peer input", result);
    }

    /// Lets str0m's timers run.
    pub fn tick(&mut self, now: Instant) {
        let result = self.peer.tick(now, &mut self.events);
        self.after("peer timeout", result);
    }

    /// Sends one 20 ms Opus frame.
    pub fn write_opus(&mut self, now: Instant, payload: &[u8]) {
        let result = self.peer.write_opus(now, payload, &mut self.events);
        self.after("write opus", result);
    }

    /// Sends a text message on the open `events` channel; its buffer must have room.
    pub fn send_text(&mut self, text: &str) {
        match self.peer.send_text(text, &mut self.events) {
            Ok(written) => assert!(written, "buffer full"),
            Err(e) => panic!("send on events: {e}"),
        }
        self.record();
    }

    /// After input: an error that says the gateway closed the call marks it closed (then
    /// drains what is left); any other fails the test.
    fn after(&mut self, what: &str, result: Result<(), PeerError>) {
        self.record();
        match result {
            Ok(()) => {}
            Err(e) if e.is_closed() => {
                self.seen.closed = true;
                self.drain();
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }

    fn record(&mut self) {
        for event in self.events.drain(..) {
            let seen = &mut self.seen;
            match event {
                PeerEvent::Connected => seen.connected = true,
                PeerEvent::EventsOpen => seen.events_open = true,
                PeerEvent::Message(text) => seen.messages.push(text),
                PeerEvent::Audio { payload, .. } => {
                    seen.audio_packets += 1;
                    seen.audio_bytes += payload.len();
                    seen.audio_payloads.push(payload);
                }
                PeerEvent::Disconnected => seen.disconnected = true,
                PeerEvent::Closed => seen.closed = true,
            }
        }
    }
}

/// Offers a call to the gateway at `base` as a browser does (WHIP: `POST /v1/calls`, the SDP
/// offer as `application/sdp`, bearer `token`); the answer, whatever its status.
pub async fn post_offer(
    base: &str,
    token: &str,
    offer: impl Into<reqwest::Body>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/calls"))
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("POST /v1/calls")
}
