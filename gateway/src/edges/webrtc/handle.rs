//! What a voice session holds for one call: inbound Opus and messages, a way to send Opus
//! frames and messages back, and the call's state (connected, closed and why).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{
    command::Command,
    types::{CallState, CloseReason, InboundOpus},
};
use crate::core::{
    auth::Caller,
    types::{CallId, DrainPhase},
    voice::{Admission, VoiceSessionFactory},
};

/// Receives every new call once it has been answered (before it connects). Install one with
/// the node's `with_call_handler`; without one, calls still
/// connect but nobody listens or speaks on them.
pub trait CallHandler: Send + Sync + 'static {
    /// Takes ownership of a new call. Must not block: spawn the session.
    fn on_call(&self, call: CallHandle);

    /// The voice sessions behind this handler, if it runs them: WebSocket connections start
    /// theirs (`start_session`) from the same factory. `None` by default (no WebSocket voice).
    fn voice_sessions(&self) -> Option<&VoiceSessionFactory> {
        None
    }
}

impl<F: Fn(CallHandle) + Send + Sync + 'static> CallHandler for F {
    fn on_call(&self, call: CallHandle) {
        self(call);
    }
}

/// Why sending on a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The call is over.
    #[error("the call is closed: {0}")]
    Closed(CloseReason),
    /// The gateway's media endpoint has stopped.
    #[error("the gateway's media endpoint has stopped")]
    EndpointGone,
}

/// Per-call traffic counters, updated by the media endpoint.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    pub(crate) audio_packets_in: AtomicU64,
    pub(crate) audio_bytes_in: AtomicU64,
    pub(crate) audio_dropped_in: AtomicU64,
    pub(crate) audio_packets_out: AtomicU64,
    pub(crate) audio_refused_out: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_dropped_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
}

/// A snapshot of one call's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Opus packets received from the caller.
    pub audio_packets_in: u64,
    /// Opus payload bytes received from the caller.
    pub audio_bytes_in: u64,
    /// Inbound packets dropped because the session's queue was full.
    pub audio_dropped_in: u64,
    /// Opus frames sent to the caller.
    pub audio_packets_out: u64,
    /// Frames not sent (call not connected yet, or the transport refused them).
    pub audio_refused_out: u64,
    /// Text messages received on `events`.
    pub messages_in: u64,
    /// Inbound messages dropped because the session's queue was full.
    pub messages_dropped_in: u64,
    /// Text messages sent on `events`.
    pub messages_out: u64,
}

impl CallCounters {
    pub(crate) fn snapshot(&self) -> CallStats {
        CallStats {
            audio_packets_in: self.audio_packets_in.load(Relaxed),
            audio_bytes_in: self.audio_bytes_in.load(Relaxed),
            audio_dropped_in: self.audio_dropped_in.load(Relaxed),
            audio_packets_out: self.audio_packets_out.load(Relaxed),
            audio_refused_out: self.audio_refused_out.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            messages_dropped_in: self.messages_dropped_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
        }
    }
}

/// One call, as the voice session sees it.
#[derive(Debug)]
pub struct CallHandle {
    pub(crate) id: CallId,
    pub(crate) caller: Caller,
    /// The caller's first block of voice seconds (a voice session takes it over; released
    /// when the handle is dropped otherwise).
    pub(crate) admission: Admission,
    pub(crate) audio: mpsc::Receiver<InboundOpus>,
    pub(crate) messages: mpsc::Receiver<String>,
    pub(crate) sender: CallSender,
}

impl CallHandle {
    /// The call's id (as in `/v1/calls/{id}`).
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The next Opus packet from the caller, in arrival order; `None` once the call is over.
    /// Holds at most `gateway.inbound_audio_queue` packets: a session that falls behind loses
    /// the newest ones (counted in [`CallStats::audio_dropped_in`]).
    pub async fn recv_audio(&mut self) -> Option<InboundOpus> {
        self.audio.recv().await
    }

    /// The next text message from the `events` data channel; `None` once the call is over.
    pub async fn recv_message(&mut self) -> Option<String> {
        self.messages.recv().await
    }

    /// The sending half, cloneable into other tasks.
    pub fn sender(&self) -> CallSender {
        self.sender.clone()
    }

