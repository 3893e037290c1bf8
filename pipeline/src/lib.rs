//! Streaming STT -> LLM -> TTS voice pipeline with provider failover.
//!
//! - [`provider`]: the three object-safe streaming traits ([`LlmProvider`], [`SttProvider`],
//!   [`TtsProvider`]) and the values that flow through them. Every call returns a stream at
//!   once; dropping the stream cancels the request.
//! - [`llm`], [`stt`], [`tts`]: real providers over HTTP/WebSocket in each vendor's wire format,
//!   plus the offline local fallback of the embedded default, which needs no key and no
//!   network: [`tts::LocalTts`] (`local-espeak`, espeak-ng, with exact phoneme timings for
//!   visemes) and [`stt::LocalStt`] (`local-pocketsphinx`, PocketSphinx). They are last in the
//!   default failover orders, so with no vendor key configured the service still speaks and
//!   listens.
//! - [`failover`]: the sans-IO breaker/health policy and async wrappers that try providers in
//!   order, enforce first-token / first-audio deadlines, and resume a cut answer on the next
//!   provider. The wrappers implement the same traits, so callers never see the list.
//! - [`chunker`]: sans-IO sentence chunking of token streams into speakable pieces.
//! - [`latency`]: per-turn latency records and their Prometheus histograms.
//! - [`mock`]: an in-process server speaking every vendor format, with injectable faults.
//! - [`config`]: the typed configuration; [`sse`] and [`pcm`]: small sans-IO codecs.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use pipeline::{ChatMessage, LlmEvent, LlmProvider, LlmRequest, Role};
//! use pipeline::mock::{MockConfig, MockServer};
//!
//! # async fn demo() -> Result<(), pipeline::PipelineError> {
//! let mock = MockServer::start(MockConfig::default()).await?; // 127.0.0.1:0
//! let config = mock.pipeline_config(); // or PipelineConfig::from_toml(..) for real vendors
//! let llm = pipeline::failover::build_llm(&config)?; // OpenAI -> Anthropic -> Groq
//! llm.warm_up_all().await; // at call start
//! let mut answer = llm.stream(LlmRequest::new(vec![ChatMessage::new(Role::User, "Hi!")]));
//! while let Some(event) = answer.next().await {
//!     match event? {
//!         LlmEvent::Token(text) => print!("{text}"),
//!         LlmEvent::Finished { .. } => break,
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Licensing
//!
//! The local voice links libespeak-ng (GPL-3.0-or-later) through the `local-voice` crate's
//! default `espeak` feature: a binary containing this crate is a work based on libespeak-ng
//! and must be distributed under GPL-compatible terms. See `local-voice/README.md`.
#![forbid(unsafe_code)]

pub mod chunker;
pub mod config;
mod error;
pub mod failover;
mod http;
pub mod latency;
pub mod llm;
pub mod mock;
pub mod pcm;
pub mod provider;
pub mod session;
pub mod sse;
pub mod stt;
pub mod tts;

pub use error::PipelineError;
pub use provider::{
    AudioStream, ChatMessage, LlmEvent, LlmProvider, LlmRequest, LlmStream, Role, ServedModel,
    SttEvent, SttProvider, SttStream, Timing, TimingUnit, TtsChunk, TtsProvider, TtsRequest,
    TtsStream, Usage,
};
