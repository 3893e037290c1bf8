//! Typed configuration for every provider, the failover lists and the breaker.
//!
//! Every field has a documented default, so an empty file (or `PipelineConfig::default()`)
//! is a working configuration that reads API keys from the usual environment variables.
//! A provider without a key is disabled with a log line, never a panic. Keys never appear in
//! logs or `Debug` output.

use local_voice::espeak::EspeakConfig;
use local_voice::sphinx::RecognizerConfig;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// An API key: redacted in `Debug` and in a printed configuration.
pub use protocol::Secret;

/// Everything the pipeline's providers need.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// HTTP client tuning shared by every provider.
    pub http: HttpConfig,
    /// Circuit-breaker thresholds shared by every stage.
    pub breaker: BreakerConfig,
    /// Language-model stage.
    pub llm: LlmConfig,
    /// Speech-to-text stage.
    pub stt: SttConfig,
    /// Text-to-speech stage.
    pub tts: TtsConfig,
}

impl PipelineConfig {
    /// Parses a TOML document; an error names the offending key.
    pub fn from_toml(text: &str) -> Result<Self, PipelineError> {
        let de = toml::Deserializer::parse(text).map_err(|e| PipelineError::Config {
            key: String::new(),
            message: e.to_string(),
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| PipelineError::Config {
            key: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }
}

/// HTTP client settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// TCP + TLS connect timeout. Default 3000 ms.
    pub connect_timeout_ms: u64,
    /// Longest silence between two reads of a response before it counts as broken.
    /// Default 15000 ms (the failover deadlines are usually much shorter).
    pub read_timeout_ms: u64,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout_secs: u64,
    /// HTTP/2 PING interval that keeps idle connections warm. Default 20 s.
    pub http2_keep_alive_interval_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            read_timeout_ms: 15_000,
            pool_idle_timeout_secs: 90,
            http2_keep_alive_interval_secs: 20,
        }
    }
}

/// Circuit breaker and health tracking.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that mark a provider unhealthy and open its breaker. Default 3.
    pub failure_threshold: u32,
    /// How long an open breaker stays open before one trial request. Default 60 s.
    pub open_secs: u64,
    /// Throttle time after a 429 that carried no `Retry-After`. Default 5 s.
    pub default_retry_after_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            open_secs: 60,
            default_retry_after_secs: 5,
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint (OpenAI, Groq, llama.cpp, vLLM, Ollama).
///
/// Unset fields take the defaults of the slot the config sits in (see [`LlmConfig`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiChatConfig {
    /// Whether this provider may be used at all. Default true (false for `local`).
    pub enabled: Option<bool>,
    /// Base URL up to and including `/v1`. Default: the slot's vendor URL.
    pub base_url: Option<String>,
    /// Model name. Default: the slot's model.
    pub model: Option<String>,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default: the slot's (`OPENAI_API_KEY`, ...).
    pub api_key_env: Option<String>,
    /// Default `max_tokens` per answer. Default 512.
    pub max_tokens: Option<u32>,
}

/// Anthropic Messages API.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// Whether this provider may be used. Default true.
    pub enabled: bool,
    /// Base URL without `/v1`. Default `https://api.anthropic.com`.
    pub base_url: String,
    /// Model name. Default `claude-3-5-haiku-latest`.
    pub model: String,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default `ANTHROPIC_API_KEY`.
    pub api_key_env: String,
    /// `anthropic-version` header. Default `2023-06-01`.
    pub api_version: String,
    /// `max_tokens` per answer (required by the API). Default 512.
    pub max_tokens: u32,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://api.anthropic.com".into(),
            model: "claude-3-5-haiku-latest".into(),
            api_key: None,
            api_key_env: "ANTHROPIC_API_KEY".into(),
            api_version: "2023-06-01".into(),
            max_tokens: 512,
        }
    }
}

