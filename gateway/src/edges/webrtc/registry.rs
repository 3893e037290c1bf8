//! The sans-IO heart of WebRTC termination: every call's `Rtc`, the demultiplexing of
//! datagrams from the shared UDP sockets, and all timers. No sockets, no clock, no runtime:
//! callers pass `now` in and drain [`RegistryOutput`]s out, so tests drive it by hand.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig,
    channel::ChannelId,
    config::{CryptoProvider, DtlsCert},
    format::Codec,
    media::{Frequency, MediaKind, MediaTime, Mid, Pt},
    net::{DatagramRecv, DatagramSend, Protocol, Receive},
};

use crate::core::types::CallId;

use super::{
    offer::{self, OfferError},
    trickle::TrickleFragment,
    types::{CallEvent, CloseReason, InboundOpus},
};

/// The label of the one data channel the gateway speaks on.
pub const EVENTS_CHANNEL: &str = "events";

/// Opus RTP clock.
const OPUS_CLOCK: u32 = 48_000;

/// A silence longer than this between written frames starts a new talkspurt: the RTP
/// timestamp jumps by the real gap so the caller's jitter buffer does not play late.
const TALKSPURT_GAP: Duration = Duration::from_millis(100);

/// Limits and timings of the registry (from `[gateway]`).
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Calls held at once across all callers.
    pub max_calls: usize,
    /// Time allowed for ICE + DTLS.
    pub connect_timeout: Duration,
    /// Time a connected call may stay ICE-disconnected.
    pub disconnect_timeout: Duration,
    /// Largest data-channel text message accepted or sent, in bytes.
    pub max_event_bytes: usize,
}

/// Why a call could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The offer was refused.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// str0m could not answer the offer.
    #[error("cannot answer this offer: {0}")]
    Negotiation(String),
    /// The caller already holds as many calls as their tier allows.
    #[error("at most {limit} concurrent calls are allowed for this account")]
    TooManyCalls {
        /// The caller's limit.
        limit: u32,
    },
    /// The node is full.
    #[error("this gateway is at its call limit; try again later")]
    NodeFull,
    /// The node is draining for shutdown and takes no new calls.
    #[error("this gateway is shutting down and takes no new calls")]
    Draining,
}

/// Why an operation on an existing call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallOpError {
    /// No such call, or not this caller's.
    #[error("no such call")]
    NotFound,
    /// The trickle fragment asks for an ICE restart, which is not supported.
    #[error("ICE restarts are not supported: the fragment's ice-ufrag differs from the offer's")]
    IceRestart,
    /// Media or messages cannot be sent before the call connects (or the caller opens `events`).
    #[error("the call is not connected yet")]
    NotConnected,
    /// A message is larger than `gateway.max_event_bytes`.
    #[error("the message is {len} bytes; the limit is {limit}")]
    TooLarge {
        /// Message size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The data channel's send buffer is full: the caller is not reading.
    #[error("the caller is not keeping up with messages")]
    Congested,
    /// str0m refused the write; the text says why.
    #[error("the transport refused the write: {0}")]
    Refused(String),
}

/// A created call, for the signaling answer.
#[derive(Debug, Clone)]
pub struct CreatedCall {
    /// The new call's id.
    pub id: CallId,
    /// The SDP answer.
    pub answer: String,
}

/// What the registry wants done, drained with [`CallRegistry::poll_output`].
#[derive(Debug)]
pub enum RegistryOutput {
    /// Send `contents` from socket number `socket` to `destination`.
    Transmit {
        /// Index into the socket list the registry was built with.
        socket: usize,
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        contents: DatagramSend,
    },
    /// Something happened on a call.
    Event(CallId, CallEvent),
}

/// Counters of traffic the registry could not attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Datagrams that were not STUN, DTLS, RTP or RTCP.
    pub malformed_datagrams: u64,
    /// Datagrams no call accepted.
    pub unmatched_datagrams: u64,
    /// Calls asked whether they accept a STUN check from a new remote address. The check's
    /// USERNAME names the call's ICE ufrag, so this grows by at most one per such datagram,
    /// however many calls the node holds.
    pub calls_asked: u64,
}

/// Sizes of the registry's per-call tables: all zero once every call has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryTables {
    /// Live calls.
    pub calls: usize,
    /// Remote addresses routed to a call.
    pub sources: usize,
    /// Calls indexed by their local ICE ufrag.
    pub ufrags: usize,
    /// Armed call timers.
    pub deadlines: usize,
    /// Callers holding at least one call.
    pub users: usize,
    /// Voice sessions of other transports (WebSocket) holding a call slot.
    pub sessions: usize,
    /// Outputs not yet drained by the shell.
    pub queued_outputs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting { deadline: Instant },
    Connected,
    Disconnected { deadline: Instant },
}

