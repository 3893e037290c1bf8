//! One call's bridge task: the only task a call adds besides its session, with one 20 ms
//! interval driving the caller's audio into the session.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use pipeline::session::{SessionControl, SessionHandle, SessionOutput, spawn_session};
use protocol::{
    ServerEvent,
    control::{ErrorCode, ErrorEvent, Goodbye, GoodbyeReason},
    voice::{AudioCodec, AudioFormat, EndReason, SessionEnded, SessionStarted},
};
use tokio::sync::{mpsc::error::TrySendError, watch};

use super::{
    Shared, VoiceError,
    events::{Control, VisemeBatcher, client_message},
    inbound::Inbound,
    outbound::Packetizer,
};
use crate::{CallHandle, CallSender, CloseReason, DrainPhase, SendError};

/// The playout clock of the caller's audio.
const TICK: Duration = Duration::from_millis(20);
/// Events held until the caller's `events` channel opens and `session_started` is sent;
/// older ones beyond this are dropped (a caller whose channel never opens must not grow
/// memory).
const MAX_HELD_EVENTS: usize = 64;
/// Longest `goodbye.reconnectAfterMs`: each caller of a draining node gets a random wait up
/// to this (or up to half the drain deadline, if shorter), so they do not all land on the
/// other nodes in the same instant.
const MAX_RECONNECT_SPREAD_MS: u64 = 5_000;

const OPUS_48K_MONO: AudioFormat = AudioFormat {
    codec: AudioCodec::Opus,
    sample_rate: 48_000,
    channels: 1,
};

/// Runs one call to its end; `false` when the session could not start.
pub(super) async fn run(shared: &Shared, call: CallHandle) -> bool {
    let id = call.id();
    let user = call.caller().user_id.clone();
    let (audio, messages, sender) = call.split();
    let started = match start(shared) {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(call = %id, %user, %error, "voice session did not start; hanging up");
            let _ = sender.hang_up().await;
            return false;
        }
    };
    tracing::info!(call = %id, %user, "voice session started");
    let bridge = Bridge {
        session_id: id.to_string(),
        sender,
        batcher: VisemeBatcher::new(u32::from(shared.config.viseme_batch_ms / 20)),
        announced: false,
        held: VecDeque::new(),
        turn_id: 0,
        frames_dropped: 0,
        controls_dropped: 0,
    };
    bridge.run(started, audio, messages, &user).await;
    true
}

struct Started {
    inbound: Inbound,
    packetizer: Packetizer,
    session: SessionHandle,
}

fn start(shared: &Shared) -> Result<Started, VoiceError> {
    let inbound = Inbound::new(&shared.config.jitter)?;
    let packetizer = Packetizer::new(&shared.config.opus)?;
    let vad = shared.vad.for_call()?;
    let session = spawn_session(
        shared.config.session.clone(),
        shared.providers.clone(),
        vad,
        shared.metrics.clone(),
    )?;
    Ok(Started {
        inbound,
        packetizer,
        session,
    })
}

struct Bridge {
    session_id: String,
    sender: CallSender,
    batcher: VisemeBatcher,
    /// `session_started` went out on the open `events` channel; events flow.
    announced: bool,
    held: VecDeque<ServerEvent>,
    /// The turn the session is answering (from its events), for viseme batches.
    turn_id: u64,
    frames_dropped: u64,
    /// Client controls not handed to the session because its control queue was full.
    controls_dropped: u64,
}

/// Why the loop stopped.
enum Ending {
    /// The transport closed the call.
    Closed(CloseReason),
    /// The caller asked to hang up.
    HungUp,
    /// The session task ended on its own (it failed).
    SessionGone,
    /// The node is shutting down and its drain deadline has passed.
    Shutdown,
}

