//! Voice calls: events on the WebRTC data channel or the WebSocket/QUIC event stream, and the
//! controls a client sends.
//!
//! Media times (`mediaTimeUs`) are microseconds on the session's media clocks: the input clock
//! starts at the first audio the server received from the client, the output clock at the
//! first audio the server sent; binary audio and viseme frames carry the same clocks.
//! Every turn (one user utterance and the reply to it) has a `turnId` counting up from 1
//! within the session.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::viseme::VisemeFrame;

/// How audio is encoded in binary [`FrameType::Audio`](crate::FrameType::Audio) frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioCodec {
    /// One Opus packet per frame.
    Opus,
    /// Raw signed 16-bit little-endian PCM, interleaved if stereo.
    PcmS16le,
}

/// An audio stream's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioFormat {
    /// Encoding.
    pub codec: AudioCodec,
    /// Samples per second: 8000, 16000, 24000 or 48000 (Opus: 48000).
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
}

/// Sample rates a session may use.
pub const SUPPORTED_SAMPLE_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

impl AudioFormat {
    /// Checks the rate and channel count against what the protocol supports.
    pub fn validate(&self, event_type: &'static str) -> Result<(), ProtocolError> {
        if !SUPPORTED_SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "sampleRate",
                reason: format!(
                    "is {}, supported rates are {SUPPORTED_SAMPLE_RATES:?}",
                    self.sample_rate
                ),
            });
        }
        if self.codec == AudioCodec::Opus && self.sample_rate != 48_000 {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "sampleRate",
                reason: format!("is {}, Opus streams use 48000", self.sample_rate),
            });
        }
        if !(1..=2).contains(&self.channels) {
            return Err(ProtocolError::InvalidField {
                event_type,
                field: "channels",
                reason: format!("is {}, must be 1 or 2", self.channels),
            });
        }
        Ok(())
    }
}

/// `session_started` (server -> client): a voice session is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    /// Server-assigned session id.
    pub session_id: String,
    /// Conversation the call's messages are stored in.
    pub conversation_id: String,
    /// Format the server expects from the client (binary frames; WebRTC negotiates its own).
    pub input_audio: AudioFormat,
    /// Format the server sends.
    pub output_audio: AudioFormat,
    /// Whether viseme events/frames will be sent.
    pub visemes: bool,
}

/// Why a voice session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// The client hung up.
    HangUp,
    /// No speech or audio for too long.
    IdleTimeout,
    /// The tier's maximum call length was reached.
    MaxDuration,
    /// The daily voice quota ran out.
    QuotaExceeded,
    /// The server shut down (after `goodbye`).
    ServerShutdown,
    /// The media transport failed (ICE/DTLS failure, stream reset).
    TransportClosed,
    /// A newer session of the same user replaced this one.
    Replaced,
    /// An unrecoverable error; an `error` event preceded this.
    Error,
}

/// `session_ended` (server -> client): the voice session is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnded {
    /// The session.
    pub session_id: String,
    /// Why it ended.
    pub reason: EndReason,
    /// Call length, ms.
    pub duration_ms: u64,
}

/// `speech_started` / `speech_stopped` (server -> client): voice activity detection saw the
/// user start or stop talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeechEdge {
    /// Turn the speech belongs to.
    pub turn_id: u64,
    /// Input media time of the edge, µs.
    pub media_time_us: u64,
}

/// `transcript_partial` / `transcript_final` (server -> client): what the user said so far /
/// in the end. A partial replaces the previous partial of the turn; the final replaces all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    /// Turn the transcript belongs to.
    pub turn_id: u64,
    /// The recognised text.
    pub text: String,
}

/// `response_started` (server -> client): the companion is answering the turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStarted {
    /// Turn being answered.
    pub turn_id: u64,
    /// Id of the assistant [`ChatMessage`](crate::chat::ChatMessage) the reply is stored as.
    pub message_id: String,
}

/// `text_delta` (server -> client): the next piece of the reply's text (for captions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextDelta {
    /// Turn being answered.
    pub turn_id: u64,
    /// Text to append.
    pub delta: String,
}

/// `audio_started` / `audio_ended` (server -> client): the reply's audio began or finished
/// playing out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioEdge {
    /// Turn being answered.
    pub turn_id: u64,
    /// Output media time of the first sample (started) or just past the last (ended), µs.
    pub media_time_us: u64,
}

/// `visemes` (server -> client): lipsync frames for upcoming output audio, in media-time
/// order. Batched so a 20 ms audio frame does not need its own event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visemes {
    /// Turn being answered.
    pub turn_id: u64,
    /// The frames, in media-time order.
    pub frames: Vec<VisemeFrame>,
}

/// Most viseme frames in one `visemes` event.
pub const MAX_VISEMES_PER_EVENT: usize = 256;

/// `interrupted` (server -> client): the user talked over the companion (barge-in) and the
/// reply was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interrupted {
    /// Turn that was interrupted.
    pub turn_id: u64,
    /// The part of the reply the user actually heard (audio played out before the cut); the
    /// stored message is truncated to this.
    pub heard_text: String,
    /// Output media time where playback stopped, µs.
    pub media_time_us: u64,
}

/// Where the time of one turn went. Every field is milliseconds after the user started
/// speaking (the turn's `speech_started`), or absent when the stage did not happen (e.g. the
/// user interrupted before any audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnLatency {
    /// The user stopped speaking (VAD trailing edge, backdated by its hangover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_end_ms: Option<u32>,
    /// End of turn was decided (the silence/semantic check said "their turn is over").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_turn_ms: Option<u32>,
    /// Final transcript arrived from STT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_final_ms: Option<u32>,
    /// First token arrived from the LLM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_first_token_ms: Option<u32>,
    /// First speakable chunk (sentence or clause) was handed to TTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sentence_ms: Option<u32>,
    /// First audio arrived from TTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_first_audio_ms: Option<u32>,
    /// First audio frame of the reply left the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_audio_out_ms: Option<u32>,
}

impl TurnLatency {
    /// The latency the user feels: from the end of their speech to the first reply audio
    /// leaving the server, if both happened.
    pub fn response_latency_ms(&self) -> Option<u32> {
        Some(self.first_audio_out_ms?.saturating_sub(self.speech_end_ms?))
    }
}

/// `turn_metrics` (server -> client): latency breakdown of a finished turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnMetrics {
    /// The turn.
    pub turn_id: u64,
    /// Stage offsets.
    pub latency: TurnLatency,
}

/// `start_session` (client -> server): start a voice session on this WebSocket/QUIC
/// connection (WebRTC calls start with the WHIP offer instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartSession {
    /// Client-chosen id echoed on errors about this request.
    pub request_id: String,
    /// Conversation to continue; a new one is created if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Companion to talk to; the account's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companion_id: Option<String>,
    /// Format of the audio the client will send.
    pub input_audio: AudioFormat,
    /// Format the client wants back.
    pub output_audio: AudioFormat,
    /// Whether to send viseme data.
    #[serde(default)]
    pub visemes: bool,
}

/// `configure` (client -> server): change session settings mid-call. Absent fields keep their
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configure {
    /// Turn viseme data on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visemes: Option<bool>,
    /// TTS voice id to use from the next reply on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// BCP 47 language tag for STT and TTS, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}
