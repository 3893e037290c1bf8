//! A caller asks for a story, then talks over the companion's answer. The companion stops
//! within one frame, its providers are cancelled, and the conversation remembers only the
//! part of the answer the caller actually heard.

mod session_common;

use std::time::Duration;

use pipeline::mock::{SECONDS_PER_CHAR, reply_for};
use pipeline::session::SessionOutput;
use pipeline::{ChatMessage, Role};
use protocol::ServerEvent;
use session_common::call;

const STORY: &str = "tell me a short story about a robot who learns to paint";
const INTERRUPT: &str = "wait stop i have a different question";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // prints the measured numbers for `--nocapture` runs
async fn talking_over_the_companion_cuts_the_answer_to_what_was_heard() {
    let wav = include_bytes!("data/call-barge-in.48k.wav");
    let log = call(wav, &[STORY, INTERRUPT], Duration::from_secs(16), |r| {
        r.iter().any(|x| {
            matches!(&x.output, SessionOutput::Event(ServerEvent::AudioStarted(a)) if a.turn_id == 2)
        })
    })
    .await;

    // The first answer was playing when the caller spoke again.
    let pos = |pred: &dyn Fn(&SessionOutput) -> bool| {
        log.received
            .iter()
            .position(|r| pred(&r.output))
            .expect("event present")
    };
    let first_audio =
        pos(&|o| matches!(o, SessionOutput::Event(ServerEvent::AudioStarted(a)) if a.turn_id == 1));
    let interrupted = pos(&|o| matches!(o, SessionOutput::Event(ServerEvent::Interrupted(_))));
    let second_speech = pos(
        &|o| matches!(o, SessionOutput::Event(ServerEvent::SpeechStarted(s)) if s.turn_id == 2),
    );
    let SessionOutput::Event(ServerEvent::Interrupted(cut)) = &log.received[interrupted].output
    else {
        unreachable!()
    };
    assert_eq!(cut.turn_id, 1);

    // Audio stopped within one frame of the detected speech start: the interruption is
    // reported in the same step that detected the speech, and no frame of the first answer
    // follows it.
    assert_eq!(
        second_speech,
        interrupted + 1,
        "interrupted, then speech_started"
    );
    let frames: Vec<_> = log.received[first_audio..interrupted]
        .iter()
        .filter_map(|r| match &r.output {
            SessionOutput::Audio(f) => Some((r.at, f.time(), f.end_time())),
            _ => None,
        })
        .collect();
    let second_audio =
        pos(&|o| matches!(o, SessionOutput::Event(ServerEvent::AudioStarted(a)) if a.turn_id == 2));
    assert!(
        log.received[interrupted..second_audio]
            .iter()
            .all(|r| !matches!(r.output, SessionOutput::Audio(_))),
        "audio of the cut answer after the interruption"
    );
    // Pacing is wall-clock, so on a busy machine a frame can leave a few ms late; the bound
    // only catches an answer that had stopped playing long before the caller spoke (then
    // nothing was cut). How fast audio stops is measured by the load generator, not here.
    let (last_at, _, last_end) = *frames.last().expect("the first answer played");
    let detected_at = log.received[interrupted].at;
    assert!(
        detected_at.duration_since(last_at) <= Duration::from_millis(200),
        "the last frame left {:?} before the interruption",
        detected_at.duration_since(last_at)
    );
    assert_eq!(cut.media_time_us, last_end.as_duration().as_micros() as u64);

    // The heard text is a strict prefix of the full answer and matches the audio played
    // (the mock speaks each character for 65 ms; the cut falls back to a whole word).
    let full = reply_for(STORY);
    let heard = &cut.heard_text;
    assert!(!heard.is_empty(), "about a second of the answer was played");
    assert!(
        full.starts_with(heard.as_str()) && heard.len() < full.len(),
        "{heard:?} is not a strict prefix of {full:?}"
    );
    let played_s = frames.len() as f64 * 0.020;
    let played_chars = (played_s / SECONDS_PER_CHAR) as i64;
    let heard_chars = heard.chars().count() as i64;
    assert!(
        heard_chars <= played_chars + 1 && heard_chars >= played_chars - 16,
        "heard {heard_chars} chars ({heard:?}) but {played_chars} chars of audio were played"
    );

    // The conversation keeps the persona, both questions and only the heard part of the
    // answer.
    let turns: Vec<(Role, &str)> = log
        .history
        .iter()
        .map(|m: &ChatMessage| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(turns[0].0, Role::System);
    assert_eq!(
        &turns[1..],
        [
            (Role::User, STORY),
            (Role::Assistant, heard.as_str()),
            (Role::User, INTERRUPT),
        ]
    );
    println!("heard {heard:?} after {played_s:.2} s of audio");
}