/// The language-model stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Failover order by provider name (`openai`, `anthropic`, `groq`, `local`).
    /// Default `["openai", "anthropic", "groq"]`.
    pub order: Vec<String>,
    /// Deadline for the first token of an attempt. Default 2500 ms.
    pub first_token_timeout_ms: u64,
    /// Deadline between two tokens once streaming. Default 5000 ms.
    pub stall_timeout_ms: u64,
    /// OpenAI. Defaults: `https://api.openai.com/v1`, `gpt-4o-mini`, `OPENAI_API_KEY`.
    pub openai: OpenAiChatConfig,
    /// Anthropic; see [`AnthropicConfig`].
    pub anthropic: AnthropicConfig,
    /// Groq. Defaults: `https://api.groq.com/openai/v1`, `llama-3.1-8b-instant`, `GROQ_API_KEY`.
    pub groq: OpenAiChatConfig,
    /// A local OpenAI-compatible server. Defaults: disabled, `http://127.0.0.1:8080/v1`,
    /// model `local`, no key needed.
    pub local: OpenAiChatConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            order: vec!["openai".into(), "anthropic".into(), "groq".into()],
            first_token_timeout_ms: 2_500,
            stall_timeout_ms: 5_000,
            openai: OpenAiChatConfig::default(),
            anthropic: AnthropicConfig::default(),
            groq: OpenAiChatConfig::default(),
            local: OpenAiChatConfig::default(),
        }
    }
}

/// OpenAI-compatible `/v1/audio/transcriptions`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiSttConfig {
    /// Whether this provider may be used. Default true.
    pub enabled: bool,
    /// Base URL including `/v1`. Default `https://api.openai.com/v1`.
    pub base_url: String,
    /// Model. Default `gpt-4o-mini-transcribe`.
    pub model: String,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default `OPENAI_API_KEY`.
    pub api_key_env: String,
    /// Language hint (ISO-639-1), empty for auto. Default `en`.
    pub language: String,
}

impl Default for OpenAiSttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini-transcribe".into(),
            api_key: None,
            api_key_env: "OPENAI_API_KEY".into(),
            language: "en".into(),
        }
    }
}

/// Deepgram live streaming over WebSocket.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeepgramConfig {
    /// Whether this provider may be used. Default true.
    pub enabled: bool,
    /// WebSocket URL of the listen endpoint. Default `wss://api.deepgram.com/v1/listen`.
    pub url: String,
    /// Model. Default `nova-3`.
    pub model: String,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default `DEEPGRAM_API_KEY`.
    pub api_key_env: String,
    /// Language. Default `en`.
    pub language: String,
    /// Silence (ms) after which Deepgram marks `speech_final`. Default 300.
    pub endpointing_ms: u32,
    /// Idle time (ms) without audio after which a `KeepAlive` is sent (Deepgram closes a
    /// socket that hears nothing for 10 s). Default 5000.
    pub keepalive_ms: u64,
}

impl Default for DeepgramConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url: "wss://api.deepgram.com/v1/listen".into(),
            model: "nova-3".into(),
            api_key: None,
            api_key_env: "DEEPGRAM_API_KEY".into(),
            language: "en".into(),
            endpointing_ms: 300,
            keepalive_ms: 5_000,
        }
    }
}

/// The local fallback recogniser: PocketSphinx on this machine, no key, no network
/// (provider name `local-pocketsphinx`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSttConfig {
    /// Whether this provider may be used. Default true: it is what makes the embedded
    /// default listen when no vendor key is configured.
    pub enabled: bool,
    /// How often, in milliseconds of caller audio, the current best guess is sent as a
    /// partial transcript (only when it changed). Default 300.
    pub partial_interval_ms: u32,
    /// Longest utterance accepted, in seconds; longer audio fails the request rather than
    /// growing the decoder without bound. Default 60.
    pub max_utterance_secs: u32,
    /// The PocketSphinx models and tuning. Defaults: Debian's `pocketsphinx-en-us` acoustic
    /// model and dictionary, the in-tree companion-chat language model, LM weight 6.5 and a
    /// -50 dBFS noise floor (see `local_voice::sphinx::RecognizerConfig`).
    pub recognizer: RecognizerConfig,
}

