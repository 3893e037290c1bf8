//! The bridge core every transport shares: one task per voice session, one 20 ms interval
//! driving the caller's audio into the session, and everything about the session's output
//! that does not depend on the transport (held events, viseme batching, drain phases, end
//! reasons). What differs per transport (how audio and controls arrive, how reply audio and
//! visemes leave, how a call is hung up) sits behind [`Transport`].

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use media::Frame48;
use pipeline::session::{SessionControl, SessionHandle, SessionOutput};
use protocol::{
    ServerEvent,
    control::{ErrorCode, ErrorEvent, Goodbye, GoodbyeReason},
    viseme::VisemeFrame,
    voice::{Configure, EndReason, SessionEnded, SessionStarted},
};
use tokio::sync::{mpsc::error::TrySendError, watch};

use super::{
    events::{Control, VisemeBatcher, error},
    meter::Cutoff,
    quota::Metering,
    refresh::{self, SessionAuth},
};
use crate::core::types::DrainPhase;

/// The playout clock of the caller's audio.
const TICK: Duration = Duration::from_millis(20);
/// Events held until the caller's event channel opens and `session_started` is sent;
/// older ones beyond this are dropped (a caller whose channel never opens must not grow
/// memory).
const MAX_HELD_EVENTS: usize = 64;
/// Longest `goodbye.reconnectAfterMs`: each caller of a draining node gets a random wait up
/// to this (or up to half the drain deadline, if shorter), so they do not all land on the
/// other nodes in the same instant.
const MAX_RECONNECT_SPREAD_MS: u64 = 5_000;

/// What the transport heard from the client.
#[derive(Debug)]
pub(crate) enum Heard {
    /// The client's event channel is open: `session_started` may go out.
    Opened,
    /// Caller audio arrived and was stored for the next ticks.
    Media,
    /// A control from the client (or an `error` to answer bad input with).
    Control(Control),
    /// The transport is gone.
    Closed(EndReason),
}

/// One transport's side of a voice session.
pub(crate) trait Transport {
    /// Whether visemes go out batched in `visemes` events (else one by one, as frames).
    const BATCHES_VISEMES: bool;

    /// The next thing the client did. Must be cancel-safe: the core polls it in a `select!`
    /// with the session's output and the 20 ms tick.
    async fn next(&mut self) -> Heard;

    /// The caller's frame for this 20 ms slot, if the stream has started.
    fn next_frame(&mut self) -> Option<Frame48>;

    /// While muted the session hears silence (its clocks keep running, no turn can start).
    fn set_muted(&mut self, muted: bool);

    /// Sends one 20 ms frame of reply audio now (the session paces them).
    async fn send_audio(&mut self, frame: &Frame48);

    /// Sends one viseme (transports that do not batch them).
    async fn send_viseme(&mut self, viseme: &VisemeFrame);

    /// The reply's audio is over: played out (`cut` false) or cut by an interruption.
    /// Called before the `audio_ended` / `interrupted` event goes out.
    async fn segment_end(&mut self, cut: bool);

    /// Sends one JSON event to the client.
    async fn send_event(&mut self, event: &ServerEvent);

    /// The session has ended (`session_ended` is sent); `closed` when the transport
    /// ended it. Hangs up what the transport still holds.
    async fn finish(&mut self, closed: bool);

    /// Logs the session's end with the transport's counters.
    fn report(&self, summary: &Summary);
}

/// What the core counted over a session, for the transport's closing log line.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) reason: EndReason,
    pub(crate) duration_ms: u64,
    /// Messages in the conversation when it ended.
    pub(crate) messages: usize,
    /// Caller frames not handed to the session because it was behind.
    pub(crate) frames_dropped: u64,
    /// Client controls not handed to the session because its control queue was full.
    pub(crate) controls_dropped: u64,
    /// Voice seconds charged to the caller's daily quota (`None`: not metered).
    pub(crate) voice_secs: Option<u64>,
}

/// Why the loop stopped.
enum Ending {
    /// The transport closed the session.
    Closed(EndReason),
    /// The caller asked to hang up.
    HungUp,
    /// The session task ended on its own (it failed).
    SessionGone,
    /// The node is shutting down and its drain deadline has passed.
    Shutdown,
    /// The caller's granted voice time is spent.
    Quota(Cutoff),
}

