//! Text-to-speech providers: vendors over HTTP and the offline espeak-ng fallback.

mod elevenlabs;
mod espeak_timings;
mod local;
mod openai;
mod remote;

pub use elevenlabs::ElevenLabsTts;
pub use local::{LOCAL_TTS_NAME, LocalTts};
pub use openai::{OPENAI_PCM_SAMPLE_RATE, OpenAiTts};
