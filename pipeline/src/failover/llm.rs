//! The async failover shell for the language-model stage.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;

use super::joiner::ContinuationJoiner;
use super::policy::{Admission, FailoverPolicy, ProviderState};
use crate::PipelineError;
use crate::config::BreakerConfig;
use crate::provider::{LlmEvent, LlmProvider, LlmRequest, LlmStream, ServedModel};

/// Providers of one stage with their shared policy.
pub(crate) struct Stage<P: ?Sized> {
    pub(crate) providers: Vec<Arc<P>>,
    pub(crate) policy: Mutex<FailoverPolicy>,
}

impl<P: ?Sized> Stage<P> {
    pub(crate) fn new(providers: Vec<Arc<P>>, breaker: &BreakerConfig) -> Self {
        let policy = Mutex::new(FailoverPolicy::new(providers.len(), breaker));
        Self { providers, policy }
    }

    pub(crate) fn with_policy<R>(&self, f: impl FnOnce(&mut FailoverPolicy) -> R) -> R {
        // The policy holds plain counters; a panic elsewhere cannot leave it inconsistent.
        f(&mut self.policy.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The first provider at or after `from` that the policy admits now.
    pub(crate) fn pick(&self, from: usize) -> Option<(usize, Admission)> {
        let now = now();
        self.with_policy(|p| {
            (from..self.providers.len()).find_map(|i| p.admit(i, now).map(|a| (i, a)))
        })
    }

    /// Provider names in order; `name` reads one (each stage's trait has its own `name`).
    pub(crate) fn names(&self, name: impl Fn(&P) -> &str) -> Vec<String> {
        self.providers.iter().map(|p| name(p).to_owned()).collect()
    }

    pub(crate) fn models(&self, models: impl Fn(&P) -> Vec<ServedModel>) -> Vec<ServedModel> {
        self.providers.iter().flat_map(|p| models(p)).collect()
    }

    pub(crate) fn states(&self) -> Vec<ProviderState> {
        let now = now();
        self.with_policy(|p| (0..p.len()).filter_map(|i| p.state(i, now)).collect())
    }
}

/// The current time on tokio's clock (so paused-time tests drive the breaker).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A language model that is really an ordered list of them.
///
/// - A provider is skipped while its breaker is open or it is throttled (see [`FailoverPolicy`]).
/// - A failure before the first token (error status, connect failure, no token within
///   `first_token_timeout`) moves on to the next provider invisibly.
/// - A failure after tokens were streamed (cut, error event, no token within `stall_timeout`)
///   moves on too: the next provider gets the partial answer as an assistant prefix and only
///   the new part is streamed, with repeats stripped.
/// - Each provider is tried at most once per request; when none is left the stream ends with
///   [`PipelineError::AllProvidersFailed`] carrying the last error.
#[derive(Clone)]
pub struct FailoverLlm {
    stage: Arc<Stage<dyn LlmProvider>>,
    first_token_timeout: Duration,
    stall_timeout: Duration,
}

impl FailoverLlm {
    /// A failover list in preference order.
    pub fn new(
        providers: Vec<Arc<dyn LlmProvider>>,
        breaker: &BreakerConfig,
        first_token_timeout: Duration,
        stall_timeout: Duration,
    ) -> Self {
        Self {
            stage: Arc::new(Stage::new(providers, breaker)),
            first_token_timeout,
            stall_timeout,
        }
    }

    /// Provider names in order.
    pub fn provider_names(&self) -> Vec<String> {
        self.stage.names(|p| p.name())
    }

    /// Each provider's state now, in order (for readiness and metrics).
    pub fn provider_states(&self) -> Vec<ProviderState> {
        self.stage.states()
    }

    /// Warms every provider's connection concurrently; failures are logged, not returned.
    pub async fn warm_up_all(&self) {
        let warmups = self.stage.providers.iter().map(|p| async move {
            if let Err(error) = p.warm_up().await {
                tracing::warn!(provider = p.name(), %error, "warm-up failed");
            }
        });
        futures_util::future::join_all(warmups).await;
    }
}

impl LlmProvider for FailoverLlm {
    fn name(&self) -> &str {
        "llm-failover"
    }

    fn models(&self) -> Vec<ServedModel> {
        self.stage.models(|p| p.models())
    }

    fn stream(&self, request: LlmRequest) -> LlmStream {
        let run = Run {
            stage: self.stage.clone(),
            request,
            first_token_timeout: self.first_token_timeout,
            stall_timeout: self.stall_timeout,
            next_index: 0,
            current: None,
            said: String::new(),
            joiner: None,
            pending: VecDeque::new(),
            last_error: None,
            done: false,
        };
        stream::unfold(run, |mut run| async move {
            run.next().await.map(|item| (item, run))
        })
        .boxed()
    }

    fn warm_up(&self) -> futures_util::future::BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async move {
            self.warm_up_all().await;
            Ok(())
        })
    }
}