/// One session's bridge, generic over its transport.
pub(super) struct Bridge<T> {
    transport: T,
    started: SessionStarted,
    /// `Some` when the transport batches visemes into `visemes` events.
    batcher: Option<VisemeBatcher>,
    /// Whether the client wants visemes (`start_session` / `configure`).
    visemes: bool,
    /// `session_started` went out on the open event channel; events flow.
    announced: bool,
    held: VecDeque<ServerEvent>,
    /// The turn the session is answering (from its events), for viseme batches.
    turn_id: u64,
    frames_dropped: u64,
    controls_dropped: u64,
    /// The caller's voice quota; `None` when the session is not metered.
    metering: Option<Metering>,
    /// Checks the client's refreshed tokens (`auth`); `None`: `auth` is ignored.
    auth: Option<SessionAuth>,
}

impl<T: Transport> Bridge<T> {
    /// A bridge that will announce `started`; viseme batches wait at most `viseme_batch_ms`.
    pub(super) fn new(transport: T, started: SessionStarted, viseme_batch_ms: u16) -> Self {
        Self {
            transport,
            visemes: started.visemes,
            started,
            batcher: T::BATCHES_VISEMES
                .then(|| VisemeBatcher::new(u32::from(viseme_batch_ms / 20))),
            announced: false,
            held: VecDeque::new(),
            turn_id: 0,
            frames_dropped: 0,
            controls_dropped: 0,
            metering: None,
            auth: None,
        }
    }

    /// Spends the caller's voice quota while the session runs (see `quota.rs`).
    pub(super) fn metered(mut self, metering: Option<Metering>) -> Self {
        self.metering = metering;
        self
    }

    /// Accepts the client's refreshed tokens (`auth`) that `auth` lets through.
    pub(super) fn authorized(mut self, auth: Option<SessionAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// Runs the session to its end, following the node's drain phases.
    pub(super) async fn run(
        mut self,
        session: SessionHandle,
        mut notices: watch::Receiver<DrainPhase>,
    ) {
        let SessionHandle {
            input,
            control,
            mut output,
            done,
        } = session;
        let began = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        // A session started just before a drain began still gets its `goodbye`.
        let phase = *notices.borrow_and_update();
        // `None` once the gateway is gone (no more phases can come).
        let mut drain = Some(notices);
        let mut shutting_down = self.on_drain_phase(phase).await;

        let ending = loop {
            if shutting_down {
                break Ending::Shutdown;
            }
            tokio::select! {
                biased;
                Some(phase) = next_phase(&mut drain) => {
                    shutting_down = self.on_drain_phase(phase).await;
                }
                cutoff = next_cutoff(&mut self.metering) => break Ending::Quota(cutoff),
                out = output.recv() => match out {
                    Some(out) => self.on_output(out).await,
                    None => break Ending::SessionGone,
                },
                _ = tick.tick() => {
                    if let Some(frame) = self.transport.next_frame() {
                        match input.try_send(frame) {
                            Ok(()) => {}
                            // The session is behind: losing a frame beats delaying every one.
                            Err(TrySendError::Full(_)) => self.frames_dropped += 1,
                            Err(TrySendError::Closed(_)) => break Ending::SessionGone,
                        }
                    }
                }
                heard = self.transport.next() => match heard {
                    Heard::Opened => self.announce().await,
                    Heard::Media => {}
                    Heard::Closed(reason) => break Ending::Closed(reason),
                    Heard::Control(Control::HangUp) => break Ending::HungUp,
                    // The session stops its answer as a barge-in would and reports
                    // `interrupted` with what the caller heard.
                    Heard::Control(Control::Interrupt) => {
                        match control.try_send(SessionControl::Interrupt) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => self.controls_dropped += 1,
                            Err(TrySendError::Closed(_)) => break Ending::SessionGone,
                        }
                    }
                    Heard::Control(Control::Mute(muted)) => self.transport.set_muted(muted),
                    Heard::Control(Control::Configure(c)) => self.configure(c).await,
                    Heard::Control(Control::Auth(a)) => self.refresh(a.token).await,
                    Heard::Control(Control::Reply(event)) => self.send_event(event).await,
                    Heard::Control(Control::Ignore) => {}
                },
            }
        };

        let ended = Instant::now();
        let reason = match ending {
            Ending::HungUp => EndReason::HangUp,
            Ending::Shutdown => EndReason::ServerShutdown,
            Ending::Closed(reason) => reason,
            Ending::SessionGone | Ending::Quota(Cutoff::Unconfirmed | Cutoff::Refused) => {
                EndReason::Error
            }
            Ending::Quota(Cutoff::Exhausted) => EndReason::QuotaExceeded,
        };
        if let Ending::Quota(cutoff) = ending {
            self.quota_error(cutoff, ended).await;
        }
        if matches!(ending, Ending::SessionGone) {
            self.send_event(ServerEvent::Error(ErrorEvent {
                code: ErrorCode::Internal,
                message: "the voice session stopped".into(),
                retryable: true,
                retry_after_ms: None,
                request_id: None,
                session_id: Some(self.started.session_id.clone()),
            }))
            .await;
        }
        if let Some(visemes) = self.batcher.as_mut().and_then(VisemeBatcher::flush) {
            self.send_event(visemes).await;
        }
        let duration_ms =
            u64::try_from(ended.duration_since(began).as_millis()).unwrap_or(u64::MAX);
        // Settled before `session_ended` goes out, so a client that reads its usage after
        // the session sees it.
        let voice_secs = match &mut self.metering {
            Some(metering) => Some(metering.finish(ended).await),
            None => None,
        };
        self.send_event(ServerEvent::SessionEnded(SessionEnded {
            session_id: self.started.session_id.clone(),
            reason,
            duration_ms,
        }))
        .await;
        // The session ends once its input is closed; dropping the output too frees it if it
        // is blocked handing us a frame.
        drop(input);
        drop(control);
        drop(output);
        let messages = done.await.map(|h| h.len()).unwrap_or_else(|error| {
            tracing::warn!(session = %self.started.session_id, %error, "voice session task failed");
            0
        });
        self.transport
            .finish(matches!(ending, Ending::Closed(_)))
            .await;
        self.transport.report(&Summary {
            reason,
            duration_ms,
            voice_secs,
            messages,
            frames_dropped: self.frames_dropped,
            controls_dropped: self.controls_dropped,
        });
    }

