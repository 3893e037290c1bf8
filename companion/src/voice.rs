//! What a gateway in this process needs to talk: the shared Silero model, the providers (with
//! the in-tree mock as the language model when no vendor key is configured), and the turn
//! latency metrics served at `/metrics`.

use anyhow::Context as _;
use pipeline::{
    config::PipelineConfig,
    latency::LatencyMetrics,
    mock::{MockConfig, MockServer},
};

/// The voice side of a gateway node, ready to install on it.
pub(crate) struct Voice {
    pub(crate) sessions: gateway::VoiceSessionFactory,
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

        let mut pipeline = pipeline.clone();
        let mut mock_llm = None;
        let llm = pipeline::failover::build_llm(&pipeline).context("building the LLM providers")?;
        if llm.provider_states().is_empty() {
            let mock = MockServer::start(MockConfig::default())
                .await
                .context("starting the in-tree mock LLM")?;
            tracing::warn!(
                url = %mock.openai_base_url(),
                "no LLM provider has an API key: the companion answers with the in-tree mock \
                 provider (set OPENAI_API_KEY, ANTHROPIC_API_KEY or GROQ_API_KEY for a real model)"
            );
            pipeline.llm = mock.pipeline_config().llm;
            pipeline.llm.order = vec!["openai".to_owned()];
            mock_llm = Some(mock);
        }

        let metrics = LatencyMetrics::new();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let sessions =
            gateway::VoiceSessionFactory::from_pipeline_config(voice.clone(), &pipeline, vad)
                .context("starting the voice pipeline")?
                .with_metrics(metrics);
        Ok(Self {
            sessions,
            metrics: registry,
            mock_llm,
        })
    }
}
