//! Text-to-speech providers.

mod elevenlabs;
mod openai;

pub use elevenlabs::ElevenLabsTts;
pub use openai::{OPENAI_PCM_SAMPLE_RATE, OpenAiTts};
