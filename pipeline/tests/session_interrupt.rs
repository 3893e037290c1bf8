//! A caller asks a question, listens to the start of the answer, then presses "stop" in the
//! app (the client's `interrupt` control) without saying a word. The session stops the
//! answer at once, exactly as a spoken barge-in would: no more audio, the providers are
//! cancelled, `interrupted` says what was heard, and the conversation keeps only that.

mod session_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::{Frame48, MediaTime};
use pipeline::Role;
use pipeline::chunker::SentenceChunker;
use pipeline::mock::{Endpoint, MockServer, SECONDS_PER_CHAR, reply_for, tokenize};
use pipeline::session::{Providers, SessionConfig, SessionControl, SessionOutput, spawn_session};
use protocol::ServerEvent;
use session_common::{frames, mock_config, silero};

const QUESTION: &str = "hello what is the weather like today";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_interrupt_stops_the_answer_and_keeps_what_was_heard() {
    let mock = MockServer::start(mock_config(QUESTION))
        .await
        .expect("mock starts");
    let mut c = mock.pipeline_config();
    c.stt.order = vec!["deepgram".into()];
    c.llm.order = vec!["openai".into()];
    c.tts.order = vec!["elevenlabs".into()];
    let providers = Providers {
        stt: Arc::new(pipeline::failover::build_stt(&c).expect("stt")),
        llm: Arc::new(pipeline::failover::build_llm(&c).expect("llm")),
        tts: Arc::new(pipeline::failover::build_tts(&c).expect("tts")),
    };
    let vad = silero().for_call().expect("per-call VAD");
    let session =
        spawn_session(SessionConfig::default(), providers, vad, None).expect("session starts");
    let (input, control, mut output, done) =
        (session.input, session.control, session.output, session.done);

    // The caller's microphone: the question, then silence, in real time.
    let recording = frames(include_bytes!("data/hello.48k.wav"));
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0u64..1_500 {
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

    // Listen until about a second of the answer has played, then press stop; keep listening
    // for another second.
    let mut log: Vec<SessionOutput> = Vec::new();
    let mut interrupt_at = None;
    let mut quiet_until = None;
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < limit, "no answer to interrupt: {log:?}");
        let out = tokio::time::timeout(Duration::from_millis(100), output.recv()).await;
        if let Ok(Some(out)) = out {
            log.push(out);
        }
        let frames_played = log
            .iter()
            .filter(|o| matches!(o, SessionOutput::Audio(_)))
            .count();
        if interrupt_at.is_none() && frames_played >= 50 {
            control
                .send(SessionControl::Interrupt)
                .await
                .expect("the session takes controls");
            interrupt_at = Some(log.len());
            quiet_until = Some(Instant::now() + Duration::from_secs(1));
        }
        if quiet_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
    }
    feeder.abort();
    let _ = feeder.await;
    drop(control);
    // The output must be drained for the task to see its input closed.
    let rest = tokio::spawn(async move { while output.recv().await.is_some() {} });
    let history = done.await.expect("the session ends cleanly");
    let _ = rest.await;

    let interrupt_at = interrupt_at.expect("interrupted");
    let cut = log
        .iter()
        .position(|o| matches!(o, SessionOutput::Event(ServerEvent::Interrupted(_))))
        .expect("an `interrupted` event");
    assert!(
        cut >= interrupt_at,
        "interrupted before the control was sent"
    );
    let SessionOutput::Event(ServerEvent::Interrupted(interrupted)) = &log[cut] else {
        unreachable!()
    };
    assert_eq!(interrupted.turn_id, 1);
    // Frames released before the session read the control were already played; none after.
    assert!(
        log[cut..]
            .iter()
            .all(|o| !matches!(o, SessionOutput::Audio(_))),
        "audio after `interrupted`"
    );
    assert!(
        log.iter()
            .all(|o| !matches!(o, SessionOutput::Event(ServerEvent::AudioEnded(_)))),
        "the answer did not play to its end"
    );
    let played = log[..cut]
        .iter()
        .filter(|o| matches!(o, SessionOutput::Audio(_)))
        .count();

    // The heard text is a strict prefix of the answer that matches the audio played.
    let full = reply_for(QUESTION);
    let heard = &interrupted.heard_text;
    assert!(!heard.is_empty(), "a second of the answer was played");
    assert!(
        full.starts_with(heard.as_str()) && heard.len() < full.len(),
        "{heard:?} is not a strict prefix of {full:?}"
    );
    let played_chars = (played as f64 * 0.020 / SECONDS_PER_CHAR) as i64;
    let heard_chars = heard.chars().count() as i64;
    assert!(
        heard_chars <= played_chars + 1 && heard_chars >= played_chars - 16,
        "heard {heard_chars} chars ({heard:?}) but {played_chars} chars of audio were played"
    );

    // The conversation remembers the question and only the heard part of the answer.
    let turns: Vec<(Role, &str)> = history
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(turns[0].0, Role::System);
    assert_eq!(
        &turns[1..],
        [(Role::User, QUESTION), (Role::Assistant, heard.as_str())]
    );
    // One answer was asked for, and speech synthesis stopped before the end of it: the
    // session synthesises one request per chunk, at most a few seconds ahead of playout.
    assert_eq!(mock.requests(Endpoint::ChatCompletions), 1);
    let mut chunker = SentenceChunker::default();
    for token in tokenize(&full) {
        chunker.push(&token);
    }
    let chunks = std::iter::from_fn(|| chunker.pop()).count()
        + std::iter::from_fn(|| chunker.finish()).count();
    let synthesised = mock.requests(Endpoint::ElevenLabs) as usize;
    assert!(
        synthesised < chunks,
        "{synthesised} of {chunks} chunks synthesised"
    );
}
