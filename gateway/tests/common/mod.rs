//! A browser stand-in for tests: a str0m `Rtc` that offers what Chromium offers for a voice
//! call (Opus audio send+receive and a data channel named `events`), plus real Opus audio.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod server;
pub mod session;
pub mod test_control_plane;
pub mod voice;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Event, Input, Output, Rtc,
    change::{SdpAnswer, SdpPendingOffer},
    channel::ChannelId,
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid},
    net::{Protocol, Receive, Transmit},
};

/// What the peer has seen so far.
#[derive(Debug, Default)]
pub struct Seen {
    pub connected: bool,
    pub events_open: bool,
    pub audio_packets: usize,
    pub audio_bytes: usize,
    pub audio_payloads: Vec<Vec<u8>>,
    pub messages: Vec<String>,
    pub disconnected: bool,
    /// The gateway closed the call (DTLS close_notify or SCTP shutdown arrived).
    pub closed: bool,
}

pub struct Peer {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub mid: Mid,
    pub events: ChannelId,
    pub seen: Seen,
    pub outbox: Vec<Transmit>,
    rtp_time: u64,
}

impl Peer {
    /// A peer at `addr` and its SDP offer, as a browser would POST it.
    pub fn offer(now: Instant, addr: SocketAddr) -> (Self, String, SdpPendingOffer) {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let events = change.add_channel("events".to_owned());
        let (offer, pending) = change.apply().expect("an offer");
        let peer = Self {
            rtc,
            addr,
            mid,
            events,
            seen: Seen::default(),
            outbox: Vec::new(),
            rtp_time: 0,
        };
        (peer, offer.to_sdp_string(), pending)
    }

    pub fn accept_answer(&mut self, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("the gateway's answer parses");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the answer matches the offer");
        self.drain();
    }

    /// Drains str0m to its next timeout, keeping transmits in `outbox`.
    pub fn drain(&mut self) -> Instant {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                // The gateway closed the call: str0m says so once more as an error.
                Err(e) if self.closed_by(&e) => return Instant::now() + Duration::from_secs(1),
                Err(e) => panic!("peer output: {e}"),
            };
            match output {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => self.outbox.push(t),
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.seen.connected = true,
            Event::ChannelOpen(id, _) if id == self.events => self.seen.events_open = true,
            Event::ChannelData(d) if !d.binary => self
                .seen
                .messages
                .push(String::from_utf8(d.data).expect("UTF-8 message")),
            Event::MediaData(d) => {
                self.seen.audio_packets += 1;
                self.seen.audio_bytes += d.data.len();
                self.seen.audio_payloads.push(d.data.to_vec());
            }
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                self.seen.disconnected = true;
            }
            Event::Closed => self.seen.closed = true,
            _ => {}
        }
    }

    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.addr,
                contents: data.try_into().expect("a datagram str0m understands"),
            },
        );
        if let Err(e) = self.rtc.handle_input(input)
            && !self.closed_by(&e)
        {
            panic!("peer input: {e}");
        }
        self.drain();
    }

    /// Whether `e` is str0m reporting that the gateway closed the call (it then counts as
    /// closed).
    fn closed_by(&mut self, e: &str0m::RtcError) -> bool {
        let closed = e.to_string().contains("connection closed");
        self.seen.closed |= closed;
        closed
    }

    pub fn tick(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now))
            && !self.closed_by(&e)
        {
            panic!("peer timeout: {e}");
        }
        self.drain();
    }

    /// Sends one 20 ms Opus frame.
    pub fn write_opus(&mut self, now: Instant, payload: &[u8]) {
        let writer = self.rtc.writer(self.mid).expect("audio writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .expect("opus negotiated")
            .pt();
        let time = MediaTime::new(self.rtp_time, Frequency::FORTY_EIGHT_KHZ);
        self.rtp_time += 960;
        writer.write(pt, now, time, payload).expect("write opus");
        self.drain();
    }

    pub fn send_text(&mut self, text: &str) {
        let mut ch = self.rtc.channel(self.events).expect("events channel open");
        assert!(
            ch.write(false, text.as_bytes()).expect("write"),
            "buffer full"
        );
        self.drain();
    }
}

/// `n` 20 ms Opus frames of a 440 Hz tone (48 kHz mono), as a microphone would send.
pub fn tone_frames(n: usize) -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    let mut pcm = [0i16; 960];
    let mut out = vec![0u8; 1500];
    let mut t = 0usize;
    (0..n)
        .map(|_| {
            for s in &mut pcm {
                let phase = t as f32 * 440.0 * std::f32::consts::TAU / 48_000.0;
                *s = (phase.sin() * 8000.0) as i16;
                t += 1;
            }
            let len = enc.encode(&pcm, &mut out).expect("encode");
            out[..len].to_vec()
        })
        .collect()
}

/// Decodes Opus packets and returns the RMS level of the audio (0..32767).
pub fn decoded_rms(packets: &[Vec<u8>]) -> f64 {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("opus decoder");
    let mut pcm = vec![0i16; 5760];
    let (mut sum, mut n) = (0f64, 0usize);
    for p in packets {
        let len = dec.decode(p, &mut pcm, false).expect("decodable opus");
        for s in &pcm[..len] {
            sum += f64::from(*s) * f64::from(*s);
        }
        n += len;
    }
    if n == 0 { 0.0 } else { (sum / n as f64).sqrt() }
}

/// A fixed step for hand-driven simulations.
pub const STEP: Duration = Duration::from_millis(5);

/// CPU time this process has used so far (all threads), from /proc: nanosecond resolution.
pub fn process_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}
