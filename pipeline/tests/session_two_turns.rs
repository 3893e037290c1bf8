//! A caller asks two questions in one call. Each is heard, transcribed and answered out loud
//! with lipsync, and every turn reports where its time went.
//!
//! The mock's answers run for about 15 s, so the second question arrives while the first
//! answer is still playing (the barge-in itself is checked in `session_barge_in.rs`).

mod session_common;

use std::time::Duration;

use pipeline::session::SessionOutput;
use protocol::ServerEvent;
use protocol::voice::TurnLatency;
use session_common::{Received, call};

const HELLO: &str = "hello what is the weather like today";
const MINECRAFT: &str = "can you help me build a house in minecraft";

fn metrics(received: &[Received]) -> Vec<(u64, TurnLatency)> {
    received
        .iter()
        .filter_map(|r| match &r.output {
            SessionOutput::Event(ServerEvent::TurnMetrics(m)) => Some((m.turn_id, m.latency)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // prints the measured numbers for `--nocapture` runs
async fn two_questions_get_two_spoken_answers_with_visemes_and_latency_records() {
    let wav = include_bytes!("data/call-two-turns.48k.wav");
    // Stop one second after the second answer started playing.
    let log = call(wav, &[HELLO, MINECRAFT], Duration::from_secs(16), |r| {
        let second_audio = r.iter().position(|x| {
            matches!(&x.output, SessionOutput::Event(ServerEvent::AudioStarted(a)) if a.turn_id == 2)
        });
        second_audio.is_some_and(|i| {
            r[i..]
                .iter()
                .filter(|x| matches!(x.output, SessionOutput::Audio(_)))
                .count()
                >= 60
        })
    })
    .await;

    let finals: Vec<_> = log
        .events()
        .filter_map(|e| match e {
            ServerEvent::TranscriptFinal(t) => Some((t.turn_id, t.text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(finals, [(1, HELLO.to_owned()), (2, MINECRAFT.to_owned())]);

    // Both answers were spoken: audio frames (on one increasing output clock) and visemes.
    let mut turn = 0;
    let mut audio = [0usize; 3];
    let mut visemes = [0usize; 3];
    let mut last_time = None;
    for r in &log.received {
        match &r.output {
            SessionOutput::Event(ServerEvent::AudioStarted(a)) => turn = a.turn_id as usize,
            SessionOutput::Audio(frame) => {
                assert!(turn > 0, "audio before audio_started");
                audio[turn] += 1;
                assert!(
                    last_time.is_none_or(|t| frame.time() > t),
                    "output clock went backwards"
                );
                last_time = Some(frame.time());
            }
            SessionOutput::Viseme(_) => visemes[turn] += 1,
            _ => {}
        }
    }
    assert!(
        audio[1] > 50 && audio[2] > 50,
        "audio frames per turn: {audio:?}"
    );
    assert!(
        visemes[1] > 10 && visemes[2] > 10,
        "visemes per turn: {visemes:?}"
    );

    // Each answer quotes its question, so the model heard the right turn.
    let replies: [String; 3] = log
        .events()
        .filter_map(|e| match e {
            ServerEvent::TextDelta(d) => Some(d),
            _ => None,
        })
        .fold(
            [String::new(), String::new(), String::new()],
            |mut acc: [String; 3], d| {
                acc[d.turn_id as usize].push_str(&d.delta);
                acc
            },
        );
    assert!(replies[1].contains("weather like today"), "{}", replies[1]);
    assert!(replies[2].contains("house in minecraft"), "{}", replies[2]);

    // Every mark of both turns was recorded, in turn order.
    let records = metrics(&log.received);
    assert_eq!(records.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2]);
    for (id, l) in &records {
        let marks = [
            l.speech_end_ms,
            l.end_of_turn_ms,
            l.stt_final_ms,
            l.llm_first_token_ms,
            l.first_sentence_ms,
            l.tts_first_audio_ms,
            l.first_audio_out_ms,
        ];
        let marks: Vec<u32> = marks
            .iter()
            .map(|m| m.unwrap_or_else(|| panic!("turn {id}: a mark is missing: {l:?}")))
            .collect();
        assert!(marks.is_sorted(), "turn {id}: marks out of order: {l:?}");
        // Speech end to first audio: the 550 ms end-of-turn silence plus ~100 ms of mock
        // delays plus what the pipeline adds.
        let v2v = l.response_latency_ms().unwrap();
        assert!((500..1_500).contains(&v2v), "turn {id}: {v2v} ms: {l:?}");
    }
    // ... and exported as Prometheus histograms.
    assert!(
        log.metrics_text
            .contains("pipeline_turn_stage_seconds_count{stage=\"VoiceToVoice\"} 2"),
        "{}",
        log.metrics_text
    );
    println!("latency records: {records:?}");
}
