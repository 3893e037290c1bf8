//! The in-tree mock providers (`pipeline::mock::MockServer`) wired as the tests use them: a
//! voice bridge (STT over the mock's Deepgram stream, LLM over its OpenAI-compatible API, TTS
//! over its ElevenLabs stream, the Silero VAD from `.deps`), or chat providers (every kind over
//! the OpenAI-compatible API) behind the failover chain.

use std::{path::Path, sync::Arc};

use gateway::{VoiceConfig, VoiceSessionFactory};
use media::{RuntimePaths, SileroModel};
use pipeline::{
    config::PipelineConfig,
    mock::{MockConfig, MockServer},
    session::Providers,
};

/// Starts the mock providers with `config`; fails the test if they do not start.
pub async fn mock_server(config: MockConfig) -> MockServer {
    MockServer::start(config).await.expect("mock providers")
}

/// The voice providers' configuration on `mock`: Deepgram STT, OpenAI-compatible LLM,
/// ElevenLabs TTS.
pub fn voice_config(mock: &MockServer) -> PipelineConfig {
    let mut providers = mock.pipeline_config();
    providers.stt.order = vec!["deepgram".into()];
    providers.llm.order = vec!["openai".into()];
    providers.tts.order = vec!["elevenlabs".into()];
    providers
}

/// The Silero VAD from `COMPANION_DEPS_DIR`, else the workspace's `.deps` (what
/// `scripts/bootstrap` links).
pub fn silero() -> SileroModel {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace");
    SileroModel::load(&RuntimePaths::from_env_or(root)).unwrap_or_else(|e| panic!("{e}"))
}

/// A voice bridge (`voice` settings) on the mock providers of [`voice_config`] and the
/// [`silero`] VAD.
pub fn voice_factory(mock: &MockServer, voice: VoiceConfig) -> VoiceSessionFactory {
    VoiceSessionFactory::from_pipeline_config(voice, &voice_config(mock), silero())
        .expect("the voice bridge starts")
}

/// Chat providers on `mock`: LLM, STT and TTS all over its OpenAI-compatible API, each
/// behind the failover chain.
pub fn chat_providers(mock: &MockServer) -> Providers {
    let mut pipeline = mock.pipeline_config();
    pipeline.llm.order = vec!["openai".to_owned()];
    pipeline.stt.order = vec!["openai".to_owned()];
    pipeline.tts.order = vec!["openai".to_owned()];
    Providers {
        llm: Arc::new(pipeline::failover::build_llm(&pipeline).expect("llm")),
        stt: Arc::new(pipeline::failover::build_stt(&pipeline).expect("stt")),
        tts: Arc::new(pipeline::failover::build_tts(&pipeline).expect("tts")),
    }
}
