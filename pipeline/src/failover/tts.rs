//! The async failover shell for the text-to-speech stage.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;

use super::llm::{Stage, now};
use super::policy::{Admission, ProviderState};
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
    first_audio_timeout: Duration,
    stall_timeout: Duration,
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
            stage: Arc::new(Stage::new(providers, breaker)),
            first_audio_timeout,
            stall_timeout,
        }
    }

    /// Provider names in order.
    pub fn provider_names(&self) -> Vec<String> {
        self.stage.names(|p| p.name())
    }

    /// Each provider's state now, in order.
    pub fn provider_states(&self) -> Vec<ProviderState> {
        self.stage.states()
    }
}

struct Run {
    stage: Arc<Stage<dyn TtsProvider>>,
    request: TtsRequest,
    first_audio_timeout: Duration,
    stall_timeout: Duration,
    next_index: usize,
    current: Option<(usize, TtsStream, bool, bool)>,
    last_error: Option<PipelineError>,
    done: bool,
}

impl Run {
    async fn next(&mut self) -> Option<Result<TtsChunk, PipelineError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some((index, admission)) = self.stage.pick(self.next_index) else {
                    self.done = true;
                    let last = self.last_error.take().map(Box::new);
                    return Some(Err(PipelineError::AllProvidersFailed {
                        stage: "tts",
                        last,
                    }));
                };
                self.next_index = index + 1;
                let stream = self.stage.providers[index].synthesize(self.request.clone());
                self.current = Some((index, stream, false, admission == Admission::Probe));
            }
            let Some((index, stream, got_audio, _)) = self.current.as_mut() else {
                continue;
            };
            let index = *index;
            let (limit, what) = if *got_audio {
                (self.stall_timeout, "next audio")
            } else {
                (self.first_audio_timeout, "first audio")
            };
            let error = match tokio::time::timeout(limit, stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    *got_audio |= !chunk.pcm.is_empty();
                    return Some(Ok(chunk));
                }
                Ok(None) if *got_audio => {
                    self.current = None;
                    self.done = true;
                    self.stage.with_policy(|p| p.record_success(index));
                    return None;
                }
                Ok(None) => PipelineError::Protocol {
                    provider: self.stage.providers[index].name().to_owned(),
                    streamed: false,
                    message: "no audio".into(),
                },
                Ok(Some(Err(error))) => error,
                Err(_elapsed) => PipelineError::Timeout {
                    provider: self.stage.providers[index].name().to_owned(),
                    streamed: *got_audio,
                    what,
                    after: limit,
                },
            };
            let streamed = *got_audio;
            self.current = None;
            self.stage
                .with_policy(|p| p.record_failure(index, now(), &error));
            tracing::warn!(provider = self.stage.providers[index].name(), %error, streamed, "tts provider failed");
            if streamed || !error.retryable() {
                self.done = true;
                return Some(Err(error.with_streamed(streamed)));
            }
            self.last_error = Some(error);
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some((index, _, _, true)) = self.current.take() {
            self.stage.with_policy(|p| p.record_abandoned(index));
        }
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
        let run = Run {
            stage: self.stage.clone(),
            request,
            first_audio_timeout: self.first_audio_timeout,
            stall_timeout: self.stall_timeout,
            next_index: 0,
            current: None,
            last_error: None,
            done: false,
        };
        stream::unfold(run, |mut run| async move {
            run.next().await.map(|item| (item, run))
        })
        .boxed()
    }
}
