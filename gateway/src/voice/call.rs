//! One call's bridge task: the only task a call adds besides its session, with one 20 ms
//! interval driving the caller's audio into the session.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use pipeline::session::{SessionHandle, SessionOutput, spawn_session};
use protocol::{
    ServerEvent,
    control::{ErrorCode, ErrorEvent},
    voice::{AudioCodec, AudioFormat, EndReason, SessionEnded, SessionStarted},
};
use tokio::sync::mpsc::error::TrySendError;

use super::{
    Shared, VoiceError,
    events::{Control, VisemeBatcher, client_message},
    inbound::Inbound,
    outbound::Packetizer,
};
use crate::{CallHandle, CallSender, CloseReason, SendError};

/// The playout clock of the caller's audio.
const TICK: Duration = Duration::from_millis(20);
/// How long a `session_started` may go unconfirmed before it is sent again. The gateway drops
/// messages written before the caller's `events` channel has opened, and the call handle does
/// not say when it opens; the endpoint counts delivered messages, so the bridge resends until
/// the count moves.
const ANNOUNCE_RETRY_TICKS: u32 = 5;
/// Events held while `session_started` is not yet delivered; older ones beyond this are
/// dropped (a caller whose channel never opens must not grow memory).
const MAX_HELD_EVENTS: usize = 64;

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
        announced: Announce::Waiting,
        held: VecDeque::new(),
        turn_id: 0,
        suppressed_turn: None,
        frames_dropped: 0,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announce {
    /// The call has not connected yet.
    Waiting,
    /// `session_started` went out this many ticks ago, not yet counted as delivered.
    Sent(u32),
    /// The caller has it; events flow.
    Delivered,
}

struct Bridge {
    session_id: String,
    sender: CallSender,
    batcher: VisemeBatcher,
    announced: Announce,
    held: VecDeque<ServerEvent>,
    /// The turn the session is answering (from its events), for viseme batches.
    turn_id: u64,
    /// A turn the caller interrupted: its remaining audio and visemes are not sent.
    suppressed_turn: Option<u64>,
    frames_dropped: u64,
}

/// Why the loop stopped.
enum Ending {
    /// The transport closed the call.
    Closed(CloseReason),
    /// The caller asked to hang up.
    HungUp,
    /// The session task ended on its own (it failed).
    SessionGone,
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
            mut output,
            done,
        } = session;
        let began = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let sender = self.sender.clone();
        let closed = sender.closed();
        tokio::pin!(closed);

        let ending = loop {
            tokio::select! {
                biased;
                reason = &mut closed => break Ending::Closed(reason),
                out = output.recv() => match out {
                    Some(out) => self.on_output(out, &mut packetizer).await,
                    None => break Ending::SessionGone,
                },
                _ = tick.tick() => {
                    self.announce().await;
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
                        Control::Interrupt => {
                            self.suppressed_turn = Some(self.turn_id);
                            self.batcher.clear();
                        }
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
            Ending::Closed(CloseReason::Shutdown) => EndReason::ServerShutdown,
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
            "voice session ended"
        );
    }

    /// Sends `session_started` once the call is connected, again until it is delivered;
    /// then releases the events held meanwhile.
    async fn announce(&mut self) {
        match self.announced {
            Announce::Delivered => {}
            Announce::Waiting if self.sender.state() != crate::CallState::Connected => {}
            Announce::Sent(_) if self.sender.stats().messages_out > 0 => {
                self.announced = Announce::Delivered;
                while let Some(event) = self.held.pop_front() {
                    self.send_now(&event).await;
                }
            }
            Announce::Sent(ticks) if ticks < ANNOUNCE_RETRY_TICKS => {
                self.announced = Announce::Sent(ticks + 1);
            }
            Announce::Waiting | Announce::Sent(_) => {
                let started = ServerEvent::SessionStarted(SessionStarted {
                    session_id: self.session_id.clone(),
                    conversation_id: self.session_id.clone(),
                    input_audio: OPUS_48K_MONO,
                    output_audio: OPUS_48K_MONO,
                    visemes: true,
                });
                self.send_now(&started).await;
                self.announced = Announce::Sent(0);
            }
        }
    }

    async fn on_output(&mut self, out: SessionOutput, packetizer: &mut Packetizer) {
        match out {
            SessionOutput::Audio(frame) => {
                if self.suppressed_turn == Some(self.turn_id) {
                    return;
                }
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
                if self.suppressed_turn == Some(self.turn_id) {
                    return;
                }
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
                self.send_event(event).await;
            }
            _ => {}
        }
    }

    /// Sends `event` now, or holds it until `session_started` is delivered.
    async fn send_event(&mut self, event: ServerEvent) {
        if self.announced == Announce::Delivered {
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
