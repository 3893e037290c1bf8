//! Building each stage's failover list from [`PipelineConfig`].
//!
//! A provider that is disabled or has no API key is left out with an `info`/`warn` log line
//! that names it and the environment variable it looked at (never the key). The `local`
//! speech providers need no key: they are built here (engine started, models loaded), and a
//! missing engine is a [`PipelineError::Config`] naming the package to install.

use std::sync::Arc;
use std::time::Duration;

use super::{FailoverLlm, FailoverStt, FailoverTts};
use crate::PipelineError;
use crate::config::{OpenAiChatConfig, PipelineConfig, Secret, resolve_key};
use crate::llm::{AnthropicChat, OpenAiChat};
use crate::provider::{LlmProvider, SttProvider, TtsProvider};
use crate::stt::{DeepgramStt, LocalStt, OpenAiStt};
use crate::tts::{ElevenLabsTts, LocalTts, OpenAiTts};

/// Vendor defaults for an OpenAI-compatible slot: (base URL, model, key variable, needs key).
fn chat_slot(name: &str) -> Option<(&'static str, &'static str, &'static str, bool)> {
    match name {
        "openai" => Some((
            "https://api.openai.com/v1",
            "gpt-4o-mini",
            "OPENAI_API_KEY",
            true,
        )),
        "groq" => Some((
            "https://api.groq.com/openai/v1",
            "llama-3.1-8b-instant",
            "GROQ_API_KEY",
            true,
        )),
        "local" => Some((
            "http://127.0.0.1:8080/v1",
            "local",
            "LOCAL_LLM_API_KEY",
            false,
        )),
        _ => None,
    }
}

fn key_or_log(stage: &str, provider: &str, inline: Option<&Secret>, env: &str) -> Option<Secret> {
    let key = resolve_key(inline, env);
    if key.is_none() {
        tracing::warn!(
            stage,
            provider,
            env,
            "provider disabled: no API key (set the variable or `api_key`)"
        );
    }
    key
}

fn disabled(stage: &str, provider: &str) {
    tracing::info!(stage, provider, "provider disabled in config");
}

fn unknown(key: &str, name: &str, known: &str) -> PipelineError {
    PipelineError::Config {
        key: key.into(),
        message: format!("unknown provider {name:?} (known: {known})"),
    }
}

fn openai_compatible(
    name: &str,
    c: &OpenAiChatConfig,
    config: &PipelineConfig,
) -> Option<Arc<dyn LlmProvider>> {
    let (url, model, env, needs_key) = chat_slot(name)?;
    if !c.enabled.unwrap_or(name != "local") {
        disabled("llm", name);
        return None;
    }
    let env = c.api_key_env.as_deref().unwrap_or(env);
    let key = if needs_key {
        Some(key_or_log("llm", name, c.api_key.as_ref(), env)?)
    } else {
        resolve_key(c.api_key.as_ref(), env)
    };
    Some(Arc::new(OpenAiChat::new(
        name,
        c.base_url.as_deref().unwrap_or(url),
        c.model.as_deref().unwrap_or(model),
        key,
        c.max_tokens.unwrap_or(512),
        &config.http,
    )))
}

/// The language-model stage in `llm.order`, without disabled or keyless providers.
pub fn build_llm(config: &PipelineConfig) -> Result<FailoverLlm, PipelineError> {
    let llm = &config.llm;
    let mut providers: Vec<Arc<dyn LlmProvider>> = Vec::new();
    for name in &llm.order {
        let provider = match name.as_str() {
            "openai" => openai_compatible(name, &llm.openai, config),
            "groq" => openai_compatible(name, &llm.groq, config),
            "local" => openai_compatible(name, &llm.local, config),
            "anthropic" => {
                let c = &llm.anthropic;
                if c.enabled {
                    key_or_log("llm", name, c.api_key.as_ref(), &c.api_key_env).map(|key| {
                        Arc::new(AnthropicChat::new(name.as_str(), c, key, &config.http))
                            as Arc<dyn LlmProvider>
                    })
                } else {
                    disabled("llm", name);
                    None
                }
            }
            other => {
                return Err(unknown(
                    "llm.order",
                    other,
                    "openai, anthropic, groq, local",
                ));
            }
        };
        providers.extend(provider);
    }
    if providers.is_empty() {
        tracing::warn!("llm stage has no usable provider; every answer will fail");
    }
    Ok(FailoverLlm::new(
        providers,
        &config.breaker,
        Duration::from_millis(llm.first_token_timeout_ms),
        Duration::from_millis(llm.stall_timeout_ms),
    ))
}

