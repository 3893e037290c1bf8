//! A browser stand-in: a sans-IO str0m `Rtc` that offers what Chromium offers for a voice call
//! (Opus send+receive and a data channel named `events`). Adapted from the gateway's test
//! peer (`gateway/tests/common/mod.rs`), with errors instead of panics and events handed out
//! instead of kept.

use std::{net::SocketAddr, time::Instant};

use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    channel::ChannelId,
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid},
    net::{Protocol, Receive, Transmit},
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

    /// Closes the connection from this side (what a closing tab does).
    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }
}
