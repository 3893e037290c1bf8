//! The three provider traits and the values that flow through them.
//!
//! Every call returns a stream at once; the request is sent when the stream is first polled,
//! and dropping the stream cancels the request (the HTTP body or WebSocket is dropped with it).
//! The traits are object-safe so a stage can hold `Vec<Arc<dyn LlmProvider>>` for failover.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (persona, rules).
    System,
    /// The human.
    User,
    /// The companion.
    Assistant,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// What to ask the language model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmRequest {
    /// The conversation so far, oldest first; system messages may appear anywhere but are
    /// usually first.
    pub messages: Vec<ChatMessage>,
    /// Upper bound on generated tokens; `None` uses the provider config's default.
    pub max_tokens: Option<u32>,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// Text the assistant has already said for this answer (set by failover after a
    /// provider broke off mid-answer). Providers ask the model to continue from it and stream
    /// only the new part.
    pub assistant_prefix: Option<String>,
}

impl LlmRequest {
    /// A request with just these messages.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// Token accounting reported by the provider at the end of an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
}

/// One item of a language-model stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// The next piece of the answer text.
    Token(String),
    /// The answer is complete. Always the last item of a successful stream.
    Finished {
        /// Token counts, when the provider reported them.
        usage: Option<Usage>,
        /// The provider's stop reason (`stop`, `end_turn`, `length`, ...).
        stop_reason: Option<String>,
    },
}

/// A language-model answer as it streams.
pub type LlmStream = BoxStream<'static, Result<LlmEvent, PipelineError>>;

/// A model a provider runs, as listings name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    /// The vendor's model name (`gpt-4o-mini`, `nova-3`, ...), or the engine of a local one.
    pub model: String,
    /// The configured provider that runs it (`openai`, `deepgram`, `local-espeak`, ...).
    pub provider: String,
}

impl ServedModel {
    /// `model` run by `provider`.
    pub fn new(model: impl Into<String>, provider: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            provider: provider.into(),
        }
    }
}

/// A chat model that streams its answer token by token.
pub trait LlmProvider: Send + Sync {
    /// The configured name (`openai`, `anthropic`, `groq`, ...), used in logs and errors.
    fn name(&self) -> &str;
    /// Starts an answer. The request goes out on first poll; dropping the stream cancels it.
    fn stream(&self, request: LlmRequest) -> LlmStream;
    /// Opens the connection ahead of the first real request (call start), so the first turn
    /// does not pay for TCP + TLS. Errors are for logging only.
    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async { Ok(()) })
    }
    /// The models this provider answers with, for listings (the gateway's `GET /v1/models`).
    /// A failover stage lists those of its members, in failover order. Default: none.
    fn models(&self) -> Vec<ServedModel> {
        Vec::new()
    }
}

/// Caller audio for speech-to-text: 16 kHz mono signed 16-bit little-endian PCM, in chunks of
/// any size (an even number of bytes). The end of the stream marks the end of the utterance.
pub type AudioStream = BoxStream<'static, Bytes>;

/// Sample rate every STT provider receives.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// One item of a speech-to-text stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SttEvent {
    /// The current best guess for the utterance in progress; later events replace it.
    Partial(String),
    /// The finished transcript of one utterance.
    Final(String),
}

/// A transcription as it streams.
pub type SttStream = BoxStream<'static, Result<SttEvent, PipelineError>>;

/// A speech recogniser.
pub trait SttProvider: Send + Sync {
    /// The configured name.
    fn name(&self) -> &str;
    /// Transcribes `audio` as it arrives. Batch providers send it when the audio stream ends;
    /// streaming providers send it as it comes and report partials.
    fn transcribe(&self, audio: AudioStream) -> SttStream;
    /// Opens the connection ahead of time; see [`LlmProvider::warm_up`].
    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async { Ok(()) })
    }
    /// The models this provider answers with; see [`LlmProvider::models`].
    fn models(&self) -> Vec<ServedModel> {
        Vec::new()
    }
}

/// What to say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TtsRequest {
    /// The text of one speakable chunk.
    pub text: String,
    /// Voice override; `None` uses the provider config's voice.
    pub voice: Option<String>,
}

impl TtsRequest {
    /// A request for this text in the configured voice.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: None,
        }
    }
}

/// What a [`Timing`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingUnit {
    /// One character of the input text.
    Character,
    /// One word.
    Word,
    /// One phoneme.
    Phoneme,
}

/// When a piece of the text is heard, measured from the start of this request's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// The character, word or phoneme.
    pub text: String,
    /// What `text` is.
    pub unit: TimingUnit,
    /// Start offset in the audio.
    pub start: Duration,
    /// End offset in the audio.
    pub end: Duration,
}

/// A piece of synthesised speech.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsChunk {
    /// Mono signed 16-bit little-endian samples (always an even number of bytes).
    pub pcm: Bytes,
    /// Sample rate of `pcm`.
    pub sample_rate: u32,
    /// Timings that the provider sent with this chunk (empty when it sends none).
    pub timings: Vec<Timing>,
}

impl TtsChunk {
    /// Number of samples in this chunk.
    pub fn sample_count(&self) -> usize {
        self.pcm.len() / 2
    }

    /// Duration of this chunk's audio.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.sample_count() as f64 / f64::from(self.sample_rate.max(1)))
    }

    /// The samples, decoded.
    pub fn samples(&self) -> impl Iterator<Item = i16> + '_ {
        self.pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
    }
}

/// Synthesised speech as it streams.
pub type TtsStream = BoxStream<'static, Result<TtsChunk, PipelineError>>;

/// A speech synthesiser.
pub trait TtsProvider: Send + Sync {
    /// The configured name.
    fn name(&self) -> &str;
    /// Synthesises `request.text`, streaming audio as the provider produces it.
    fn synthesize(&self, request: TtsRequest) -> TtsStream;
    /// Opens the connection ahead of time; see [`LlmProvider::warm_up`].
    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async { Ok(()) })
    }
    /// The models this provider answers with; see [`LlmProvider::models`].
    fn models(&self) -> Vec<ServedModel> {
        Vec::new()
    }
}
