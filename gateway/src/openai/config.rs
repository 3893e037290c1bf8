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
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            max_json_bytes: 1024 * 1024,
            max_audio_bytes: 25 * 1024 * 1024,
            max_speech_input_chars: 4096,
        }
    }
}