struct Call {
    rtc: Rtc,
    user_id: String,
    remote_ufrag: String,
    /// The ufrag of our answer: first half of the USERNAME of every STUN check for this call.
    local_ufrag: String,
    phase: Phase,
    /// The negotiated audio section and Opus payload type (Chromium: 111, aiortc: 96).
    audio: (Mid, Pt),
    events: Option<ChannelId>,
    /// Key of this call's entry in the registry's deadline set.
    deadline: Option<Instant>,
    /// Remote addresses routed to this call, to forget them when it ends.
    sources: Vec<SocketAddr>,
    next_rtp_time: u64,
    last_write: Option<Instant>,
    closing: Option<CloseReason>,
}

/// Owns every call's WebRTC state on this node.
pub struct CallRegistry {
    settings: RegistrySettings,
    /// Advertised address of each socket (its host candidate), indexed like the shell's list.
    sockets: Vec<SocketAddr>,
    crypto: Arc<CryptoProvider>,
    cert: DtlsCert,
    calls: HashMap<CallId, Call>,
    by_source: HashMap<SocketAddr, CallId>,
    /// Calls by the local ICE ufrag of their answer: a STUN check from a new address finds
    /// its call in one lookup instead of asking every call.
    by_ufrag: HashMap<String, CallId>,
    deadlines: BTreeSet<(Instant, CallId)>,
    /// Calls and slot-holding sessions per caller: the one count `max_concurrent_calls`
    /// limits, whatever the transport.
    per_user: HashMap<String, u32>,
    /// Voice sessions of other transports holding a slot ([`CallRegistry::reserve_slot`]).
    sessions: usize,
    outputs: VecDeque<RegistryOutput>,
    /// Scratch list of calls whose timer fired, kept to avoid an allocation per tick.
    due: Vec<CallId>,
    stats: RegistryStats,
}

