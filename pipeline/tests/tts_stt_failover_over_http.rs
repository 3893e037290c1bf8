//! The speech stages fail over too: TTS before the first audio, STT by replaying the audio.

mod common;

use common::hello_audio;
use futures_util::StreamExt;
use pipeline::failover::{build_stt, build_tts};
use pipeline::mock::{Endpoint, MockConfig, MockServer, synthesize};
use pipeline::{PipelineError, SttEvent, SttProvider, TtsProvider, TtsRequest};

#[tokio::test]
async fn elevenlabs_down_means_the_words_come_from_openai_speech() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.tts.elevenlabs.model = "fault-503".into();
    let tts = build_tts(&cfg).unwrap();

    let chunks: Vec<_> = tts
        .synthesize(TtsRequest::new("Good morning!"))
        .map(Result::unwrap)
        .collect()
        .await;

    let samples: Vec<i16> = chunks.iter().flat_map(|c| c.samples()).collect();
    assert_eq!(samples, synthesize("Good morning!", 24_000));
    assert_eq!(mock.requests(Endpoint::ElevenLabs), 1);
    assert_eq!(mock.requests(Endpoint::Speech), 1);
}

#[tokio::test]
async fn tts_cut_after_audio_started_is_reported_as_streamed() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.tts.elevenlabs.model = "fault-cut-2".into();
    let tts = build_tts(&cfg).unwrap();

    let items: Vec<_> = tts
        .synthesize(TtsRequest::new(
            "A long enough sentence to need several chunks.",
        ))
        .collect()
        .await;

    let kinds: Vec<_> = items
        .iter()
        .map(|i| i.as_ref().map(|c| c.pcm.len()).map_err(ToString::to_string))
        .collect();
    assert!(items[0].is_ok() && items[1].is_ok(), "{kinds:?}");
    let Some(Err(err)) = items.last() else {
        panic!("{kinds:?}")
    };
    let err: &PipelineError = err;
    assert!(err.streamed(), "{err}");
    assert_eq!(
        mock.requests(Endpoint::Speech),
        0,
        "no voice switch mid-sentence"
    );
}

#[tokio::test]
async fn deepgram_refusing_the_socket_falls_back_to_batch_transcription() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.stt.deepgram.model = "fault-500".into();
    let stt = build_stt(&cfg).unwrap();

    let events: Vec<_> = stt
        .transcribe(hello_audio())
        .map(Result::unwrap)
        .collect()
        .await;

    assert_eq!(
        events.last(),
        Some(&SttEvent::Final("what is the weather like today".into()))
    );
    assert_eq!(mock.requests(Endpoint::DeepgramListen), 1);
    assert_eq!(mock.requests(Endpoint::Transcriptions), 1);
}

#[tokio::test]
async fn deepgram_dropping_mid_utterance_replays_the_audio_to_the_next_provider() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.stt.deepgram.model = "fault-cut-2".into();
    let stt = build_stt(&cfg).unwrap();

    let events: Vec<_> = stt
        .transcribe(hello_audio())
        .map(Result::unwrap)
        .collect()
        .await;

    assert!(matches!(events[0], SttEvent::Partial(_)));
    assert_eq!(
        events.last(),
        Some(&SttEvent::Final("what is the weather like today".into()))
    );
    assert_eq!(mock.requests(Endpoint::Transcriptions), 1);
}

#[tokio::test]
async fn a_server_wide_fault_applies_until_it_is_cleared() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.tts.order = vec!["openai".into()];
    let tts = build_tts(&cfg).unwrap();

    mock.set_fault(pipeline::mock::Fault::Status(503));
    let failed: Vec<_> = tts.synthesize(TtsRequest::new("Hello.")).collect().await;
    assert!(
        matches!(failed[..], [Err(PipelineError::AllProvidersFailed { .. })]),
        "{failed:?}"
    );

    mock.set_fault(pipeline::mock::Fault::None);
    let ok: Vec<_> = tts.synthesize(TtsRequest::new("Hello.")).collect().await;
    assert!(ok.iter().all(Result::is_ok) && !ok.is_empty());
}
