//! Offline speech engines for the embedded default: espeak-ng TTS and PocketSphinx STT.
//!
//! The service's built-in voice must speak and listen with no API key and no network. This
//! crate wraps two offline engines from Debian packages behind a safe, synchronous API:
//!
//! - [`espeak`] (feature `espeak`, on by default): text to speech. One worker thread owns the
//!   engine (the C library is a process-wide singleton that crashes when two threads use it)
//!   and serves any number of voices through a bounded queue. Each request streams 22,050 Hz
//!   mono PCM chunks interleaved with phoneme / word / sentence timing events, and stops
//!   within one chunk when its [`espeak::SynthStream`] is cancelled or dropped (barge-in).
//! - [`sphinx`]: speech to text with PocketSphinx 0.8, one [`sphinx::Recognizer`] per audio
//!   stream, fed 16 kHz mono PCM. By default it decodes with a small companion-chat language
//!   model built from an in-tree corpus ([`lm`]), which is far more accurate and smaller
//!   than the stock 134k-word model for the service's kind of speech.
//!
//! The API blocks the calling thread; async callers run it on worker threads.
//!
//! # Unsafe code
//!
//! This is the only crate in the project allowed to use `unsafe`: it holds the hand-written
//! FFI declarations for libespeak-ng and libpocketsphinx/libsphinxbase (`*/ffi.rs`) and the
//! calls into them. Every `unsafe` block carries a `// SAFETY:` comment; nothing unsafe is
//! exposed in the public API.
//!
//! # Licensing
//!
//! libespeak-ng is GPL-3.0-or-later: a binary built with the `espeak` feature must be
//! distributed under GPL-compatible terms. PocketSphinx is BSD-licensed. See README.md.

// FFI to the two C engines is this crate's purpose; the unsafe blocks are confined to the
// `ffi`, `worker` and `decoder` modules and each states why it is sound.
#![allow(unsafe_code)]

mod error;
#[cfg(feature = "espeak")]
pub mod espeak;
pub mod lm;
pub mod sphinx;

pub use error::Error;