impl std::fmt::Debug for CallRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRegistry")
            .field("sockets", &self.sockets)
            .field("calls", &self.calls.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl CallRegistry {
    /// A registry whose calls are reachable at `advertised` (one host candidate per socket).
    pub fn new(settings: RegistrySettings, advertised: Vec<SocketAddr>) -> Self {
        let crypto = str0m::crypto::from_feature_flags();
        // One certificate for every call: generating a key pair per call costs CPU for no
        // security gain (the fingerprint is bound to each call by its signed-over SDP).
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .expect("the aws-lc-rs backend always generates certificates");
        Self {
            settings,
            sockets: advertised,
            crypto: Arc::new(crypto),
            cert,
            calls: HashMap::new(),
            by_source: HashMap::new(),
            by_ufrag: HashMap::new(),
            deadlines: BTreeSet::new(),
            per_user: HashMap::new(),
            sessions: 0,
            outputs: VecDeque::new(),
            due: Vec::new(),
            stats: RegistryStats::default(),
        }
    }

    /// Number of live calls.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Traffic counters.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// How many entries each per-call table holds (leak checks).
    pub fn tables(&self) -> RegistryTables {
        RegistryTables {
            calls: self.calls.len(),
            sources: self.by_source.len(),
            ufrags: self.by_ufrag.len(),
            deadlines: self.deadlines.len(),
            users: self.per_user.len(),
            sessions: self.sessions,
            queued_outputs: self.outputs.len(),
        }
    }

    /// Answers `offer_sdp` from `user_id`, who may hold at most `max_calls` calls.
    pub fn create_call(
        &mut self,
        now: Instant,
        user_id: &str,
        max_calls: u32,
        offer_sdp: &str,
    ) -> Result<CreatedCall, CreateError> {
        let checked = offer::check(offer_sdp)?;
        self.check_room(user_id, max_calls)?;

        let mut rtc = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .set_dtls_cert(self.cert.clone())
            // ICE lite: the server only answers connectivity checks and never sends STUN to
            // addresses an offer names, so an offer cannot aim traffic at a third party.
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        for addr in &self.sockets {
            let candidate = Candidate::host(*addr, "udp")
                .map_err(|e| CreateError::Negotiation(format!("local candidate {addr}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(checked.offer)
            .map_err(|e| CreateError::Negotiation(e.to_string()))?;
        // The first audio section str0m accepted with Opus is the call's voice. (str0m only
        // announces remote media once DTLS is up, so look it up rather than wait.)
        let audio = checked.audio_mids.iter().find_map(|m| {
            let mid = Mid::from(m.as_str());
            let accepted = rtc
                .media(mid)
                .is_some_and(|media| media.kind() == MediaKind::Audio);
            let pt = rtc
                .writer(mid)?
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt())?;
            accepted.then_some((mid, pt))
        });
        let Some(audio) = audio else {
            // str0m rejected every audio section (e.g. Opus with parameters it cannot use):
            // nothing would ever flow, so do not pretend the call exists.
            return Err(CreateError::Offer(OfferError::NoOpus));
        };

        let answer = answer.to_sdp_string();
        let Some(local_ufrag) = answer_ufrag(&answer) else {
            return Err(CreateError::Negotiation(
                "the answer carries no ICE ufrag".to_owned(),
            ));
        };
        let id = CallId::random();
        self.by_ufrag.insert(local_ufrag.clone(), id);
        self.calls.insert(
            id,
            Call {
                rtc,
                user_id: user_id.to_owned(),
                remote_ufrag: checked.remote_ufrag,
                local_ufrag,
                phase: Phase::Connecting {
                    deadline: now + self.settings.connect_timeout,
                },
                audio,
                events: None,
                deadline: None,
                sources: Vec::new(),
                next_rtp_time: u64::from(random_u32()),
                last_write: None,
                closing: None,
            },
        );
        self.drain(id, now);
        *self.per_user.entry(user_id.to_owned()).or_default() += 1;
        Ok(CreatedCall { id, answer })
    }

    /// Takes a call slot for a voice session on another transport (a WebSocket session):
    /// it counts against `user_id`'s `max_calls` and the node's `max_calls` exactly like a
    /// WebRTC call, until [`release_slot`](Self::release_slot).
    pub fn reserve_slot(&mut self, user_id: &str, max_calls: u32) -> Result<(), CreateError> {
        self.check_room(user_id, max_calls)?;
        *self.per_user.entry(user_id.to_owned()).or_default() += 1;
        self.sessions += 1;
        Ok(())
    }

    /// Gives back a slot taken with [`reserve_slot`](Self::reserve_slot).
    pub fn release_slot(&mut self, user_id: &str) {
        self.sessions = self.sessions.saturating_sub(1);
        self.release_user(user_id);
    }

    /// Calls plus slot-holding sessions on the node.
    pub fn held(&self) -> usize {
        self.calls.len() + self.sessions
    }

    fn check_room(&self, user_id: &str, max_calls: u32) -> Result<(), CreateError> {
        if self.held() >= self.settings.max_calls {
            return Err(CreateError::NodeFull);
        }
        let held = self.per_user.get(user_id).copied().unwrap_or(0);
        if held >= max_calls {
            return Err(CreateError::TooManyCalls { limit: max_calls });
        }
        Ok(())
    }

    fn release_user(&mut self, user_id: &str) {
        if let Some(n) = self.per_user.get_mut(user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(user_id);
            }
        }
    }

    /// Adds the caller's trickled candidates to call `id`, which must be `user_id`'s.
    pub fn add_candidates(
        &mut self,
        now: Instant,
        id: CallId,
        user_id: &str,
        frag: &TrickleFragment,
    ) -> Result<usize, CallOpError> {
        let call = self.owned_call(id, user_id)?;
        if frag.ufrag.as_ref().is_some_and(|u| *u != call.remote_ufrag) {
            return Err(CallOpError::IceRestart);
        }
        let mut added = 0;
        for line in &frag.candidates {
            // Candidates we cannot use (mDNS `.local` names, TCP) are skipped: the caller's
            // connectivity checks reach us anyway and show up as peer-reflexive.
            if let Ok(c) = Candidate::from_sdp_string(line) {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.rtc.add_remote_candidate(c);
                    added += 1;
                }
                self.drain(id, now);
            }
        }
        Ok(added)
    }

    /// Hangs up call `id`. With `user_id`, only that caller's call (signaling); without, any
    /// (the voice session that owns it).
    pub fn hang_up(
        &mut self,
        now: Instant,
        id: CallId,
        user_id: Option<&str>,
        reason: CloseReason,
    ) -> Result<(), CallOpError> {
        let call = match user_id {
            Some(user) => self.owned_call(id, user)?,
            None => self.calls.get_mut(&id).ok_or(CallOpError::NotFound)?,
        };
        if call.closing.is_none() {
            call.closing = Some(reason);
            // Queues RTCP BYE, SCTP shutdown and DTLS close_notify for the drain to send.
            let _ = call.rtc.close();
        }
        self.drain(id, now);
        Ok(())
    }

    /// Sends one Opus frame of `samples` 48 kHz samples (960 for 20 ms) on call `id`. The
    /// caller paces frames in real time.
    pub fn write_audio(
        &mut self,
        now: Instant,
        id: CallId,
        payload: &[u8],
        samples: u32,
    ) -> Result<(), CallOpError> {
        let call = self.calls.get_mut(&id).ok_or(CallOpError::NotFound)?;
        let (Phase::Connected, (mid, pt), None) = (call.phase, call.audio, &call.closing) else {
            return Err(CallOpError::NotConnected);
        };
        let mut talkspurt = call.last_write.is_none();
        if let Some(last) = call.last_write {
            let gap = now.saturating_duration_since(last);
            if gap > TALKSPURT_GAP {
                // Keep RTP time in step with the wall clock across the pause.
                let gap_samples = gap.as_micros() as u64 * u64::from(OPUS_CLOCK) / 1_000_000;
                call.next_rtp_time += gap_samples.saturating_sub(u64::from(samples));
                talkspurt = true;
            }
        }
        let time = MediaTime::new(call.next_rtp_time, Frequency::FORTY_EIGHT_KHZ);
        call.next_rtp_time += u64::from(samples);
        call.last_write = Some(now);
        let result = match call.rtc.writer(mid) {
            Some(w) => w
                .start_of_talkspurt(talkspurt)
                .write(pt, now, time, payload)
                .map_err(|e| CallOpError::Refused(e.to_string())),
            None => Err(CallOpError::NotConnected),
        };
        self.drain(id, now);
        result
    }

    /// Sends a text message on call `id`'s `events` data channel.
    pub fn send_text(&mut self, now: Instant, id: CallId, text: &str) -> Result<(), CallOpError> {
        let limit = self.settings.max_event_bytes;
        if text.len() > limit {
            return Err(CallOpError::TooLarge {
                len: text.len(),
                limit,
            });
        }
        let call = self.calls.get_mut(&id).ok_or(CallOpError::NotFound)?;
        let Some(channel) = call.events.filter(|_| call.closing.is_none()) else {
            return Err(CallOpError::NotConnected);
        };
        let result = match call.rtc.channel(channel) {
            Some(mut ch) => match ch.write(false, text.as_bytes()) {
                Ok(true) => Ok(()),
                Ok(false) => Err(CallOpError::Congested),
                Err(e) => Err(CallOpError::Refused(e.to_string())),
            },
            None => Err(CallOpError::NotConnected),
        };
        self.drain(id, now);
        result
    }

    /// Feeds a datagram that arrived on socket number `socket` from `source`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        socket: usize,
        source: SocketAddr,
        data: &[u8],
    ) {
        let Some(&destination) = self.sockets.get(socket) else {
            self.stats.unmatched_datagrams += 1;
            return;
        };
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.stats.malformed_datagrams += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        // Fast path: the call this address already talks to. Otherwise a new address must
        // start with a STUN check, whose USERNAME (`<our ufrag>:<theirs>`) names its call:
        // one lookup, and that call checks the credentials. Anything else from an unknown
        // address is dropped, so a spray of junk or stray STUN costs a hash lookup, never a
        // walk over every call.
        let id = match self.by_source.get(&source) {
            Some(id) if self.calls.get(id).is_some_and(|c| c.rtc.accepts(&input)) => *id,
            _ => {
                let named = stun_local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u))
                    .copied();
                let Some(id) = named.filter(|id| {
                    self.stats.calls_asked += 1;
                    self.calls.get(id).is_some_and(|c| c.rtc.accepts(&input))
                }) else {
                    self.stats.unmatched_datagrams += 1;
                    return;
                };
                if let Some(old) = self.by_source.insert(source, id)
                    && let Some(c) = self.calls.get_mut(&old)
                {
                    c.sources.retain(|s| *s != source);
                }
                if let Some(c) = self.calls.get_mut(&id) {
                    c.sources.push(source);
                }
                id
            }
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Err(e) = call.rtc.handle_input(input) {
            tracing::info!(call = %id, error = %e, "call transport failed");
            self.forget(id, CloseReason::Failed(e.to_string()));
            return;
        }
        self.drain(id, now);
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Advances every call whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Collect first, then advance: each due call is driven once per call of this method
        // even if str0m asks to be woken again at `now`.
        let mut due = std::mem::take(&mut self.due);
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            due.push(id);
        }
        for id in due.drain(..) {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            call.deadline = None;
            match call.phase {
                Phase::Connecting { deadline } if deadline <= now => {
                    self.forget(id, CloseReason::ConnectTimeout);
                    continue;
                }
                Phase::Disconnected { deadline } if deadline <= now => {
                    self.forget(id, CloseReason::Disconnected);
                    continue;
                }
                _ => {}
            }
            if let Err(e) = call.rtc.handle_input(Input::Timeout(now)) {
                self.forget(id, CloseReason::Failed(e.to_string()));
                continue;
            }
            self.drain(id, now);
        }
        self.due = due;
    }

    /// Hangs up every call (node shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let _ = self.hang_up(now, id, None, CloseReason::Shutdown);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<RegistryOutput> {
        self.outputs.pop_front()
    }

    fn owned_call(&mut self, id: CallId, user_id: &str) -> Result<&mut Call, CallOpError> {
        // Someone else's call answers exactly like a missing one: ids are not confirmed.
        self.calls
            .get_mut(&id)
            .filter(|c| c.user_id == user_id)
            .ok_or(CallOpError::NotFound)
    }

    /// Drains call `id`'s `Rtc` to its next timeout (str0m's single-mutation rule), turning
    /// what it says into registry outputs, and re-arms the call's timer.
    fn drain(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let next = loop {
            match call.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let socket = self.sockets.iter().position(|a| *a == t.source);
                    if let Some(socket) = socket {
                        self.outputs.push_back(RegistryOutput::Transmit {
                            socket,
                            destination: t.destination,
                            contents: t.contents,
                        });
                    }
                }
                Ok(Output::Event(e)) => {
                    if let Some(ev) = on_event(id, call, e, now, &self.settings) {
                        self.outputs.push_back(RegistryOutput::Event(id, ev));
                    }
                }
                Err(e) => {
                    tracing::info!(call = %id, error = %e, "call transport failed");
                    self.forget(id, CloseReason::Failed(e.to_string()));
                    return;
                }
            }
        };
        if !call.rtc.is_alive() {
            let reason = call.closing.take().unwrap_or(CloseReason::CallerHungUp);
            self.forget(id, reason);
            return;
        }
        let phase_deadline = match call.phase {
            Phase::Connecting { deadline } | Phase::Disconnected { deadline } => Some(deadline),
            Phase::Connected => None,
        };
        let due = phase_deadline.map_or(next, |d| d.min(next));
        if call.deadline != Some(due) {
            if let Some(old) = call.deadline.replace(due) {
                self.deadlines.remove(&(old, id));
            }
            self.deadlines.insert((due, id));
        }
    }

    /// Removes call `id` and tells the shell it closed.
    fn forget(&mut self, id: CallId, reason: CloseReason) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(at) = call.deadline {
            self.deadlines.remove(&(at, id));
        }
        for source in &call.sources {
            if self.by_source.get(source) == Some(&id) {
                self.by_source.remove(source);
            }
        }
        if self.by_ufrag.get(&call.local_ufrag) == Some(&id) {
            self.by_ufrag.remove(&call.local_ufrag);
        }
        self.release_user(&call.user_id);
        tracing::info!(call = %id, user = %call.user_id, %reason, "call closed");
        self.outputs
            .push_back(RegistryOutput::Event(id, CallEvent::Closed(reason)));
    }
}

