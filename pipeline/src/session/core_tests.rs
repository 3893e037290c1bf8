//! The core driven by hand: a scripted VAD, provider events and a fake clock.

use std::time::Duration;

use bytes::Bytes;
use media::vad::{CONTEXT, STATE_LEN, WINDOW};

use super::*;
use crate::provider::{Timing, TimingUnit};

/// A stand-in for Silero: anything louder than a whisper is speech.
struct Loudness;

impl SpeechModel for Loudness {
    fn speech_probability(
        &mut self,
        window: &[f32; CONTEXT + WINDOW],
        _state: &mut [f32; STATE_LEN],
    ) -> media::Result<f32> {
        Ok(if media::frame::rms(&window[CONTEXT..]) > 0.05 {
            0.95
        } else {
            0.0
        })
    }
}

struct Call {
    core: SessionCore<Loudness>,
    t0: Instant,
    frame: u64,
    log: Vec<Action>,
}

impl Call {
    fn new() -> Self {
        let t0 = Instant::now();
        let core = SessionCore::new(SessionConfig::default(), Loudness, None, t0).unwrap();
        Self {
            core,
            t0,
            frame: 0,
            log: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(20 * self.frame)
    }

    /// The caller makes a sound (or is quiet) for `ms`; output frames fall due meanwhile.
    fn hear(&mut self, loud: bool, ms: u64) {
        for _ in 0..ms / 20 {
            let mut f = Frame48::silence(MediaTime(self.frame * 960));
            if loud {
                for (i, s) in f.samples_mut().iter_mut().enumerate() {
                    *s = 0.3 * (i as f32 * 0.06).sin();
                }
            }
            self.frame += 1;
            let now = self.now();
            self.core.handle_audio(&f, now);
            self.core.handle_timeout(now);
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.core.poll_action() {
            self.log.push(a);
        }
    }

    fn events(&self) -> Vec<&'static str> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Output(SessionOutput::Event(e)) => Some(e.type_name()),
                _ => None,
            })
            .collect()
    }

    fn audio_frames(&self) -> usize {
        self.log
            .iter()
            .filter(|a| matches!(a, Action::Output(SessionOutput::Audio(_))))
            .count()
    }
}

/// One second of 24 kHz "speech" for `text`, with a character timing per character.
fn speech(text: &str) -> TtsChunk {
    let per = Duration::from_secs(1) / text.chars().count() as u32;
    let pcm: Vec<u8> = (0..24_000)
        .flat_map(|i| (((i as f32 * 0.1).sin() * 8_000.0) as i16).to_le_bytes())
        .collect();
    TtsChunk {
        pcm: Bytes::from(pcm),
        sample_rate: 24_000,
        timings: text
            .chars()
            .enumerate()
            .map(|(i, c)| Timing {
                text: c.to_string(),
                unit: TimingUnit::Character,
                start: per * i as u32,
                end: per * (i as u32 + 1),
            })
            .collect(),
    }
}

#[test]
fn a_turn_is_answered_and_a_cough_does_not_interrupt_but_speech_does() {
    let mut call = Call::new();
    call.hear(false, 200);
    call.hear(true, 600);
    call.hear(false, 800);
    assert_eq!(call.events(), ["speech_started", "speech_stopped"]);
    assert!(call.log.iter().any(|a| matches!(a, Action::SttStart)));
    assert!(matches!(call.log.last(), Some(Action::SttEnd)));

    let now = call.now();
    call.core
        .handle_stt(Ok(SttEvent::Final("tell me something".into())), now);
    call.drain();
    let request = call.log.iter().find_map(|a| match a {
        Action::LlmStart(r) => Some(r.clone()),
        _ => None,
    });
    let request = request.expect("the model is asked");
    assert_eq!(request.messages[0].role, Role::System, "persona first");
    assert_eq!(request.messages[1].content, "tell me something");

    let answer = "Well, here is a thing I know. It is a long one.";
    for token in crate::mock::tokenize(answer) {
        call.core.handle_llm(Ok(LlmEvent::Token(token)), now);
    }
    call.core.handle_llm(
        Ok(LlmEvent::Finished {
            usage: None,
            stop_reason: None,
        }),
        now,
    );
    call.drain();
    let first = call.log.iter().find_map(|a| match a {
        Action::TtsStart(r) => Some(r.text.clone()),
        _ => None,
    });
    assert_eq!(first.as_deref(), Some("Well, here is a thing I know."));

    // Audio goes out the moment it exists, with its metrics.
    call.core
        .handle_tts(&speech("Well, here is a thing I know."), now);
    call.drain();
    assert_eq!(call.audio_frames(), 1);
    assert!(call.events().ends_with(&["audio_started", "turn_metrics"]));

    // 100 ms of a cough while the companion talks: audio keeps flowing.
    call.hear(true, 100);
    call.hear(false, 200);
    assert!(!call.events().contains(&"interrupted"));
    assert_eq!(call.audio_frames(), 16);

    // Real speech: interrupted at once, providers cancelled, history keeps what was heard.
    call.hear(true, 400);
    let events = call.events();
    assert!(events.contains(&"interrupted"), "{events:?}");
    let cut = call
        .log
        .iter()
        .position(|a| {
            matches!(
                a,
                Action::Output(SessionOutput::Event(ServerEvent::Interrupted(_)))
            )
        })
        .unwrap();
    assert!(matches!(call.log[cut - 2], Action::LlmCancel));
    assert!(matches!(call.log[cut - 1], Action::TtsCancel));
    assert!(
        call.log[cut..]
            .iter()
            .all(|a| !matches!(a, Action::Output(SessionOutput::Audio(_)))),
        "no audio after the interruption"
    );
    let Action::Output(SessionOutput::Event(ServerEvent::Interrupted(i))) = &call.log[cut] else {
        unreachable!()
    };
    let played = call.log[..cut]
        .iter()
        .filter(|a| matches!(a, Action::Output(SessionOutput::Audio(_))))
        .count();
    // ~29 characters in one second: each 20 ms frame is ~0.58 characters.
    assert!(answer.starts_with(&i.heard_text), "{:?}", i.heard_text);
    assert!(
        (played as f64 * 0.58 - i.heard_text.len() as f64).abs() < 8.0,
        "{played} frames, heard {:?}",
        i.heard_text
    );
    let history = call.core.history();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].content, i.heard_text);
}