    /// The `error` before a session ended by its quota: the day's voice time is spent, or
    /// the control plane could not be asked for more before the granted time ran out.
    async fn quota_error(&mut self, cutoff: Cutoff, now: Instant) {
        let Some(metering) = &self.metering else {
            return;
        };
        let granted = metering.granted_secs();
        let event = match cutoff {
            Cutoff::Exhausted => ErrorEvent {
                code: ErrorCode::QuotaExceeded,
                message: format!(
                    "the daily voice time is used up ({granted} s granted to this session)"
                ),
                retryable: false,
                retry_after_ms: Some(metering.resets_in_ms(now)),
                request_id: None,
                session_id: Some(self.started.session_id.clone()),
            },
            Cutoff::Refused => ErrorEvent {
                code: ErrorCode::Unauthorized,
                message: format!(
                    "the quota service no longer accepts this session's access token; the \
                     session ended when its granted {granted} s ran out"
                ),
                retryable: true,
                retry_after_ms: None,
                request_id: None,
                session_id: Some(self.started.session_id.clone()),
            },
            Cutoff::Unconfirmed => ErrorEvent {
                code: ErrorCode::Internal,
                message: format!(
                    "the quota service was unreachable; the session ended when its granted \
                     {granted} s ran out"
                ),
                retryable: true,
                retry_after_ms: None,
                request_id: None,
                session_id: Some(self.started.session_id.clone()),
            },
        };
        self.send_event(ServerEvent::Error(event)).await;
    }

    /// `auth`: a fresh token of the same caller renews (and settles) the voice quota from now
    /// on; any other gets an `error` and the session keeps its token. Nothing answers a
    /// success (the client learns of a refused token at once, of an accepted one by the
    /// session going on).
    async fn refresh(&mut self, token: String) {
        let Some(auth) = &self.auth else {
            return;
        };
        match auth.check(&token) {
            Ok(()) => {
                tracing::debug!(session = %self.started.session_id, "access token refreshed");
                if let Some(metering) = &mut self.metering {
                    metering.refresh_token(token, Instant::now());
                }
            }
            Err(e) => {
                let event = refresh::refused(&e, Some(&self.started.session_id));
                self.send_event(event).await;
            }
        }
    }

    /// Sends `session_started` (the client's event channel has just opened), then the
    /// events held meanwhile.
    async fn announce(&mut self) {
        let started = ServerEvent::SessionStarted(self.started.clone());
        self.transport.send_event(&started).await;
        self.announced = true;
        while let Some(event) = self.held.pop_front() {
            self.transport.send_event(&event).await;
        }
    }