    /// Splits the handle into its inbound audio, inbound messages and the sending half.
    pub fn split(
        self,
    ) -> (
        mpsc::Receiver<InboundOpus>,
        mpsc::Receiver<String>,
        CallSender,
    ) {
        (self.audio, self.messages, self.sender)
    }
}

/// The sending half of a call, plus its state.
#[derive(Debug, Clone)]
pub struct CallSender {
    pub(crate) id: CallId,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) state: watch::Receiver<CallState>,
    /// Whether the caller's `events` data channel is open now.
    pub(crate) events_open: watch::Receiver<bool>,
    /// The node's shutdown phase (one channel for the whole node).
    pub(crate) drain: watch::Receiver<DrainPhase>,
    pub(crate) counters: Arc<CallCounters>,
}

impl CallSender {
    /// The call's id.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Sends one Opus frame holding `samples` samples at 48 kHz (960 for 20 ms). The caller
    /// paces frames in real time; the gateway keeps the RTP clock and marks talkspurts after
    /// pauses. Frames written before the call connects are dropped (counted).
    pub async fn send_audio(&self, payload: Bytes, samples: u32) -> Result<(), SendError> {
        self.ensure_open()?;
        self.command(Command::Audio {
            id: self.id,
            payload,
            samples,
        })
        .await
    }

    /// Sends a text message on the `events` data channel. Messages sent before the caller's
    /// channel opens (see [`events_opened`](Self::events_opened)), or larger than
    /// `gateway.max_event_bytes`, are dropped (logged).
    pub async fn send_message(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.ensure_open()?;
        self.command(Command::Message {
            id: self.id,
            text: text.into(),
        })
        .await
    }

    /// Hangs up. The state becomes `Closed(ServerHungUp)` once the transport has said goodbye.
    pub async fn hang_up(&self) -> Result<(), SendError> {
        self.ensure_open()?;
        self.command(Command::HangUp {
            id: self.id,
            user_id: None,
            reply: None,
        })
        .await
    }

    /// The call's current state.
    pub fn state(&self) -> CallState {
        self.state.borrow().clone()
    }

    /// Waits until the call connects; `Err` with the reason if it closes first.
    pub async fn connected(&self) -> Result<(), CloseReason> {
        let mut state = self.state.clone();
        let result = state
            .wait_for(|s| !matches!(s, CallState::Connecting))
            .await
            .map(|s| s.clone());
        match result {
            Ok(CallState::Connected) => Ok(()),
            Ok(CallState::Closed(reason)) => Err(reason),
            Ok(CallState::Connecting) | Err(_) => Err(CloseReason::Shutdown),
        }
    }

    /// Whether the caller's `events` data channel is open now: messages sent while it is not
    /// are dropped.
    pub fn events_open(&self) -> bool {
        *self.events_open.borrow()
    }

    /// Waits until the caller's `events` data channel is open (at once if it is); `Err` with
    /// the reason if the call closes first.
    pub async fn events_opened(&self) -> Result<(), CloseReason> {
        let mut open = self.events_open.clone();
        let opened = tokio::select! {
            biased;
            // (The guard `wait_for` returns must not live across an await.)
            opened = open.wait_for(|open| *open) => opened.is_ok(),
            reason = self.closed() => return Err(reason),
        };
        if opened {
            Ok(())
        } else {
            // The endpoint dropped the call's channels: it is over.
            Err(self.closed().await)
        }
    }

    /// The node's shutdown phase, to watch with `changed()`: a handler says `goodbye` when
    /// it turns [`DrainPhase::Draining`] and ends its session when it turns
    /// [`DrainPhase::Closing`].
    pub fn drain_notices(&self) -> watch::Receiver<DrainPhase> {
        self.drain.clone()
    }

    /// Waits until the call is over and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut state = self.state.clone();
        let result = state
            .wait_for(|s| matches!(s, CallState::Closed(_)))
            .await
            .map(|s| s.clone());
        match result {
            Ok(CallState::Closed(reason)) => reason,
            _ => CloseReason::Shutdown,
        }
    }

    /// Traffic counters so far.
    pub fn stats(&self) -> CallStats {
        self.counters.snapshot()
    }

    fn ensure_open(&self) -> Result<(), SendError> {
        match &*self.state.borrow() {
            CallState::Closed(reason) => Err(SendError::Closed(reason.clone())),
            _ => Ok(()),
        }
    }

    async fn command(&self, command: Command) -> Result<(), SendError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| SendError::EndpointGone)
    }
}