/// Turns one str0m event into what the shell needs to know, updating the call.
fn on_event(
    id: CallId,
    call: &mut Call,
    event: Event,
    now: Instant,
    settings: &RegistrySettings,
) -> Option<CallEvent> {
    match event {
        Event::Connected => {
            call.phase = Phase::Connected;
            tracing::info!(call = %id, "call connected");
            Some(CallEvent::Connected)
        }
        Event::IceConnectionStateChange(state) => {
            match (state, call.phase) {
                (IceConnectionState::Disconnected, Phase::Connected) => {
                    call.phase = Phase::Disconnected {
                        deadline: now + settings.disconnect_timeout,
                    };
                }
                (
                    IceConnectionState::Connected | IceConnectionState::Completed,
                    Phase::Disconnected { .. },
                ) => call.phase = Phase::Connected,
                _ => {}
            }
            None
        }
        Event::MediaData(data) if data.mid == call.audio.0 => {
            Some(CallEvent::Audio(InboundOpus {
                // Truncation to the 16/32-bit wire fields is the point: str0m extends them.
                seq: **data.seq_range.start() as u16,
                rtp_timestamp: data.time.numer() as u32,
                arrival: data.network_time,
                payload: Bytes::from_owner(data.data),
            }))
        }
        Event::ChannelOpen(channel, label) if label == EVENTS_CHANNEL => {
            call.events = Some(channel);
            Some(CallEvent::EventsOpen)
        }
        Event::ChannelData(data) if Some(data.id) == call.events && !data.binary => {
            if data.data.len() > settings.max_event_bytes {
                tracing::debug!(call = %id, len = data.data.len(), "oversized message dropped");
                return None;
            }
            String::from_utf8(data.data).ok().map(CallEvent::Text)
        }
        Event::ChannelClose(channel) if Some(channel) == call.events => {
            call.events = None;
            Some(CallEvent::EventsClosed)
        }
        _ => None,
    }
}