impl Bridge {
    async fn run(
        mut self,
        started: Started,
        mut audio: tokio::sync::mpsc::Receiver<crate::InboundOpus>,
        mut messages: tokio::sync::mpsc::Receiver<String>,
        user: &str,
    ) {
        let Started {
            mut inbound,
            mut packetizer,
            session,
        } = started;
        let SessionHandle {
            input,
            control,
            mut output,
            done,
        } = session;
        let began = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let sender = self.sender.clone();
        let closed = sender.closed();
        tokio::pin!(closed);
        // A call answered just before a drain began still gets its `goodbye`.
        let mut notices = sender.drain_notices();
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
                reason = &mut closed => break Ending::Closed(reason),
                opened = sender.events_opened(), if !self.announced => match opened {
                    Ok(()) => self.announce().await,
                    Err(reason) => break Ending::Closed(reason),
                },
                Some(phase) = next_phase(&mut drain) => {
                    shutting_down = self.on_drain_phase(phase).await;
                }
                out = output.recv() => match out {
                    Some(out) => self.on_output(out, &mut packetizer).await,
                    None => break Ending::SessionGone,
                },
                _ = tick.tick() => {
                    if let Some(frame) = inbound.next_frame() {
                        match input.try_send(frame) {
                            Ok(()) => {}
                            // The session is behind: losing a frame beats delaying every one.
                            Err(TrySendError::Full(_)) => self.frames_dropped += 1,
                            Err(TrySendError::Closed(_)) => break Ending::SessionGone,
                        }
                    }
                }
                packet = audio.recv() => match packet {
                    Some(p) => inbound.push(p.seq, p.rtp_timestamp, &p.payload, p.arrival),
                    None => break Ending::Closed(sender.closed().await),
                },
                text = messages.recv() => match text {
                    Some(text) => match client_message(&text, &self.session_id) {
                        Control::HangUp => break Ending::HungUp,
                        // The session stops its answer as a barge-in would and reports
                        // `interrupted` with what the caller heard.
                        Control::Interrupt => match control.try_send(SessionControl::Interrupt) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => self.controls_dropped += 1,
                            Err(TrySendError::Closed(_)) => break Ending::SessionGone,
                        },
                        Control::Mute(muted) => inbound.set_muted(muted),
                        Control::Reply(event) => self.send_event(event).await,
                        Control::Ignore => {}
                    },
                    None => break Ending::Closed(sender.closed().await),
                },
            }
        };

        let reason = match &ending {
            Ending::HungUp
            | Ending::Closed(CloseReason::CallerHungUp | CloseReason::ServerHungUp) => {
                EndReason::HangUp
            }
            Ending::Shutdown | Ending::Closed(CloseReason::Shutdown) => EndReason::ServerShutdown,
            Ending::Closed(_) => EndReason::TransportClosed,
            Ending::SessionGone => EndReason::Error,
        };
        if matches!(ending, Ending::SessionGone) {
            self.send_event(ServerEvent::Error(ErrorEvent {
                code: ErrorCode::Internal,
                message: "the voice session stopped".into(),
                retryable: true,
                retry_after_ms: None,
                request_id: None,
                session_id: Some(self.session_id.clone()),
            }))
            .await;
        }
        if let Some(visemes) = self.batcher.flush() {
            self.send_event(visemes).await;
        }
        let duration_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.send_event(ServerEvent::SessionEnded(SessionEnded {
            session_id: self.session_id.clone(),
            reason,
            duration_ms,
        }))
        .await;
        // The session ends once its input is closed; dropping the output too frees it if it
        // is blocked handing us a frame.
        drop(input);
        drop(control);
        drop(output);
        let history = done.await.map(|h| h.len()).unwrap_or_else(|error| {
            tracing::warn!(call = %self.sender.id(), %error, "voice session task failed");
            0
        });
        if !matches!(ending, Ending::Closed(_)) {
            let _ = self.sender.hang_up().await;
        }
        let jitter = inbound.jitter_stats();
        let decoder = inbound.decoder_stats();
        tracing::info!(
            call = %self.sender.id(),
            %user,
            ?reason,
            duration_ms,
            messages = history,
            lost = jitter.lost,
            late = jitter.late,
            fec_recovered = decoder.fec_recovered,
            concealed = decoder.concealed,
            malformed = inbound.malformed(),
            frames_dropped = self.frames_dropped,
            controls_dropped = self.controls_dropped,
            "voice session ended"
        );
    }

    /// Sends `session_started` (the caller's `events` channel has just opened), then the
    /// events held meanwhile.
    async fn announce(&mut self) {
        let started = ServerEvent::SessionStarted(SessionStarted {
            session_id: self.session_id.clone(),
            conversation_id: self.session_id.clone(),
            input_audio: OPUS_48K_MONO,
            output_audio: OPUS_48K_MONO,
            visemes: true,
        });
        self.send_now(&started).await;
        self.announced = true;
        while let Some(event) = self.held.pop_front() {
            self.send_now(&event).await;
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

    async fn on_output(&mut self, out: SessionOutput, packetizer: &mut Packetizer) {
        match out {
            SessionOutput::Audio(frame) => {
                let payload = match packetizer.encode(&frame) {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::warn!(call = %self.sender.id(), %error, "reply frame not encoded");
                        return;
                    }
                };
                if let Err(SendError::EndpointGone) = self.sender.send_audio(payload, 960).await {
                    tracing::debug!(call = %self.sender.id(), "endpoint gone; frame dropped");
                }
                if let Some(visemes) = self.batcher.audio_sent() {
                    self.send_event(visemes).await;
                }
            }
            SessionOutput::Viseme(viseme) => {
                if let Some(visemes) = self.batcher.push(self.turn_id, viseme) {
                    self.send_event(visemes).await;
                }
            }
            SessionOutput::Event(event) => {
                if let ServerEvent::ResponseStarted(r) = &event {
                    self.turn_id = r.turn_id;
                }
                if let ServerEvent::AudioStarted(a) = &event {
                    self.turn_id = a.turn_id;
                }
                // The reply's audio is over (played out or cut): its last mouth shapes go
                // now, before the event, not with the next turn's.
                if matches!(
                    event,
                    ServerEvent::AudioEnded(_) | ServerEvent::Interrupted(_)
                ) && let Some(visemes) = self.batcher.flush()
                {
                    self.send_event(visemes).await;
                }
                self.send_event(event).await;
            }
            _ => {}
        }
    }

    /// Sends `event` now, or holds it until `session_started` is sent.
    async fn send_event(&mut self, event: ServerEvent) {
        if self.announced {
            self.send_now(&event).await;
            return;
        }
        if self.held.len() >= MAX_HELD_EVENTS {
            self.held.pop_front();
        }
        self.held.push_back(event);
    }

    async fn send_now(&self, event: &ServerEvent) {
        match event.to_json() {
            Ok(json) => {
                if let Err(error) = self.sender.send_message(json).await {
                    tracing::debug!(call = %self.sender.id(), %error, "event not sent");
                }
            }
            Err(error) => {
                tracing::warn!(call = %self.sender.id(), %error, event = event.type_name(), "event not encodable");
            }
        }
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

/// A random number in `0..bound` (`bound` > 0), good enough to spread reconnects.
fn random_below(bound: u64) -> u64 {
    let mut b = [0u8; 8];
    // Without OS randomness every caller waits the full spread: slower, never wrong.
    if getrandom::fill(&mut b).is_err() {
        return bound.saturating_sub(1);
    }
    u64::from_le_bytes(b) % bound.max(1)
}