impl Default for LocalSttConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            partial_interval_ms: 300,
            max_utterance_secs: 60,
            recognizer: RecognizerConfig::default(),
        }
    }
}

/// The speech-to-text stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SttConfig {
    /// Preference order (`deepgram`, `openai`, `local`). Vendors without a key are left
    /// out, so with no key configured the stage listens with `local` alone.
    /// Default `["deepgram", "openai", "local"]`.
    pub order: Vec<String>,
    /// Deadline for the final transcript after the audio ends. Default 3000 ms.
    pub final_timeout_ms: u64,
    /// OpenAI transcriptions.
    pub openai: OpenAiSttConfig,
    /// Deepgram streaming.
    pub deepgram: DeepgramConfig,
    /// The local fallback (PocketSphinx).
    pub local: LocalSttConfig,
}

impl Default for SttConfig {
    fn default() -> Self {
        Self {
            order: vec!["deepgram".into(), "openai".into(), "local".into()],
            final_timeout_ms: 3_000,
            openai: OpenAiSttConfig::default(),
            deepgram: DeepgramConfig::default(),
            local: LocalSttConfig::default(),
        }
    }
}

/// OpenAI-compatible `/v1/audio/speech` with raw PCM output (24 kHz s16le).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiTtsConfig {
    /// Whether this provider may be used. Default true.
    pub enabled: bool,
    /// Base URL including `/v1`. Default `https://api.openai.com/v1`.
    pub base_url: String,
    /// Model. Default `gpt-4o-mini-tts`.
    pub model: String,
    /// Voice. Default `alloy`.
    pub voice: String,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default `OPENAI_API_KEY`.
    pub api_key_env: String,
}

impl Default for OpenAiTtsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini-tts".into(),
            voice: "alloy".into(),
            api_key: None,
            api_key_env: "OPENAI_API_KEY".into(),
        }
    }
}

/// ElevenLabs `stream/with-timestamps` (PCM plus character alignment).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ElevenLabsConfig {
    /// Whether this provider may be used. Default true.
    pub enabled: bool,
    /// Base URL without `/v1`. Default `https://api.elevenlabs.io`.
    pub base_url: String,
    /// Voice id. Default `21m00Tcm4TlvDq8ikWAM`.
    pub voice_id: String,
    /// Model. Default `eleven_flash_v2_5`.
    pub model: String,
    /// PCM sample rate: 16000, 22050, 24000 or 44100. Default 24000.
    pub sample_rate: u32,
    /// The key itself; prefer `api_key_env`. Default none.
    pub api_key: Option<Secret>,
    /// Environment variable holding the key. Default `ELEVENLABS_API_KEY`.
    pub api_key_env: String,
}

impl Default for ElevenLabsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            base_url: "https://api.elevenlabs.io".into(),
            voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
            model: "eleven_flash_v2_5".into(),
            sample_rate: 24_000,
            api_key: None,
            api_key_env: "ELEVENLABS_API_KEY".into(),
        }
    }
}

/// The local fallback voice: espeak-ng on this machine, no key, no network (provider name
/// `local-espeak`). Its audio is 22,050 Hz and carries exact phoneme timings for visemes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalTtsConfig {
    /// Whether this provider may be used. Default true: it is what makes the embedded
    /// default speak when no vendor key is configured.
    pub enabled: bool,
    /// espeak-ng voice name (`espeak-ng --voices` lists them); a request's voice overrides
    /// it. Default `en-us`.
    pub voice: String,
    /// Speaking rate in words per minute, 80..=450. Default 175.
    pub rate_wpm: u16,
    /// Base pitch, 0..=100. Default 50.
    pub pitch: u8,
    /// Audio chunks (20 ms each by default, with their timings) queued between the thread
    /// draining the engine and the consumer. When the queue is full that thread waits (the
    /// engine itself never does); a queue that holds a whole sentence frees the thread as
    /// soon as the sentence is synthesised. Default 256 (~5 s of audio, ~230 KB).
    pub channel_chunks: usize,
    /// The process-wide espeak-ng worker (data directory, queue depth, chunk length, text
    /// limit). Defaults: the library's data directory, 256 queued requests, 20 ms chunks,
    /// 4096-byte texts (see `local_voice::espeak::EspeakConfig`).
    pub engine: EspeakConfig,
}

