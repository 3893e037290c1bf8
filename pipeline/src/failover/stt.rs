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

use super::policy::ProviderState;
use super::stage::{self, Attempts, Stage, Step};
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
            stage: Arc::new(Stage::new(providers, |p| p.name(), breaker)),
            final_timeout,
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

struct Attempt {
    events: SttStream,
    audio_tx: Option<mpsc::UnboundedSender<Bytes>>,
}

/// The recogniser's part of the failover loop: the caller's audio is read here, forwarded to
/// the provider in use and kept since the last final transcript for the next one.
struct SttAttempts {
    final_timeout: Duration,
    source: Option<AudioStream>,
    /// Audio since the last final transcript, for replay.
    replay: Vec<Bytes>,
}

enum Event {
    Audio(Option<Bytes>),
    Transcript(Option<Result<SttEvent, PipelineError>>),
    TimedOut,
}

impl Attempts for SttAttempts {
    type Provider = dyn SttProvider;
    type Attempt = Attempt;
    type Item = SttEvent;
    const STAGE: &'static str = "stt";
    const RESUMES_MID_STREAM: bool = true;

    fn start(&mut self, provider: &Self::Provider) -> Attempt {
        let (tx, rx) = mpsc::unbounded_channel();
        let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        let audio = stream::iter(self.replay.clone()).chain(live).boxed();
        let events = provider.transcribe(audio);
        // Once the caller's audio has ended, the new provider's input ends after the replay.
        let audio_tx = self.source.is_some().then_some(tx);
        Attempt { events, audio_tx }
    }

    async fn step(&mut self, attempt: &mut Attempt, provider: &Self::Provider) -> Step<SttEvent> {
        let source = &mut self.source;
        let source_open = source.is_some();
        let timeout = self.final_timeout;
        let event = tokio::select! {
            chunk = async move {
                match source {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            }, if source_open => Event::Audio(chunk),
            event = async {
                if source_open {
                    Some(attempt.events.next().await)
                } else {
                    tokio::time::timeout(timeout, attempt.events.next()).await.ok()
                }
            } => event.map_or(Event::TimedOut, Event::Transcript),
        };
        match event {
            Event::Audio(Some(chunk)) => {
                self.replay.push(chunk.clone());
                if let Some(tx) = &attempt.audio_tx {
                    // A provider that stopped reading is noticed through its event stream.
                    let _ = tx.send(chunk);
                }
                Step::Again
            }
            Event::Audio(None) => {
                self.source = None;
                attempt.audio_tx = None; // ends the provider's input
                Step::Again
            }
            Event::Transcript(Some(Ok(event @ SttEvent::Final(_)))) => {
                self.replay.clear();
                Step::YieldHealthy(event)
            }
            Event::Transcript(Some(Ok(event))) => Step::Yield(event),
            Event::Transcript(None) => Step::Done { healthy: false },
            Event::Transcript(Some(Err(error))) => Step::Failed(error),
            Event::TimedOut => Step::Failed(PipelineError::Timeout {
                provider: provider.name().to_owned(),
                streamed: false,
                what: "final transcript",
                after: timeout,
            }),
        }
    }

    fn streamed(&self, _attempt: &Attempt) -> bool {
        // The next provider hears the utterance from its start, so it can always take over.
        false
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
        let attempts = SttAttempts {
            final_timeout: self.final_timeout,
            source: Some(audio),
            replay: Vec::new(),
        };
        stage::run(self.stage.clone(), attempts)
    }
}
