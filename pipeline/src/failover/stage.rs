//! What the three failover shells share: a stage's providers with their policy, and the one
//! loop that tries them in order.
//!
//! The loop owns the order, the breakers (admission, success, failure, abandoned probes) and
//! the choice of what is worth another provider; each stage says only how to start a request
//! to a provider and how to take one step of it ([`Attempts`]).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};

use super::policy::{Admission, FailoverPolicy, ProviderState};
use crate::PipelineError;
use crate::config::BreakerConfig;
use crate::provider::ServedModel;

/// Providers of one stage with their shared policy.
pub(crate) struct Stage<P: ?Sized> {
    pub(crate) providers: Vec<Arc<P>>,
    /// The providers' names, in order.
    names: Vec<String>,
    policy: Mutex<FailoverPolicy>,
}

impl<P: ?Sized> Stage<P> {
    /// `name` reads a provider's name (each stage's trait has its own `name`).
    pub(crate) fn new(
        providers: Vec<Arc<P>>,
        name: impl Fn(&P) -> &str,
        breaker: &BreakerConfig,
    ) -> Self {
        let names = providers.iter().map(|p| name(p).to_owned()).collect();
        let policy = Mutex::new(FailoverPolicy::new(providers.len(), breaker));
        Self {
            providers,
            names,
            policy,
        }
    }

    fn with_policy<R>(&self, f: impl FnOnce(&mut FailoverPolicy) -> R) -> R {
        // The policy holds plain counters; a panic elsewhere cannot leave it inconsistent.
        f(&mut self.policy.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The first provider at or after `from` that the policy admits now.
    fn pick(&self, from: usize) -> Option<(usize, Admission)> {
        let now = now();
        self.with_policy(|p| {
            (from..self.providers.len()).find_map(|i| p.admit(i, now).map(|a| (i, a)))
        })
    }

    /// Provider names in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names.clone()
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
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// What one step of an attempt came to.
pub(crate) enum Step<T> {
    /// Hand this to the caller; the attempt goes on.
    Yield(T),
    /// Hand this to the caller and count the provider healthy (a unit of its work is
    /// complete, such as a final transcript); the attempt goes on.
    YieldHealthy(T),
    /// Nothing for the caller yet; step the attempt again.
    Again,
    /// The request is over; `healthy` counts it as the provider's success. What
    /// [`Attempts::pending`] still holds is handed on, then the stream ends.
    Done {
        /// Whether the provider is recorded as healthy.
        healthy: bool,
    },
    /// The attempt failed: the loop records it and moves on to the next provider, or gives up.
    Failed(PipelineError),
}

/// One stage's part of the failover loop.
pub(crate) trait Attempts: Send + 'static {
    /// The stage's provider trait object.
    type Provider: ?Sized + Send + Sync + 'static;
    /// One request in flight to one provider.
    type Attempt: Send + 'static;
    /// What the stage streams to its caller.
    type Item: Send + 'static;
    /// The stage's name in [`PipelineError::AllProvidersFailed`] and logs.
    const STAGE: &'static str;
    /// Whether a provider failing after output reached the caller may still hand over to the
    /// next one (the language model resumes the answer, the recogniser replays the audio);
    /// if not, that failure is the caller's to handle.
    const RESUMES_MID_STREAM: bool;

    /// Sends the request to `provider`.
    fn start(&mut self, provider: &Self::Provider) -> Self::Attempt;

    /// Waits for the attempt's next event.
    fn step<'a>(
        &'a mut self,
        attempt: &'a mut Self::Attempt,
        provider: &'a Self::Provider,
    ) -> impl Future<Output = Step<Self::Item>> + Send + 'a;

    /// Whether output already reached the caller when `attempt` failed.
    fn streamed(&self, attempt: &Self::Attempt) -> bool;

    /// Output held back to be handed on before anything else (checked before each step).
    fn pending(&mut self) -> Option<Self::Item> {
        None
    }
}

struct Current<T> {
    index: usize,
    attempt: T,
    /// The half-open breaker's trial request: if it is dropped unfinished, say so.
    probe: bool,
}

struct Run<A: Attempts> {
    stage: Arc<Stage<A::Provider>>,
    attempts: A,
    next_index: usize,
    current: Option<Current<A::Attempt>>,
    last_error: Option<PipelineError>,
    done: bool,
}

/// The stage's stream for one request: providers tried in order, each at most once.
///
/// A provider is skipped while the policy does not admit it. A failure is recorded against
/// the provider and, if [`PipelineError::retryable`] (and, for stages that cannot resume, no
/// output reached the caller yet), the next provider is tried; when none is left the stream
/// ends with [`PipelineError::AllProvidersFailed`] carrying the last error.
pub(crate) fn run<A: Attempts>(
    stage: Arc<Stage<A::Provider>>,
    attempts: A,
) -> BoxStream<'static, Result<A::Item, PipelineError>> {
    let run = Run {
        stage,
        attempts,
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

impl<A: Attempts> Run<A> {
    async fn next(&mut self) -> Option<Result<A::Item, PipelineError>> {
        loop {
            if let Some(item) = self.attempts.pending() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let Some((index, admission)) = self.stage.pick(self.next_index) else {
                    self.done = true;
                    let last = self.last_error.take().map(Box::new);
                    return Some(Err(PipelineError::AllProvidersFailed {
                        stage: A::STAGE,
                        last,
                    }));
                };
                self.next_index = index + 1;
                let attempt = self.attempts.start(&self.stage.providers[index]);
                self.current = Some(Current {
                    index,
                    attempt,
                    probe: admission == Admission::Probe,
                });
            }
            let Some(current) = self.current.as_mut() else {
                continue;
            };
            let index = current.index;
            let provider = &*self.stage.providers[index];
            let error = match self.attempts.step(&mut current.attempt, provider).await {
                Step::Yield(item) => return Some(Ok(item)),
                Step::YieldHealthy(item) => {
                    self.stage.with_policy(|p| p.record_success(index));
                    return Some(Ok(item));
                }
                Step::Again => continue,
                Step::Done { healthy } => {
                    self.current = None;
                    self.done = true;
                    if healthy {
                        self.stage.with_policy(|p| p.record_success(index));
                    }
                    continue;
                }
                Step::Failed(error) => error,
            };
            let streamed = self.attempts.streamed(&current.attempt);
            // Dropping the attempt cancels its request.
            self.current = None;
            self.stage
                .with_policy(|p| p.record_failure(index, now(), &error));
            tracing::warn!(
                stage = A::STAGE,
                provider = self.stage.names[index],
                %error,
                streamed,
                "provider failed"
            );
            if !error.retryable() || (streamed && !A::RESUMES_MID_STREAM) {
                self.done = true;
                return Some(Err(error.with_streamed(streamed)));
            }
            self.last_error = Some(error);
        }
    }
}

impl<A: Attempts> Drop for Run<A> {
    fn drop(&mut self) {
        if let Some(current) = self.current.take()
            && current.probe
        {
            self.stage
                .with_policy(|p| p.record_abandoned(current.index));
        }
    }
}
