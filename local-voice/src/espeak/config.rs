//! Settings for the espeak-ng worker and for each voice.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

/// espeak-ng's sample rate: every audio chunk is mono s16 at this rate.
pub const SAMPLE_RATE_HZ: u32 = 22_050;

/// Slowest speaking rate espeak-ng accepts (`espeakRATE_MINIMUM`), words per minute.
pub const RATE_MIN_WPM: u16 = 80;
/// Fastest speaking rate espeak-ng accepts (`espeakRATE_MAXIMUM`), words per minute.
pub const RATE_MAX_WPM: u16 = 450;

/// How the single espeak-ng worker is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EspeakConfig {
    /// Directory that contains `espeak-ng-data`. Default: `None`, the library's built-in
    /// location (`/usr/lib/x86_64-linux-gnu/espeak-ng-data` on Debian).
    pub data_dir: Option<PathBuf>,
    /// Synthesis requests that may wait for the worker; one more is refused with
    /// [`Error::QueueFull`]. Default: 256 (synthesis runs ~1000x faster than real time, so
    /// the queue drains in milliseconds).
    pub queue_depth: usize,
    /// Audio per chunk handed out while synthesising, in milliseconds. Smaller chunks reach
    /// the caller sooner and make cancellation finer-grained. Default: 20 (one Opus frame).
    pub chunk_ms: u16,
    /// Longest text accepted by one `synthesize` call, in bytes; bounds the audio one request
    /// can buffer. Default: 4096.
    pub max_text_bytes: usize,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            queue_depth: 256,
            chunk_ms: 20,
            max_text_bytes: 4096,
        }
    }
}

/// Which voice speaks a request and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Voice {
    /// espeak-ng voice name (`en-us`, `en`, `en-gb-x-rp`, `de`, ...; `espeak-ng --voices`
    /// lists them). Default: `en-us`.
    pub name: String,
    /// Speaking rate in words per minute, 80..=450. Default: 175 (espeak-ng's normal rate).
    pub rate_wpm: u16,
    /// Base pitch, 0..=100. Default: 50 (espeak-ng's normal pitch).
    pub pitch: u8,
}

impl Default for Voice {
    fn default() -> Self {
        Self {
            name: "en-us".to_owned(),
            rate_wpm: 175,
            pitch: 50,
        }
    }
}

impl Voice {
    /// A voice by name with the default rate and pitch.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Checks the settings against espeak-ng's ranges.
    pub fn validate(&self) -> Result<(), Error> {
        if !(RATE_MIN_WPM..=RATE_MAX_WPM).contains(&self.rate_wpm) {
            return Err(Error::VoiceOutOfRange {
                setting: "rate_wpm",
                value: self.rate_wpm.into(),
                min: RATE_MIN_WPM.into(),
                max: RATE_MAX_WPM.into(),
            });
        }
        if self.pitch > 100 {
            return Err(Error::VoiceOutOfRange {
                setting: "pitch",
                value: self.pitch.into(),
                min: 0,
                max: 100,
            });
        }
        if self.name.is_empty() || self.name.contains('\0') {
            return Err(Error::UnknownVoice(self.name.clone()));
        }
        Ok(())
    }
}
