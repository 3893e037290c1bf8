//! Every real provider client, pointed at the in-process mock server, streams its vendor's
//! wire format correctly.

mod common;

use std::time::Duration;

use common::{answer, ask, hello_audio};
use futures_util::StreamExt;
use pipeline::config::{HttpConfig, Secret};
use pipeline::llm::{AnthropicChat, OpenAiChat};
use pipeline::mock::{MOCK_API_KEY, MockConfig, MockServer, reply_for, synthesize};
use pipeline::stt::{DeepgramStt, OpenAiStt};
use pipeline::tts::{ElevenLabsTts, OpenAiTts};
use pipeline::{LlmProvider, SttEvent, SttProvider, TimingUnit, TtsProvider, TtsRequest};

fn key() -> Secret {
    Secret::new(MOCK_API_KEY)
}

#[tokio::test]
async fn openai_compatible_chat_streams_the_reply_with_usage() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let llm = OpenAiChat::new(
        "openai",
        mock.openai_base_url(),
        "mock-openai",
        Some(key()),
        256,
        &HttpConfig::default(),
    );
    llm.warm_up().await.unwrap();

    let a = answer(llm.stream(ask("Can you tell me about the moon?")))
        .await
        .unwrap();

    assert_eq!(a.text, reply_for("Can you tell me about the moon?"));
    assert!(a.tokens > 30, "streamed token by token, got {}", a.tokens);
    let usage = a.usage.expect("include_usage was requested");
    assert_eq!(usage.output_tokens as usize, a.tokens);
    assert!(usage.input_tokens > 0);
}

#[tokio::test]
async fn a_warmed_up_provider_serves_every_turn_on_one_connection() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let llm = pipeline::failover::build_llm(&mock.pipeline_config()).unwrap();
    llm.warm_up_all().await; // call start: one connection per provider (all on this mock)
    let warmed = mock.connections();

    for turn in ["hi", "how are you?", "tell me a joke"] {
        answer(llm.stream(ask(turn))).await.unwrap();
        // The caller speaks between turns; by then hyper has put the HTTP/1.1 connection
        // back in the pool (its connection task runs after the body's last byte is read).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        mock.connections(),
        warmed,
        "turns reuse the warm connection"
    );
}

#[tokio::test]
async fn anthropic_messages_streams_the_reply_with_usage() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let cfg = mock.pipeline_config();
    let llm = AnthropicChat::new("anthropic", &cfg.llm.anthropic, key(), &cfg.http);

    let a = answer(llm.stream(ask("What should I cook tonight?")))
        .await
        .unwrap();

    assert_eq!(a.text, reply_for("What should I cook tonight?"));
    assert_eq!(a.usage.unwrap().output_tokens as usize, a.tokens);
}

#[tokio::test]
async fn a_missing_key_is_a_401_that_another_provider_could_fix() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let llm = OpenAiChat::new(
        "local",
        mock.openai_base_url(),
        "m",
        None,
        64,
        &HttpConfig::default(),
    );
    let err = answer(llm.stream(ask("hi"))).await.err().unwrap();
    assert!(
        matches!(err, pipeline::PipelineError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(err.retryable());
}

#[tokio::test]
async fn dropping_the_stream_mid_answer_cancels_the_request() {
    let mock = MockServer::start(MockConfig {
        token_interval_ms: 50,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let llm = OpenAiChat::new(
        "openai",
        mock.openai_base_url(),
        "m",
        Some(key()),
        64,
        &HttpConfig::default(),
    );
    let mut stream = llm.stream(ask("hi"));
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream); // barge-in: nothing else to do, no panic, no hang
}

#[tokio::test]
async fn openai_transcription_sends_a_wav_and_returns_the_final_text() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let cfg = mock.pipeline_config();
    let stt = OpenAiStt::new("openai", &cfg.stt.openai, key(), &cfg.http);

    let events: Vec<_> = stt.transcribe(hello_audio()).collect().await;

    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].as_ref().unwrap(),
        &SttEvent::Final("what is the weather like today".into())
    );
}

#[tokio::test]
async fn deepgram_streams_partials_then_the_final_transcript() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let cfg = mock.pipeline_config();
    let stt = DeepgramStt::new("deepgram", &cfg.stt.deepgram, key());
    assert!(
        stt.listen_url()
            .contains("encoding=linear16&sample_rate=16000")
    );

    let events: Vec<SttEvent> = stt
        .transcribe(hello_audio())
        .map(Result::unwrap)
        .collect()
        .await;

    let (last, partials) = events.split_last().unwrap();
    assert_eq!(
        last,
        &SttEvent::Final("what is the weather like today".into())
    );
    assert!(
        partials.len() >= 3,
        "interim results while audio streams: {partials:?}"
    );
    assert!(partials.iter().all(|e| matches!(e, SttEvent::Partial(_))));
}

#[tokio::test]
async fn openai_speech_streams_pcm_in_whole_samples() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let cfg = mock.pipeline_config();
    let tts = OpenAiTts::new("openai", &cfg.tts.openai, key(), &cfg.http);
    let text = "Hello there, how are you today?";

    let chunks: Vec<_> = tts
        .synthesize(TtsRequest::new(text))
        .map(Result::unwrap)
        .collect()
        .await;

    assert!(chunks.len() > 5, "streamed in pieces");
    assert!(
        chunks
            .iter()
            .all(|c| c.sample_rate == 24_000 && c.pcm.len() % 2 == 0)
    );
    let samples: Vec<i16> = chunks.iter().flat_map(|c| c.samples()).collect();
    assert_eq!(
        samples,
        synthesize(text, 24_000),
        "odd network chunks re-cut without losing a byte"
    );
}

#[tokio::test]
async fn elevenlabs_streams_pcm_with_character_alignment() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let cfg = mock.pipeline_config();
    let tts = ElevenLabsTts::new("elevenlabs", &cfg.tts.elevenlabs, key(), &cfg.http);
    let text = "Nice to meet you.";

    let chunks: Vec<_> = tts
        .synthesize(TtsRequest::new(text))
        .map(Result::unwrap)
        .collect()
        .await;

    let timings: Vec<_> = chunks.iter().flat_map(|c| c.timings.clone()).collect();
    assert_eq!(
        timings.iter().map(|t| t.text.as_str()).collect::<String>(),
        text
    );
    assert!(
        timings
            .iter()
            .all(|t| t.unit == TimingUnit::Character && t.start < t.end)
    );
    assert!(
        timings
            .windows(2)
            .all(|w| w[0].end <= w[1].start + Duration::from_millis(1))
    );
    let audio: Duration = chunks.iter().map(|c| c.duration()).sum();
    let last_end = timings.last().unwrap().end;
    assert!(
        audio.abs_diff(last_end) < Duration::from_millis(5),
        "alignment spans the audio: {audio:?} vs {last_end:?}"
    );
}

#[tokio::test]
async fn deepgram_hears_keepalives_while_the_caller_is_silent() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.stt.deepgram.keepalive_ms = 150;
    let stt = DeepgramStt::new("deepgram", &cfg.stt.deepgram, key());
    // One frame of sound, then half a second in which silent frames are not sent at all.
    let audio = futures_util::stream::once(async { bytes::Bytes::from(vec![0u8; 640]) })
        .chain(futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            bytes::Bytes::new()
        }))
        .boxed();

    let events: Vec<_> = stt.transcribe(audio).collect().await;

    assert!(events.iter().all(Result::is_ok), "{events:?}");
    assert!(mock.keepalives() >= 2, "got {}", mock.keepalives());
}
