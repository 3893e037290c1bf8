//! The async failover shell for the text-to-speech stage.

use std::sync::Arc;
use std::time::Duration;

use super::policy::ProviderState;
use super::stage::{self, Attempts, Stage, Step};
use super::timed::{Deadlines, Timed};
use crate::PipelineError;
use crate::config::BreakerConfig;
use crate::provider::{ServedModel, TtsChunk, TtsProvider, TtsRequest, TtsStream};

/// A speech synthesiser that is really an ordered list of them.
///
/// A failure before the first audio (including no audio within `first_audio_timeout`) moves
/// on to the next provider invisibly. A failure after audio was streamed is returned to the
/// caller (`streamed() == true`): splicing two voices mid-sentence would sound worse than
/// re-synthesising the chunk, which the caller can decide to do.
#[derive(Clone)]
pub struct FailoverTts {
    stage: Arc<Stage<dyn TtsProvider>>,
    deadlines: Deadlines,
}

impl FailoverTts {
    /// A failover list in preference order.
    pub fn new(
        providers: Vec<Arc<dyn TtsProvider>>,
        breaker: &BreakerConfig,
        first_audio_timeout: Duration,
        stall_timeout: Duration,
    ) -> Self {
        Self {
            stage: Arc::new(Stage::new(providers, |p| p.name(), breaker)),
            deadlines: Deadlines {
                first: (first_audio_timeout, "first audio"),
                next: (stall_timeout, "next audio"),
            },
        }
    }

    /// Provider names in order.
    pub fn provider_names(&self) -> Vec<String> {
        self.stage.names()
    }

    /// Each provider's state now, in order.
    pub fn provider_states(&self) -> Vec<ProviderState> {
        self.stage.states()
    }
}

/// The synthesiser's part of the failover loop.
struct TtsAttempts {
    request: TtsRequest,
    deadlines: Deadlines,
}

impl Attempts for TtsAttempts {
    type Provider = dyn TtsProvider;
    type Attempt = Timed<TtsChunk>;
    type Item = TtsChunk;
    const STAGE: &'static str = "tts";
    const RESUMES_MID_STREAM: bool = false;

    fn start(&mut self, provider: &Self::Provider) -> Timed<TtsChunk> {
        Timed::new(provider.synthesize(self.request.clone()))
    }

    async fn step(
        &mut self,
        attempt: &mut Timed<TtsChunk>,
        provider: &Self::Provider,
    ) -> Step<TtsChunk> {
        match attempt.next(self.deadlines, provider.name()).await {
            Ok(Some(chunk)) => {
                attempt.started |= !chunk.pcm.is_empty();
                Step::Yield(chunk)
            }
            Ok(None) if attempt.started => Step::Done { healthy: true },
            Ok(None) => Step::Failed(PipelineError::Protocol {
                provider: provider.name().to_owned(),
                streamed: false,
                message: "no audio".into(),
            }),
            Err(error) => Step::Failed(error),
        }
    }

    fn streamed(&self, attempt: &Timed<TtsChunk>) -> bool {
        attempt.started
    }
}

impl TtsProvider for FailoverTts {
    fn name(&self) -> &str {
        "tts-failover"
    }

    fn models(&self) -> Vec<ServedModel> {
        self.stage.models(|p| p.models())
    }

    fn synthesize(&self, request: TtsRequest) -> TtsStream {
        let attempts = TtsAttempts {
            request,
            deadlines: self.deadlines,
        };
        stage::run(self.stage.clone(), attempts)
    }
}
