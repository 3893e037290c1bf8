//! A streamed answer from the mock model, chunked for speech: the first chunk is a short
//! clause that is ready a few tokens after the first one, and the chunks add up to the answer.

mod common;

use std::time::{Duration, Instant};

use common::ask;
use futures_util::StreamExt;
use pipeline::chunker::SentenceChunker;
use pipeline::failover::build_llm;
use pipeline::mock::{MockConfig, MockServer, reply_for};
use pipeline::{LlmEvent, LlmProvider};

#[tokio::test]
async fn the_first_speakable_chunk_is_ready_a_few_tokens_into_the_answer() {
    let mock = MockServer::start(MockConfig {
        ttft_ms: 50,
        token_interval_ms: 10,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let llm = build_llm(&mock.pipeline_config()).unwrap();
    let question = "Could you recommend a book for the weekend?";
    let started = Instant::now();

    let mut stream = llm.stream(ask(question));
    let mut chunker = SentenceChunker::default();
    let mut chunks = Vec::new();
    let mut tokens = 0;
    let mut first_chunk_after = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            LlmEvent::Token(t) => {
                tokens += 1;
                chunker.push(&t);
            }
            LlmEvent::Finished { .. } => break,
        }
        while let Some(chunk) = chunker.pop() {
            first_chunk_after.get_or_insert((tokens, started.elapsed()));
            chunks.push(chunk);
        }
    }
    chunks.extend(chunker.finish());

    // The opening clause quotes the last six words and ends at the comma, 8 tokens in.
    assert_eq!(chunks[0], "You said \"recommend a book for the weekend\",");
    let (first_tokens, first_at) = first_chunk_after.unwrap();
    assert_eq!(
        first_tokens, 8,
        "handed over on the token that completed it"
    );
    assert!(first_at < Duration::from_secs(2), "{first_at:?}");
    assert_eq!(chunks.join(" "), reply_for(question));
    assert!(
        chunks
            .iter()
            .any(|c| c.contains("Dr. Rivera") && c.contains("3.14")),
        "{chunks:#?}"
    );
}