#[test]
fn an_answer_without_timings_at_22050_hz_plays_to_the_end_with_audio_visemes() {
    let mut call = Call::new();
    call.hear(true, 600);
    call.hear(false, 800);
    let now = call.now();
    call.core.handle_stt(Ok(SttEvent::Final("hi".into())), now);
    call.core
        .handle_llm(Ok(LlmEvent::Token("Hi there!".into())), now);
    call.core.handle_llm_end(now); // cut without `Finished`: speak what arrived
    call.drain();
    // 0.5 s of espeak-rate audio, no timings.
    let pcm: Vec<u8> = (0..11_025)
        .flat_map(|i| (((i as f32 * 0.2).sin() * 9_000.0) as i16).to_le_bytes())
        .collect();
    let chunk = TtsChunk {
        pcm: Bytes::from(pcm),
        sample_rate: 22_050,
        timings: Vec::new(),
    };
    call.core.handle_tts(&chunk, now);
    call.core.handle_tts_end(now);
    call.drain();
    call.hear(false, 600);
    assert_eq!(call.audio_frames(), 25, "0.5 s is 25 frames");
    let visemes = call
        .log
        .iter()
        .filter(|a| matches!(a, Action::Output(SessionOutput::Viseme(_))))
        .count();
    assert_eq!(visemes, 25, "one audio-driven viseme per frame");
    let events = call.events();
    assert!(events.ends_with(&["audio_ended"]), "{events:?}");
    let history = call.core.history();
    assert_eq!(history[1].content, "hi");
    assert_eq!(history[2].role, Role::Assistant);
    assert_eq!(history[2].content, "Hi there!");
    assert_eq!(
        call.core.poll_timeout(),
        None,
        "a quiet call never wakes up"
    );
}

#[test]
fn the_clients_interrupt_cuts_the_answer_exactly_like_a_barge_in() {
    let mut call = Call::new();
    // Nothing to stop yet: an interrupt is a no-op, not an event.
    assert!(!call.core.interrupt(call.now()));
    call.drain();
    assert!(call.log.is_empty());

    call.hear(true, 600);
    call.hear(false, 800);
    let now = call.now();
    call.core
        .handle_stt(Ok(SttEvent::Final("tell me something".into())), now);
    let answer = "Well, here is a thing I know. It is a long one.";
    for token in crate::mock::tokenize(answer) {
        call.core.handle_llm(Ok(LlmEvent::Token(token)), now);
    }
    call.core
        .handle_tts(&speech("Well, here is a thing I know."), now);
    // Half a second of the answer plays while the caller stays quiet.
    call.hear(false, 500);
    let played = call.audio_frames();
    assert!(played >= 20, "{played} frames played");
    assert!(!call.events().contains(&"interrupted"));

    let at = call.log.len();
    assert!(call.core.interrupt(call.now()));
    call.drain();
    let after = &call.log[at..];
    assert!(matches!(after[0], Action::LlmCancel), "{after:?}");
    assert!(matches!(after[1], Action::TtsCancel));
    let Action::Output(SessionOutput::Event(ServerEvent::Interrupted(i))) = &after[2] else {
        panic!("interrupted expected: {after:?}");
    };
    let i = i.clone();
    assert_eq!(i.turn_id, 1);
    // ~29 characters in one second: each 20 ms frame is ~0.58 characters.
    assert!(answer.starts_with(&i.heard_text), "{:?}", i.heard_text);
    assert!(!i.heard_text.is_empty());
    assert!(
        (played as f64 * 0.58 - i.heard_text.len() as f64).abs() < 8.0,
        "{played} frames, heard {:?}",
        i.heard_text
    );

    // The rest of the answer never plays, late provider events are ignored, and the
    // conversation keeps only the heard part.
    call.core
        .handle_tts(&speech("It is a long one."), call.now());
    call.core
        .handle_llm(Ok(LlmEvent::Token(" more".into())), call.now());
    call.hear(false, 400);
    assert_eq!(call.audio_frames(), played, "audio after the interrupt");
    assert_eq!(call.core.poll_timeout(), None, "nothing left to play");
    let history = call.core.history();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].role, Role::Assistant);
    assert_eq!(history[2].content, i.heard_text);
    assert!(!call.core.interrupt(call.now()), "already stopped");

    // The next turn is answered normally.
    call.hear(true, 600);
    call.hear(false, 800);
    call.core
        .handle_stt(Ok(SttEvent::Final("and now?".into())), call.now());
    call.drain();
    let request = call
        .log
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::LlmStart(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the second turn is answered");
    assert_eq!(request.messages[2].content, i.heard_text);
    assert_eq!(request.messages[3].content, "and now?");
}
