//! The embedded default with no vendor key: a caller says "Hello! What is the weather like
//! today?", the offline recogniser (PocketSphinx) hears it, and the offline voice (espeak-ng)
//! speaks the answer with lipsync. Only the language model is the mock server.

mod session_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::{Frame48, MediaTime};
use pipeline::mock::MockServer;
use pipeline::session::{Providers, SessionConfig, SessionOutput, spawn_session};
use protocol::ServerEvent;
use session_common::{frames, silero};

const SAID: [&str; 7] = ["hello", "what", "is", "the", "weather", "like", "today"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_voice_hears_the_caller_and_answers_out_loud() {
    let mock = MockServer::start(session_common::mock_config(
        "unused: the local recogniser listens",
    ))
    .await
    .expect("mock starts");
    let mut config = mock.pipeline_config();
    config.llm.order = vec!["openai".into()];
    config.stt.order = vec!["local".into()];
    config.tts.order = vec!["local".into()];
    let providers = Providers {
        stt: Arc::new(pipeline::failover::build_stt(&config).expect("local STT")),
        llm: Arc::new(pipeline::failover::build_llm(&config).expect("mock LLM")),
        tts: Arc::new(pipeline::failover::build_tts(&config).expect("local TTS")),
    };
    let vad = silero().for_call().expect("per-call VAD");
    let mut session =
        spawn_session(SessionConfig::default(), providers, vad, None).expect("session starts");

    // The caller speaks, then stays silent while the companion answers.
    let recording = frames(include_bytes!("data/hello.48k.wav"));
    let input = session.input.clone();
    drop(session.input);
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..1_000u64 {
            tick.tick().await;
            let frame = recording
                .get(i as usize)
                .copied()
                .unwrap_or_else(|| Frame48::silence(MediaTime(i * 960)));
            if input.send(frame).await.is_err() {
                break;
            }
        }
    });

    let mut heard = None;
    let (mut loud_frames, mut visemes) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    // One second of answer audio with its lipsync is enough to know it speaks.
    while Instant::now() < deadline && loud_frames < 50 {
        let Ok(Some(out)) =
            tokio::time::timeout(Duration::from_secs(1), session.output.recv()).await
        else {
            continue;
        };
        match out {
            SessionOutput::Event(ServerEvent::TranscriptFinal(t)) => heard = Some(t.text),
            SessionOutput::Audio(frame) if frame.rms() > 0.01 => loud_frames += 1,
            SessionOutput::Viseme(_) => visemes += 1,
            _ => {}
        }
    }
    feeder.abort();

    let heard = heard.expect("a final transcript");
    let words: Vec<&str> = heard.split_whitespace().collect();
    let right = SAID.iter().filter(|w| words.contains(w)).count();
    assert!(
        right >= 5,
        "heard {heard:?}: {right} of {} words right",
        SAID.len()
    );
    assert!(
        loud_frames >= 50,
        "the answer was not spoken: {loud_frames} audible frames"
    );
    assert!(visemes > 0, "no lipsync for the spoken answer");
}
