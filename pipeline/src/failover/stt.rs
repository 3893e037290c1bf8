//! The async failover shell for the speech-to-text stage.
//!
//! The caller's audio can be read only once, so the shell keeps the audio of the utterance
//! in progress (cheap `Bytes` clones, cleared at each final transcript) and replays it to the
//! next provider when one fails before its final transcript.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use tokio::sync::mpsc;

use super::llm::{Stage, now};
use super::policy::{Admission, ProviderState};
use crate::PipelineError;
use crate::config::BreakerConfig;
use crate::provider::{AudioStream, ServedModel, SttEvent, SttProvider, SttStream};

/// A speech recogniser that is really an ordered list of them.
///
/// A provider failure re-sends the audio since the last final transcript to the next
/// provider; partials may then repeat, finals do not. After the caller's audio ends, each
/// provider has `final_timeout` to deliver its final transcript.
#[derive(Clone)]
pub struct FailoverStt {
    stage: Arc<Stage<dyn SttProvider>>,
    final_timeout: Duration,
}

impl FailoverStt {
    /// A failover list in preference order.
    pub fn new(
        providers: Vec<Arc<dyn SttProvider>>,
        breaker: &BreakerConfig,
        final_timeout: Duration,
    ) -> Self {
        Self {
            stage: Arc::new(Stage::new(providers, breaker)),
            final_timeout,
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

struct Attempt {
    index: usize,
    events: SttStream,
    audio_tx: Option<mpsc::UnboundedSender<Bytes>>,
    probe: bool,
}

struct Run {
    stage: Arc<Stage<dyn SttProvider>>,
    final_timeout: Duration,
    source: Option<AudioStream>,
    /// Audio since the last final transcript, for replay.
    replay: Vec<Bytes>,
    next_index: usize,
    current: Option<Attempt>,
    last_error: Option<PipelineError>,
    done: bool,
}

enum Step {
    Audio(Option<Bytes>),
    Event(Option<Result<SttEvent, PipelineError>>),
    TimedOut,
}

impl Run {
    fn start_attempt(&mut self) -> Result<(), PipelineError> {
        let Some((index, admission)) = self.stage.pick(self.next_index) else {
            let last = self.last_error.take().map(Box::new);
            return Err(PipelineError::AllProvidersFailed { stage: "stt", last });
        };
        self.next_index = index + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        let audio = stream::iter(self.replay.clone()).chain(live).boxed();
        let events = self.stage.providers[index].transcribe(audio);
        // Once the caller's audio has ended, the new provider's input ends after the replay.
        let audio_tx = self.source.is_some().then_some(tx);
        self.current = Some(Attempt {
            index,
            events,
            audio_tx,
            probe: admission == Admission::Probe,
        });
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<SttEvent, PipelineError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none()
                && let Err(e) = self.start_attempt()
            {
                self.done = true;
                return Some(Err(e));
            }
            let Some(attempt) = self.current.as_mut() else {
                continue;
            };
            let source = &mut self.source;
            let source_open = source.is_some();
            let timeout = self.final_timeout;
            let step = tokio::select! {
                chunk = async move {
                    match source {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                }, if source_open => Step::Audio(chunk),
                event = async {
                    if source_open {
                        Some(attempt.events.next().await)
                    } else {
                        tokio::time::timeout(timeout, attempt.events.next()).await.ok()
                    }
                } => event.map_or(Step::TimedOut, Step::Event),
            };
            let index = attempt.index;
            let error = match step {
                Step::Audio(Some(chunk)) => {
                    self.replay.push(chunk.clone());
                    if let Some(tx) = &attempt.audio_tx {
                        // A provider that stopped reading is noticed through its event stream.
                        let _ = tx.send(chunk);
                    }
                    continue;
                }
                Step::Audio(None) => {
                    self.source = None;
                    attempt.audio_tx = None; // ends the provider's input
                    continue;
                }
                Step::Event(Some(Ok(event))) => {
                    if matches!(event, SttEvent::Final(_)) {
                        self.replay.clear();
                        self.stage.with_policy(|p| p.record_success(index));
                    }
                    return Some(Ok(event));
                }
                Step::Event(None) => {
                    self.current = None;
                    self.done = true;
                    return None;
                }
                Step::Event(Some(Err(error))) => error,
                Step::TimedOut => PipelineError::Timeout {
                    provider: self.stage.providers[index].name().to_owned(),
                    streamed: false,
                    what: "final transcript",
                    after: timeout,
                },
            };
            self.current = None;
            self.stage
                .with_policy(|p| p.record_failure(index, now(), &error));
            tracing::warn!(provider = self.stage.providers[index].name(), %error, "stt provider failed");
            if !error.retryable() {
                self.done = true;
                return Some(Err(error));
            }
            self.last_error = Some(error);
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(attempt) = self.current.take()
            && attempt.probe
        {
            self.stage
                .with_policy(|p| p.record_abandoned(attempt.index));
        }
    }
}

impl SttProvider for FailoverStt {
    fn name(&self) -> &str {
        "stt-failover"
    }

    fn models(&self) -> Vec<ServedModel> {
        self.stage.models(|p| p.models())
    }

    fn transcribe(&self, audio: AudioStream) -> SttStream {
        let run = Run {
            stage: self.stage.clone(),
            final_timeout: self.final_timeout,
            source: Some(audio),
            replay: Vec::new(),
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