struct Attempt {
    index: usize,
    stream: LlmStream,
    got_token: bool,
    probe: bool,
}

struct Run {
    stage: Arc<Stage<dyn LlmProvider>>,
    request: LlmRequest,
    first_token_timeout: Duration,
    stall_timeout: Duration,
    next_index: usize,
    current: Option<Attempt>,
    /// Everything handed to the caller so far.
    said: String,
    joiner: Option<ContinuationJoiner>,
    pending: VecDeque<LlmEvent>,
    last_error: Option<PipelineError>,
    done: bool,
}

impl Run {
    async fn next(&mut self) -> Option<Result<LlmEvent, PipelineError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some((index, admission)) = self.stage.pick(self.next_index) else {
                    self.done = true;
                    let last = self.last_error.take().map(Box::new);
                    return Some(Err(PipelineError::AllProvidersFailed {
                        stage: "llm",
                        last,
                    }));
                };
                self.next_index = index + 1;
                let mut request = self.request.clone();
                if !self.said.is_empty() {
                    let mut prefix = request.assistant_prefix.take().unwrap_or_default();
                    prefix.push_str(&self.said);
                    request.assistant_prefix = Some(prefix);
                    self.joiner = Some(ContinuationJoiner::new(&self.said));
                }
                let provider = &self.stage.providers[index];
                tracing::debug!(
                    provider = provider.name(),
                    resumed = !self.said.is_empty(),
                    "llm attempt"
                );
                self.current = Some(Attempt {
                    index,
                    stream: provider.stream(request),
                    got_token: false,
                    probe: admission == Admission::Probe,
                });
            }
            let Some(attempt) = self.current.as_mut() else {
                continue;
            };
            let (limit, what) = if attempt.got_token {
                (self.stall_timeout, "next token")
            } else {
                (self.first_token_timeout, "first token")
            };
            let outcome = tokio::time::timeout(limit, attempt.stream.next()).await;
            let error = match outcome {
                Ok(Some(Ok(LlmEvent::Token(text)))) => {
                    attempt.got_token = true;
                    let out = match self.joiner.as_mut() {
                        Some(joiner) => joiner.push(&text),
                        None => Some(text).filter(|t| !t.is_empty()),
                    };
                    if let Some(text) = out {
                        self.said.push_str(&text);
                        return Some(Ok(LlmEvent::Token(text)));
                    }
                    continue;
                }
                Ok(Some(Ok(finished @ LlmEvent::Finished { .. }))) => {
                    let index = attempt.index;
                    if let Some(done) = self.current.take() {
                        // Let the provider stream read its response to the end off the
                        // caller's path, so the connection is reused for the next turn.
                        tokio::spawn(async move {
                            let mut stream = done.stream;
                            while stream.next().await.is_some() {}
                        });
                    }
                    self.done = true;
                    self.stage.with_policy(|p| p.record_success(index));
                    if let Some(rest) = self.joiner.as_mut().and_then(ContinuationJoiner::finish) {
                        self.said.push_str(&rest);
                        self.pending.push_back(LlmEvent::Token(rest));
                    }
                    self.pending.push_back(finished);
                    continue;
                }
                Ok(Some(Err(error))) => error,
                Ok(None) => PipelineError::StreamCut {
                    provider: self.stage.providers[attempt.index].name().to_owned(),
                    streamed: attempt.got_token,
                    message: "stream ended without a finish event".into(),
                },
                Err(_elapsed) => PipelineError::Timeout {
                    provider: self.stage.providers[attempt.index].name().to_owned(),
                    streamed: attempt.got_token,
                    what,
                    after: limit,
                },
            };
            let index = attempt.index;
            // Dropping the attempt's stream cancels its request.
            self.current = None;
            self.stage
                .with_policy(|p| p.record_failure(index, now(), &error));
            tracing::warn!(
                provider = self.stage.providers[index].name(),
                %error,
                streamed = !self.said.is_empty(),
                "llm provider failed; trying the next one"
            );
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
