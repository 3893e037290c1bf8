//! The per-call session engine: end of turn -> STT -> LLM -> sentence chunks -> TTS -> audio
//! and visemes, with barge-in.
//!
//! ```text
//! transport ──Frame48──▶ 48->16 kHz ─▶ VAD ─▶ end of turn ─▶ STT (streamed while the caller talks)
//!                                                     │                  │ final transcript
//!                         barge-in: stop audio, cancel│                  ▼
//!                         LLM + TTS, keep heard text  │     LLM (persona + history) tokens
//!                                                     │                  ▼
//! transport ◀── SessionOutput ◀── playout clock ◀── any rate -> 48 kHz ◀── TTS per chunk ◀── chunker
//!   (audio frames, visemes, protocol events on one output media clock)
//! ```
//!
//! [`SessionCore`] is the sans-IO state machine (fed frames, provider events and `now`,
//! answering with [`Action`]s and [`SessionCore::poll_timeout`]); [`spawn_session`] is the
//! tokio shell a transport uses. The engine does not know whether audio came over WebRTC,
//! WebSocket or QUIC: a transport decodes to [`media::Frame48`], writes them to
//! [`SessionHandle::input`], and sends whatever arrives on [`SessionHandle::output`]:
//!
//! ```no_run
//! # async fn demo(providers: pipeline::session::Providers, vad: media::SileroModel,
//! #               frames: Vec<media::Frame48>) -> Result<(), pipeline::PipelineError> {
//! use pipeline::session::{SessionConfig, SessionHandle, SessionOutput, spawn_session};
//! let vad = vad.for_call().map_err(|e| pipeline::PipelineError::InvalidRequest(e.to_string()))?;
//! let SessionHandle { input, control, mut output, done } =
//!     spawn_session(SessionConfig::default(), providers, vad, None)?;
//! # drop(control); // a client's `interrupt` goes here as `SessionControl::Interrupt`
//! tokio::spawn(async move {
//!     for frame in frames {
//!         let _ = input.send(frame).await; // every 20 ms, from the jitter buffer
//!     }
//! });
//! while let Some(out) = output.recv().await {
//!     match out {
//!         SessionOutput::Audio(frame) => { /* Opus-encode and send now */ }
//!         SessionOutput::Viseme(v) => { /* binary viseme frame */ }
//!         SessionOutput::Event(e) => { /* JSON event */ }
//!         _ => {}
//!     }
//! }
//! let conversation = done.await; // persona, questions, answers (cut to what was heard)
//! # Ok(()) }
//! ```
//!
//! Per turn the latency marks of [`crate::latency`] are recorded and sent as a
//! `turn_metrics` event (and observed into [`crate::latency::LatencyMetrics`]).

mod config;
mod core;
mod heard;
mod playout;
mod task;
mod visemes;

pub use config::SessionConfig;
pub use core::{Action, SessionCore};
pub use task::{Providers, SessionHandle, spawn_session};

/// Output rate of a session: TTS audio at any rate is converted to it
/// ([`media::RateConverter`]).
pub(crate) const OUT_RATE: u32 = media::Frame48::RATE;

/// A request from the caller's client to the running session (besides audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionControl {
    /// The client's `interrupt`: stop the current answer now, as a barge-in would (cancel
    /// LLM and TTS, emit `interrupted` with the heard text, keep only that in the history).
    /// Nothing happens when no answer is running.
    Interrupt,
}

/// One item for the transport.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// A frame travels by value through the bounded output channel, whose slots are reused:
// boxing it would allocate once per 20 ms frame.
#[allow(clippy::large_enum_variant)]
pub enum SessionOutput {
    /// A 20 ms frame of reply audio, stamped on the output media clock; send it now.
    Audio(media::Frame48),
    /// A mouth shape for the audio at its media time (same clock as [`SessionOutput::Audio`]);
    /// sent just before the audio frame it falls in.
    Viseme(protocol::viseme::VisemeFrame),
    /// A voice-call event for the client (`speech_started`, `transcript_final`,
    /// `interrupted`, `turn_metrics`, ...).
    Event(protocol::ServerEvent),
}
