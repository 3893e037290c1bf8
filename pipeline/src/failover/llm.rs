//! The async failover shell for the language-model stage.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::joiner::ContinuationJoiner;
use super::policy::ProviderState;
use super::stage::{self, Attempts, Stage, Step};
use super::timed::{Deadlines, Timed};
use crate::PipelineError;
use crate::config::BreakerConfig;
use crate::provider::{LlmEvent, LlmProvider, LlmRequest, LlmStream, ServedModel};

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
    deadlines: Deadlines,
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
            stage: Arc::new(Stage::new(providers, |p| p.name(), breaker)),
            deadlines: Deadlines {
                first: (first_token_timeout, "first token"),
                next: (stall_timeout, "next token"),
            },
        }
    }

    /// Provider names in order.
    pub fn provider_names(&self) -> Vec<String> {
        self.stage.names()
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
        let attempts = LlmAttempts {
            request,
            deadlines: self.deadlines,
            said: String::new(),
            joiner: None,
            pending: VecDeque::new(),
        };
        stage::run(self.stage.clone(), attempts)
    }

    fn warm_up(&self) -> futures_util::future::BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async move {
            self.warm_up_all().await;
            Ok(())
        })
    }
}

/// The language model's part of the failover loop: a resumed attempt gets what was already
/// said as an assistant prefix, and its repeat of it is stripped.
struct LlmAttempts {
    request: LlmRequest,
    deadlines: Deadlines,
    /// Everything handed to the caller so far.
    said: String,
    joiner: Option<ContinuationJoiner>,
    pending: VecDeque<LlmEvent>,
}

impl Attempts for LlmAttempts {
    type Provider = dyn LlmProvider;
    type Attempt = Timed<LlmEvent>;
    type Item = LlmEvent;
    const STAGE: &'static str = "llm";
    const RESUMES_MID_STREAM: bool = true;

    fn start(&mut self, provider: &Self::Provider) -> Timed<LlmEvent> {
        let mut request = self.request.clone();
        if !self.said.is_empty() {
            let mut prefix = request.assistant_prefix.take().unwrap_or_default();
            prefix.push_str(&self.said);
            request.assistant_prefix = Some(prefix);
            self.joiner = Some(ContinuationJoiner::new(&self.said));
        }
        tracing::debug!(
            provider = provider.name(),
            resumed = !self.said.is_empty(),
            "llm attempt"
        );
        Timed::new(provider.stream(request))
    }

    async fn step(
        &mut self,
        attempt: &mut Timed<LlmEvent>,
        provider: &Self::Provider,
    ) -> Step<LlmEvent> {
        match attempt.next(self.deadlines, provider.name()).await {
            Ok(Some(LlmEvent::Token(text))) => {
                attempt.started = true;
                let out = match self.joiner.as_mut() {
                    Some(joiner) => joiner.push(&text),
                    None => Some(text).filter(|t| !t.is_empty()),
                };
                match out {
                    Some(text) => {
                        self.said.push_str(&text);
                        Step::Yield(LlmEvent::Token(text))
                    }
                    None => Step::Again,
                }
            }
            Ok(Some(finished @ LlmEvent::Finished { .. })) => {
                // Let the provider stream read its response to the end off the caller's
                // path, so the connection is reused for the next turn.
                let mut rest = attempt.take();
                tokio::spawn(async move { while rest.next().await.is_some() {} });
                if let Some(rest) = self.joiner.as_mut().and_then(ContinuationJoiner::finish) {
                    self.said.push_str(&rest);
                    self.pending.push_back(LlmEvent::Token(rest));
                }
                self.pending.push_back(finished);
                Step::Done { healthy: true }
            }
            Ok(None) => Step::Failed(PipelineError::StreamCut {
                provider: provider.name().to_owned(),
                streamed: attempt.started,
                message: "stream ended without a finish event".into(),
            }),
            Err(error) => Step::Failed(error),
        }
    }

    fn streamed(&self, _attempt: &Timed<LlmEvent>) -> bool {
        !self.said.is_empty()
    }

    fn pending(&mut self) -> Option<LlmEvent> {
        self.pending.pop_front()
    }
}