    /// `configure`: visemes on or off at once; voice and language cannot change mid-session
    /// (the session's providers are fixed when it starts), which the client is told.
    async fn configure(&mut self, c: Configure) {
        if let Some(visemes) = c.visemes {
            self.visemes = visemes;
            if !visemes && let Some(batcher) = &mut self.batcher {
                batcher.flush();
            }
        }
        let unsupported = [
            ("voice", c.voice.is_some()),
            ("language", c.language.is_some()),
        ];
        for (field, set) in unsupported {
            if set {
                let message = format!("`configure.{field}` cannot change during a session");
                if let Control::Reply(event) =
                    error(ErrorCode::BadRequest, message, &self.started.session_id)
                {
                    self.send_event(event).await;
                }
            }
        }
    }

    /// Acts on the node's drain phase: says `goodbye` when the node starts draining;
    /// `true` once the session must end (the deadline has passed).
    async fn on_drain_phase(&mut self, phase: DrainPhase) -> bool {
        match phase {
            DrainPhase::Serving => false,
            DrainPhase::Draining { deadline } => {
                let left = deadline.saturating_duration_since(Instant::now());
                let deadline_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                let spread = (deadline_ms / 2).clamp(1, MAX_RECONNECT_SPREAD_MS);
                self.send_event(ServerEvent::Goodbye(Goodbye {
                    reason: GoodbyeReason::Draining,
                    deadline_ms,
                    reconnect_after_ms: Some(random_below(spread)),
                }))
                .await;
                false
            }
            DrainPhase::Closing => true,
        }
    }

    async fn on_output(&mut self, out: SessionOutput) {
        match out {
            SessionOutput::Audio(frame) => {
                self.transport.send_audio(&frame).await;
                if let Some(visemes) = self.batcher.as_mut().and_then(VisemeBatcher::audio_sent) {
                    self.send_event(visemes).await;
                }
            }
            SessionOutput::Viseme(viseme) => {
                if !self.visemes {
                    return;
                }
                match &mut self.batcher {
                    Some(batcher) => {
                        if let Some(visemes) = batcher.push(self.turn_id, viseme) {
                            self.send_event(visemes).await;
                        }
                    }
                    None => self.transport.send_viseme(&viseme).await,
                }
            }
            SessionOutput::Event(event) => {
                if let ServerEvent::ResponseStarted(r) = &event {
                    self.turn_id = r.turn_id;
                }
                if let ServerEvent::AudioStarted(a) = &event {
                    self.turn_id = a.turn_id;
                }
                // The reply's audio is over (played out or cut): its last mouth shapes and
                // the end of its audio go now, before the event, not with the next turn's.
                let cut = matches!(event, ServerEvent::Interrupted(_));
                if cut || matches!(event, ServerEvent::AudioEnded(_)) {
                    if let Some(visemes) = self.batcher.as_mut().and_then(VisemeBatcher::flush) {
                        self.send_event(visemes).await;
                    }
                    self.transport.segment_end(cut).await;
                }
                self.send_event(event).await;
            }
            _ => {}
        }
    }

    /// Sends `event` now, or holds it until `session_started` is sent.
    async fn send_event(&mut self, event: ServerEvent) {
        if self.announced {
            self.transport.send_event(&event).await;
            return;
        }
        if self.held.len() >= MAX_HELD_EVENTS {
            self.held.pop_front();
        }
        self.held.push_back(event);
    }
}

/// The node's drain phase when it next changes; `None` (and no more notices) once the
/// gateway is gone.
async fn next_phase(drain: &mut Option<watch::Receiver<DrainPhase>>) -> Option<DrainPhase> {
    let Some(notices) = drain else {
        return std::future::pending().await;
    };
    if notices.changed().await.is_ok() {
        return Some(*notices.borrow_and_update());
    }
    *drain = None;
    None
}

/// When the session's granted voice time runs out; never for an unmetered session.
async fn next_cutoff(metering: &mut Option<Metering>) -> Cutoff {
    match metering {
        Some(metering) => metering.cutoff().await,
        None => std::future::pending().await,
    }
}

/// A random number in `0..bound` (`bound` > 0), good enough to spread reconnects.
fn random_below(bound: u64) -> u64 {
    let mut b = [0u8; 8];
    // Without OS randomness every caller waits the full spread: slower, never wrong.
    if getrandom::fill(&mut b).is_err() {
        return bound.saturating_sub(1);
    }
    u64::from_le_bytes(b) % bound.max(1)
}
