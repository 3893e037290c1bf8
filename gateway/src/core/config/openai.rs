use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `[gateway.openai]` section: limits of the OpenAI-compatible endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// `/v1/chat/completions` limits per tier (`max_tokens`, `max_prompt_chars`); a tier not
    /// listed gets `free`'s. A larger `max_tokens` is lowered to the cap (and an absent one
    /// set to it); a longer prompt gets 400 `context_length_exceeded`. Default: free 1,024
    /// tokens / 16,000 characters, plus 4,096 / 64,000, pro 8,192 / 128,000, dev 4,096 /
    /// 64,000.
    pub tiers: BTreeMap<String, CompletionLimits>,
    /// Completions one caller may request per `chat_window_secs` on this node: the control
    /// plane's `chat` rule (which limits chat over WebSocket and QUIC when they open a turn),
    /// applied here because completions open no turn. Over it: 429 `rate_limit_exceeded` with
    /// `Retry-After`. Default: `100`.
    pub chat_requests_per_window: u32,
    /// Window of `chat_requests_per_window`, in seconds. Default: `3600`.
    pub chat_window_secs: u64,
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
            tiers: default_tiers(),
            chat_requests_per_window: 100,
            chat_window_secs: 3600,
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
        if self
            .tiers
            .values()
            .any(|l| l.max_tokens == 0 || l.max_prompt_chars == 0)
        {
            return Err((
                "openai.tiers",
                "max_tokens and max_prompt_chars of at least 1 per tier",
            ));
        }
        if self.chat_requests_per_window == 0 || self.chat_window_secs == 0 {
            return Err((
                "openai.chat_requests_per_window",
                "at least 1 request per window of at least 1 second",
            ));
        }
        Ok(())
    }
}

/// What one tier's callers may ask of `/v1/chat/completions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionLimits {
    /// Most tokens one completion may generate.
    pub max_tokens: u32,
    /// Longest prompt (all messages' text together), in characters.
    pub max_prompt_chars: usize,
}

/// The default limits per tier (the control plane's tiers, and `dev` for development
/// tokens). A tier not listed gets `free`'s.
pub(crate) fn default_tiers() -> BTreeMap<String, CompletionLimits> {
    let limits = |max_tokens, max_prompt_chars| CompletionLimits {
        max_tokens,
        max_prompt_chars,
    };
    BTreeMap::from([
        ("free".to_owned(), limits(1_024, 16_000)),
        ("plus".to_owned(), limits(4_096, 64_000)),
        ("pro".to_owned(), limits(8_192, 128_000)),
        ("dev".to_owned(), limits(4_096, 64_000)),
    ])
}
