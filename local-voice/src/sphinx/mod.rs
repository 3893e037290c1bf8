//! Speech to text with PocketSphinx: one [`Recognizer`] per audio stream.

mod config;
mod decoder;
mod ffi;
mod models;
mod noise;

pub use config::{DEBIAN_MODEL_DIR, LanguageModel, RecognizerConfig, SAMPLE_RATE_HZ};
pub use decoder::{Recognizer, Transcript, WordTiming};
