//! Audio frames, Opus, resampling, VAD, end of turn, jitter buffer and visemes (sans-IO).
//!
//! Every type here is a plain struct fed audio, packets and media time; nothing owns a socket,
//! a clock or a thread, so the gateway and the load generator share the same code.
//!
//! Inbound chain (per 20 ms): [`JitterBuffer`] -> [`OpusDecoder`] -> [`Resampler48To16`] ->
//! [`Vad`] (energy gate, then a per-call [`SileroCall`] on the process-wide [`SileroModel`]) ->
//! [`TurnDetector`]. Outbound chain: TTS audio -> [`Resampler24To48`] /
//! [`Resampler16To48`] (or [`RateConverter`] for a rate known only at run time) ->
//! [`OpusEncoder`], with [`viseme`] frames stamped on the same [`MediaTime`] clock. Once a
//! call is running none of these allocate per frame (see `tests/allocations.rs`).
#![forbid(unsafe_code)]

pub mod any_rate;
pub mod codec;
pub mod deps;
pub mod error;
pub mod frame;
pub mod jitter;
pub mod resample;
pub mod time;
pub mod turn;
pub mod vad;
pub mod viseme;

pub use any_rate::RateConverter;
pub use codec::{DecoderStats, MAX_PACKET, OpusConfig, OpusDecoder, OpusEncoder};
pub use deps::RuntimePaths;
pub use error::{MediaError, Result};
pub use frame::{AudioFrame, FRAME_MS, Frame16, Frame24, Frame48};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
pub use resample::{Resampler16To48, Resampler24To48, Resampler48To16, StreamResampler};
pub use time::{CLOCK_RATE, MediaTime};
pub use turn::{TurnConfig, TurnDetector, TurnEvent};
pub use vad::{SileroCall, SileroModel, SpeechModel, Vad, VadConfig, VadStats};
