//! What a gateway in this process needs to talk: the shared Silero model, the providers (with
//! the in-tree mock as the language model when no vendor key is configured), and the turn
//! latency metrics served at `/metrics`.

use std::sync::Arc;

use anyhow::Context as _;
use pipeline::{
    config::PipelineConfig,
    latency::LatencyMetrics,
    mock::{MockConfig, MockServer},
    session::Providers,
};

/// The voice side of a gateway node, ready to install on it.
pub(crate) struct Voice {
    pub(crate) sessions: gateway::VoiceSessionFactory,
    /// The provider chains the sessions use, shared with the gateway's HTTP endpoints.
    pub(crate) providers: Providers,
    pub(crate) metrics: prometheus_client::registry::Registry,
    /// The in-process mock language model, when no vendor key is configured; it serves while
    /// this is kept.
    pub(crate) mock_llm: Option<MockServer>,
}

impl Voice {
    pub(crate) async fn start(
        runtime: &media::RuntimePaths,
        pipeline: &PipelineConfig,
        voice: &gateway::VoiceConfig,
    ) -> anyhow::Result<Self> {
        let vad = media::SileroModel::load(runtime).context("loading the Silero VAD model")?;

        let mut mock_llm = None;
        let mut llm =
            pipeline::failover::build_llm(pipeline).context("building the LLM providers")?;
        if llm.provider_states().is_empty() {
            let mock = MockServer::start(MockConfig::default())
                .await
                .context("starting the in-tree mock LLM")?;
            tracing::warn!(
                url = %mock.openai_base_url(),
                "no LLM provider has an API key: the companion answers with the in-tree mock \
                 provider (set OPENAI_API_KEY, ANTHROPIC_API_KEY or GROQ_API_KEY for a real model)"
            );
            let mut with_mock = PipelineConfig {
                llm: mock.pipeline_config().llm,
                ..pipeline.clone()
            };
            with_mock.llm.order = vec!["openai".to_owned()];
            llm = pipeline::failover::build_llm(&with_mock).context("building the mock LLM")?;
            mock_llm = Some(mock);
        }
        let providers = Providers {
            stt: Arc::new(pipeline::failover::build_stt(pipeline).context("building STT")?),
            llm: Arc::new(llm),
            tts: Arc::new(pipeline::failover::build_tts(pipeline).context("building TTS")?),
        };

        let metrics = LatencyMetrics::new();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let sessions = gateway::VoiceSessionFactory::new(voice.clone(), providers.clone(), vad)
            .context("starting the voice pipeline")?
            .with_metrics(metrics);
        Ok(Self {
            sessions,
            providers,
            metrics: registry,
            mock_llm,
        })
    }
}