/// A STUN message (RFC 5389): top two bits zero and the magic cookie at bytes 4..8.
fn looks_like_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 2 && data[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

/// The `a=ice-ufrag:` of an SDP (our answer: every section shares str0m's one ufrag).
fn answer_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
}

/// The receiver's half of a STUN message's USERNAME (`<receiver ufrag>:<sender ufrag>`, RFC
/// 8445 7.2.2): for a check sent to us, the ufrag of the call it is meant for. `None` for
/// anything that is not STUN with a well-formed USERNAME. Reads only; never panics.
pub(crate) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    /// STUN attribute USERNAME.
    const USERNAME: u16 = 0x0006;
    if !looks_like_stun(data) {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let end = data.len().min(20 + declared);
    let mut pos = 20;
    while pos + 4 <= end {
        let kind = u16::from_be_bytes([data[pos], data[pos + 1]]);
        let len = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
        let value = data.get(pos + 4..pos + 4 + len)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split_once(':').map(|(ours, _)| ours);
        }
        pos += 4 + len.div_ceil(4) * 4;
    }
    None
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN binding request carrying `username` (and a trailing attribute).
    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        attrs.extend_from_slice(&[0x80, 0x28, 0, 4, 1, 2, 3, 4]); // FINGERPRINT-shaped
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn a_stun_check_names_the_call_it_is_for() {
        assert_eq!(
            stun_local_ufrag(&binding_request(b"gW1x:br0wser")),
            Some("gW1x")
        );
        assert_eq!(stun_local_ufrag(&binding_request(b"no-colon")), None);
        let full = binding_request(b"abcd:efgh");
        for cut in 0..full.len() {
            // Cut anywhere: an answer or `None`, never a panic.
            let _ = stun_local_ufrag(&full[..cut]);
        }
        let mut lying = full;
        lying[22..24].copy_from_slice(&0xFFF0u16.to_be_bytes()); // USERNAME length past the end
        assert_eq!(stun_local_ufrag(&lying), None);
        assert_eq!(stun_local_ufrag(b"\x80\x6f junk that is RTP"), None);
    }

    #[test]
    fn the_answer_s_ufrag_is_read_from_its_sdp() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:Ab12\r\na=ice-pwd:x\r\n";
        assert_eq!(answer_ufrag(sdp).as_deref(), Some("Ab12"));
        assert_eq!(answer_ufrag("v=0\r\n"), None);
    }

    #[test]
    fn sessions_of_other_transports_share_the_callers_and_the_nodes_limits() {
        let settings = RegistrySettings {
            max_calls: 3,
            connect_timeout: Duration::from_secs(10),
            disconnect_timeout: Duration::from_secs(10),
            max_event_bytes: 1024,
        };
        let mut registry = CallRegistry::new(settings, vec!["127.0.0.1:9".parse().unwrap()]);
        registry.reserve_slot("alice", 2).unwrap();
        registry.reserve_slot("alice", 2).unwrap();
        assert_eq!(
            registry.reserve_slot("alice", 2),
            Err(CreateError::TooManyCalls { limit: 2 })
        );
        registry.reserve_slot("bob", 5).unwrap();
        assert_eq!(
            registry.reserve_slot("carol", 5),
            Err(CreateError::NodeFull)
        );
        assert_eq!((registry.held(), registry.tables().sessions), (3, 3));
        registry.release_slot("alice");
        registry.release_slot("alice");
        registry.release_slot("bob");
        assert_eq!(registry.tables(), RegistryTables::default());
    }
}