impl Default for LocalTtsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            voice: "en-us".into(),
            rate_wpm: 175,
            pitch: 50,
            channel_chunks: 256,
            engine: EspeakConfig::default(),
        }
    }
}

/// The text-to-speech stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// Failover order (`elevenlabs`, `openai`, `local`). Vendors without a key are left
    /// out, so with no key configured the stage speaks with `local` alone.
    /// Default `["elevenlabs", "openai", "local"]`.
    pub order: Vec<String>,
    /// Deadline for the first audio of an attempt. Default 2000 ms.
    pub first_audio_timeout_ms: u64,
    /// Deadline between two audio chunks once streaming. Default 5000 ms.
    pub stall_timeout_ms: u64,
    /// OpenAI speech.
    pub openai: OpenAiTtsConfig,
    /// ElevenLabs.
    pub elevenlabs: ElevenLabsConfig,
    /// The local fallback (espeak-ng).
    pub local: LocalTtsConfig,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            order: vec!["elevenlabs".into(), "openai".into(), "local".into()],
            first_audio_timeout_ms: 2_000,
            stall_timeout_ms: 5_000,
            openai: OpenAiTtsConfig::default(),
            elevenlabs: ElevenLabsConfig::default(),
            local: LocalTtsConfig::default(),
        }
    }
}

/// The key from config, else from the named environment variable; `None` if neither is set.
pub(crate) fn resolve_key(inline: Option<&Secret>, env_var: &str) -> Option<Secret> {
    if let Some(key) = inline.filter(|k| !k.is_empty()) {
        return Some(key.clone());
    }
    std::env::var(env_var)
        .ok()
        .filter(|k| !k.is_empty())
        .map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_documented_defaults() {
        let cfg = PipelineConfig::from_toml("").unwrap();
        assert_eq!(cfg, PipelineConfig::default());
        assert_eq!(cfg.llm.order, ["openai", "anthropic", "groq"]);
        assert_eq!(cfg.breaker.failure_threshold, 3);
    }

    #[test]
    fn with_no_vendor_keys_the_speech_stages_end_with_the_local_engines() {
        let cfg = PipelineConfig::from_toml("").unwrap();
        assert_eq!(cfg.stt.order.last().map(String::as_str), Some("local"));
        assert_eq!(cfg.tts.order.last().map(String::as_str), Some("local"));
        assert!(cfg.stt.local.enabled && cfg.tts.local.enabled);
        let tuned = PipelineConfig::from_toml(
            "[tts.local]\nvoice = \"en-gb\"\n[tts.local.engine]\nchunk_ms = 40\n\
             [stt.local.recognizer]\nlanguage_model = \"stock\"\n",
        )
        .unwrap();
        assert_eq!(tuned.tts.local.voice, "en-gb");
        assert_eq!(tuned.tts.local.engine.chunk_ms, 40);
        assert_eq!(
            tuned.stt.local.recognizer.language_model,
            local_voice::sphinx::LanguageModel::Stock
        );
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        let err = PipelineConfig::from_toml("[llm.anthropic]\nmodle = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("llm.anthropic"), "{err}");
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let cfg =
            PipelineConfig::from_toml("[tts.openai]\napi_key = \"sk-very-secret\"\n").unwrap();
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
        assert_eq!(
            cfg.tts.openai.api_key.as_ref().map(Secret::expose),
            Some("sk-very-secret")
        );
    }
}
