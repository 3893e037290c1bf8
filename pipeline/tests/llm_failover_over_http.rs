//! The language-model stage keeps answering when providers fail, against the real clients
//! and the mock server's injected faults.

mod common;

use std::time::{Duration, Instant};

use common::{answer, ask};
use pipeline::LlmProvider;
use pipeline::PipelineError;
use pipeline::config::PipelineConfig;
use pipeline::failover::{ProviderState, build_llm};
use pipeline::mock::{Endpoint, MockConfig, MockServer, reply_for};

/// A mock server and a config whose first provider (OpenAI) uses `primary_model`.
async fn setup(primary_model: &str) -> (MockServer, PipelineConfig) {
    let mock = MockServer::start(MockConfig {
        hang_ms: 5_000,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.llm.openai.model = Some(primary_model.into());
    // Generous against a loaded CI machine; the mock answers in ~30 ms.
    cfg.llm.first_token_timeout_ms = 1_000;
    cfg.llm.stall_timeout_ms = 1_000;
    (mock, cfg)
}

const QUESTION: &str = "What is a good name for a cat?";

#[tokio::test]
async fn a_500_from_the_primary_is_retried_on_the_next_provider_invisibly() {
    let (mock, cfg) = setup("fault-500").await;
    let llm = build_llm(&cfg).unwrap();
    assert_eq!(llm.provider_names(), ["openai", "anthropic", "groq"]);

    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();

    assert_eq!(a.text, reply_for(QUESTION));
    assert_eq!(mock.requests(Endpoint::ChatCompletions), 1);
    assert_eq!(mock.requests(Endpoint::AnthropicMessages), 1);
    assert_eq!(
        llm.provider_states()[0],
        ProviderState::Healthy {
            consecutive_failures: 1
        }
    );
}

#[tokio::test]
async fn a_primary_that_hangs_past_the_first_token_deadline_is_abandoned() {
    let (_mock, cfg) = setup("fault-hang").await;
    let llm = build_llm(&cfg).unwrap();
    let started = Instant::now();

    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();

    assert_eq!(a.text, reply_for(QUESTION));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_finished_by_anthropic_without_repeating() {
    let (mock, cfg) = setup("fault-cut-7").await;
    let llm = build_llm(&cfg).unwrap();

    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();

    assert_eq!(
        a.text,
        reply_for(QUESTION),
        "primary's 7 tokens + Anthropic's continuation, no duplication"
    );
    assert_eq!(mock.requests(Endpoint::AnthropicMessages), 1);
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_finished_by_an_openai_compatible_fallback() {
    let (mock, mut cfg) = setup("fault-cut-12").await;
    cfg.llm.order = vec!["openai".into(), "groq".into()];
    let llm = build_llm(&cfg).unwrap();

    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();

    assert_eq!(a.text, reply_for(QUESTION));
    assert_eq!(mock.requests(Endpoint::ChatCompletions), 2);
}

#[tokio::test]
async fn a_stream_that_stalls_mid_answer_is_finished_by_the_next_provider() {
    let (_mock, cfg) = setup("fault-stall-4").await;
    let llm = build_llm(&cfg).unwrap();
    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();
    assert_eq!(a.text, reply_for(QUESTION));
}

#[tokio::test]
async fn an_overloaded_error_event_mid_stream_moves_on() {
    let (_mock, mut cfg) = setup("mock-openai").await;
    cfg.llm.order = vec!["anthropic".into(), "openai".into()];
    cfg.llm.anthropic.model = "fault-error-5".into();
    let llm = build_llm(&cfg).unwrap();
    let a = answer(llm.stream(ask(QUESTION))).await.unwrap();
    assert_eq!(a.text, reply_for(QUESTION));
}

#[tokio::test]
async fn a_429_throttles_the_provider_until_retry_after() {
    let (mock, cfg) = setup("fault-429-30").await;
    let llm = build_llm(&cfg).unwrap();

    answer(llm.stream(ask(QUESTION))).await.unwrap();
    let ProviderState::Throttled { until } = llm.provider_states()[0] else {
        panic!("expected throttled, got {:?}", llm.provider_states()[0]);
    };
    let left = until.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(28) && left <= Duration::from_secs(30),
        "{left:?}"
    );

    answer(llm.stream(ask(QUESTION))).await.unwrap();
    assert_eq!(
        mock.requests(Endpoint::ChatCompletions),
        1,
        "throttled provider is skipped"
    );
    assert_eq!(mock.requests(Endpoint::AnthropicMessages), 2);
}

#[tokio::test]
async fn when_every_provider_fails_the_error_names_the_last_one() {
    let (_mock, mut cfg) = setup("fault-500").await;
    cfg.llm.anthropic.model = "fault-503".into();
    cfg.llm.groq.model = Some("fault-502".into());
    let llm = build_llm(&cfg).unwrap();

    let err = answer(llm.stream(ask(QUESTION))).await.err().unwrap();

    let PipelineError::AllProvidersFailed {
        stage: "llm",
        last: Some(last),
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(last.provider(), Some("groq"));
    assert!(!err.retryable());
}

#[tokio::test]
async fn a_provider_without_a_key_is_left_out_not_a_panic() {
    let (_mock, mut cfg) = setup("mock-openai").await;
    cfg.llm.anthropic.api_key = None;
    cfg.llm.anthropic.api_key_env = "PIPELINE_TEST_SURELY_UNSET_KEY".into();
    let llm = build_llm(&cfg).unwrap();
    assert_eq!(llm.provider_names(), ["openai", "groq"]);
}
