//! The breaker's 60 s schedule and the first-token deadline, on tokio's paused clock: the
//! minutes pass in microseconds. Providers here are scripted in memory, because paused time
//! and real sockets do not mix.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{answer, ask};
use futures_util::StreamExt;
use futures_util::stream;
use pipeline::config::BreakerConfig;
use pipeline::failover::{FailoverLlm, ProviderState};
use pipeline::{LlmEvent, LlmProvider, LlmRequest, LlmStream, PipelineError};
use tokio::time::Instant;

/// How a scripted provider behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Works,
    Fails,
    Hangs,
}

struct Scripted {
    name: &'static str,
    mode: Arc<std::sync::Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(name: &'static str, mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            name,
            mode: Arc::new(std::sync::Mutex::new(mode)),
            calls: Arc::new(AtomicUsize::new(0)),
        })
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl LlmProvider for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn stream(&self, _request: LlmRequest) -> LlmStream {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = self.name;
        match *self.mode.lock().unwrap() {
            Mode::Works => stream::iter([
                Ok(LlmEvent::Token(format!("from {name}"))),
                Ok(LlmEvent::Finished {
                    usage: None,
                    stop_reason: Some("stop".into()),
                }),
            ])
            .boxed(),
            Mode::Fails => stream::once(async move {
                Err(PipelineError::Status {
                    provider: name.into(),
                    status: 503,
                    body: "down".into(),
                })
            })
            .boxed(),
            Mode::Hangs => stream::pending().boxed(),
        }
    }
}

fn stage(primary: &Arc<Scripted>, backup: &Arc<Scripted>) -> FailoverLlm {
    FailoverLlm::new(
        vec![primary.clone(), backup.clone()],
        &BreakerConfig::default(),
        Duration::from_millis(2_500),
        Duration::from_secs(5),
    )
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_three_failures_and_probes_after_sixty_seconds() {
    let primary = Scripted::new("primary", Mode::Fails);
    let backup = Scripted::new("backup", Mode::Works);
    let llm = stage(&primary, &backup);

    // Three answers in a row: each costs the primary one failed try, nobody notices.
    for _ in 0..3 {
        assert_eq!(
            answer(llm.stream(ask("hi"))).await.unwrap().text,
            "from backup"
        );
    }
    assert_eq!(primary.calls(), 3);
    assert!(matches!(
        llm.provider_states()[0],
        ProviderState::Open { .. }
    ));

    // While open, the primary is not even tried.
    tokio::time::advance(Duration::from_secs(59)).await;
    answer(llm.stream(ask("hi"))).await.unwrap();
    assert_eq!(primary.calls(), 3);

    // At 60 s one trial request goes through; it fails, so the breaker re-opens.
    tokio::time::advance(Duration::from_secs(1)).await;
    answer(llm.stream(ask("hi"))).await.unwrap();
    assert_eq!(primary.calls(), 4);
    answer(llm.stream(ask("hi"))).await.unwrap();
    assert_eq!(primary.calls(), 4, "re-opened for another 60 s");

    // The primary recovers; the next probe succeeds and closes the breaker.
    primary.set(Mode::Works);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from primary"
    );
    assert_eq!(
        llm.provider_states()[0],
        ProviderState::Healthy {
            consecutive_failures: 0
        }
    );
    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from primary"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_primary_costs_exactly_the_first_token_deadline() {
    let primary = Scripted::new("primary", Mode::Hangs);
    let backup = Scripted::new("backup", Mode::Works);
    let llm = stage(&primary, &backup);
    let started = Instant::now();

    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from backup"
    );

    assert_eq!(started.elapsed(), Duration::from_millis(2_500));
}

#[tokio::test(start_paused = true)]
async fn only_one_trial_request_runs_while_half_open() {
    let primary = Scripted::new("primary", Mode::Fails);
    let backup = Scripted::new("backup", Mode::Works);
    let llm = stage(&primary, &backup);
    for _ in 0..3 {
        answer(llm.stream(ask("hi"))).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    primary.set(Mode::Hangs);

    // The probe hangs; meanwhile two more calls arrive and go straight to the backup.
    let probe = tokio::spawn(answer(llm.stream(ask("hi"))));
    tokio::task::yield_now().await;
    assert_eq!(
        llm.provider_states()[0],
        ProviderState::HalfOpen { probing: true }
    );
    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from backup"
    );
    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from backup"
    );
    assert_eq!(primary.calls(), 4, "only the probe reached the primary");

    // The probe times out, re-opening the breaker; its caller still got an answer.
    assert_eq!(probe.await.unwrap().unwrap().text, "from backup");
    assert!(matches!(
        llm.provider_states()[0],
        ProviderState::Open { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_probe_abandoned_by_a_hung_up_caller_frees_the_next_probe() {
    let primary = Scripted::new("primary", Mode::Fails);
    let backup = Scripted::new("backup", Mode::Works);
    let llm = stage(&primary, &backup);
    for _ in 0..3 {
        answer(llm.stream(ask("hi"))).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    primary.set(Mode::Hangs);
    let mut probe = llm.stream(ask("hi"));
    let _ = tokio::time::timeout(Duration::from_millis(10), probe.next()).await;
    drop(probe); // the caller barged in / hung up

    assert_eq!(
        llm.provider_states()[0],
        ProviderState::HalfOpen { probing: false }
    );
    primary.set(Mode::Works);
    assert_eq!(
        answer(llm.stream(ask("hi"))).await.unwrap().text,
        "from primary"
    );
}

#[tokio::test(start_paused = true)]
async fn with_every_provider_down_the_error_names_the_last_one() {
    let primary = Scripted::new("primary", Mode::Fails);
    let backup = Scripted::new("backup", Mode::Fails);
    let llm = stage(&primary, &backup);
    let err = answer(llm.stream(ask("hi"))).await.err().unwrap();
    assert!(
        matches!(err, PipelineError::AllProvidersFailed { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("backup"), "{err}");
}
