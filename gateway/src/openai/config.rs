use serde::{Deserialize, Serialize};

/// The `[gateway.openai]` section: limits of the OpenAI-compatible endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Largest JSON body of `/v1/chat/completions` and `/v1/audio/speech`, in bytes; larger
    /// bodies get 413. Default: `1048576` (1 MiB).
    pub max_json_bytes: usize,
    /// Largest upload to `/v1/audio/transcriptions`, in bytes; larger get 413.
    /// Default: `26214400` (25 MiB, OpenAI's own limit).
    pub max_audio_bytes: usize,
    /// Longest `input` of `/v1/audio/speech`, in characters. Default: `4096` (as OpenAI).
    pub max_speech_input_chars: usize,
    /// Longest audio `/v1/audio/transcriptions` accepts, in seconds, read from the WAV header
    /// and the bytes that arrived before anything is decoded or reserved; longer gets 400
    /// `audio_too_long`. 10 minutes of the slowest accepted audio (8 kHz mono, 16 kB/s) is
    /// 9.6 MB, inside `max_audio_bytes`. Default: `600`.
    pub max_transcription_secs: u64,
    /// Uploads decoded and resampled at once (each on a blocking thread); more wait their
    /// turn, holding their quota reservation. Bounds the CPU and the memory (up to 19 MB of
    /// 16 kHz audio each at the default duration cap) transcriptions take. Default: `2`.
    pub transcription_workers: usize,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            max_json_bytes: 1024 * 1024,
            max_audio_bytes: 25 * 1024 * 1024,
            max_speech_input_chars: 4096,
            max_transcription_secs: 600,
            transcription_workers: 2,
        }
    }
}

impl OpenAiConfig {
    /// Checks values serde cannot: the offending key (relative to `[gateway]`) and the form
    /// it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=3600).contains(&self.max_transcription_secs) {
            return Err(("openai.max_transcription_secs", "1 to 3600 seconds"));
        }
        if !(1..=64).contains(&self.transcription_workers) {
            return Err(("openai.transcription_workers", "1 to 64"));
        }
        Ok(())
    }
}