/// The speech-to-text stage in `stt.order`.
pub fn build_stt(config: &PipelineConfig) -> Result<FailoverStt, PipelineError> {
    let stt = &config.stt;
    let mut providers: Vec<Arc<dyn SttProvider>> = Vec::new();
    for name in &stt.order {
        let provider: Option<Arc<dyn SttProvider>> = match name.as_str() {
            "openai" if !stt.openai.enabled => {
                disabled("stt", name);
                None
            }
            "openai" => key_or_log(
                "stt",
                name,
                stt.openai.api_key.as_ref(),
                &stt.openai.api_key_env,
            )
            .map(|key| {
                Arc::new(OpenAiStt::new(
                    name.as_str(),
                    &stt.openai,
                    key,
                    &config.http,
                )) as _
            }),
            "deepgram" if !stt.deepgram.enabled => {
                disabled("stt", name);
                None
            }
            "deepgram" => key_or_log(
                "stt",
                name,
                stt.deepgram.api_key.as_ref(),
                &stt.deepgram.api_key_env,
            )
            .map(|key| Arc::new(DeepgramStt::new(name.as_str(), &stt.deepgram, key)) as _),
            "local" if !stt.local.enabled => {
                disabled("stt", name);
                None
            }
            "local" => Some(Arc::new(LocalStt::new(&stt.local)?) as _),
            other => return Err(unknown("stt.order", other, "deepgram, openai, local")),
        };
        providers.extend(provider);
    }
    Ok(FailoverStt::new(
        providers,
        &config.breaker,
        Duration::from_millis(stt.final_timeout_ms),
    ))
}

/// The text-to-speech stage in `tts.order`.
pub fn build_tts(config: &PipelineConfig) -> Result<FailoverTts, PipelineError> {
    let tts = &config.tts;
    let mut providers: Vec<Arc<dyn TtsProvider>> = Vec::new();
    for name in &tts.order {
        let provider: Option<Arc<dyn TtsProvider>> = match name.as_str() {
            "openai" if !tts.openai.enabled => {
                disabled("tts", name);
                None
            }
            "openai" => key_or_log(
                "tts",
                name,
                tts.openai.api_key.as_ref(),
                &tts.openai.api_key_env,
            )
            .map(|key| {
                Arc::new(OpenAiTts::new(
                    name.as_str(),
                    &tts.openai,
                    key,
                    &config.http,
                )) as _
            }),
            "elevenlabs" if !tts.elevenlabs.enabled => {
                disabled("tts", name);
                None
            }
            "elevenlabs" => {
                if ![16_000, 22_050, 24_000, 44_100].contains(&tts.elevenlabs.sample_rate) {
                    return Err(PipelineError::Config {
                        key: "tts.elevenlabs.sample_rate".into(),
                        message: "must be 16000, 22050, 24000 or 44100".into(),
                    });
                }
                key_or_log(
                    "tts",
                    name,
                    tts.elevenlabs.api_key.as_ref(),
                    &tts.elevenlabs.api_key_env,
                )
                .map(|key| {
                    Arc::new(ElevenLabsTts::new(
                        name.as_str(),
                        &tts.elevenlabs,
                        key,
                        &config.http,
                    )) as _
                })
            }
            "local" if !tts.local.enabled => {
                disabled("tts", name);
                None
            }
            "local" => Some(Arc::new(LocalTts::new(&tts.local)?) as _),
            other => return Err(unknown("tts.order", other, "elevenlabs, openai, local")),
        };
        providers.extend(provider);
    }
    Ok(FailoverTts::new(
        providers,
        &config.breaker,
        Duration::from_millis(tts.first_audio_timeout_ms),
        Duration::from_millis(tts.stall_timeout_ms),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ServedModel;

    #[test]
    fn a_stage_lists_the_models_of_its_providers_in_failover_order() {
        let key = Some(Secret::new("test-key"));
        let mut c = PipelineConfig::default();
        c.llm.order = vec!["groq".into(), "anthropic".into()];
        c.llm.groq.api_key = key.clone();
        c.llm.anthropic.api_key = key.clone();
        c.stt.order = vec!["openai".into(), "deepgram".into()];
        c.stt.openai.api_key = key.clone();
        c.stt.deepgram.api_key = key.clone();
        c.tts.order = vec!["elevenlabs".into()];
        c.tts.elevenlabs.api_key = key;

        let llm = build_llm(&c).unwrap();
        assert_eq!(
            llm.models(),
            [
                ServedModel::new("llama-3.1-8b-instant", "groq"),
                ServedModel::new("claude-3-5-haiku-latest", "anthropic"),
            ]
        );
        let stt = build_stt(&c).unwrap();
        assert_eq!(
            stt.models(),
            [
                ServedModel::new("gpt-4o-mini-transcribe", "openai"),
                ServedModel::new("nova-3", "deepgram"),
            ]
        );
        let tts = build_tts(&c).unwrap();
        assert_eq!(
            tts.models(),
            [ServedModel::new("eleven_flash_v2_5", "elevenlabs")]
        );
    }
}
