//! A caller speaks into the microphone; the end-of-turn detector, fed 20 ms frames through the
//! real resampler and Silero VAD, finds each utterance where the testdata README says it is.

mod common;

use media::{Frame16, Resampler48To16, TurnConfig, TurnDetector, TurnEvent, Vad, VadConfig};

/// Tolerance on every start and end (the issue asks for ±80 ms).
const TOLERANCE_S: f64 = 0.080;

/// Utterances found: (start, end) in seconds, from `TurnEnd` events; also checks that each
/// turn began with exactly one `SpeechStart` at the same place.
fn detect(frames16: impl IntoIterator<Item = Frame16>) -> Vec<(f64, f64)> {
    let mut vad = Vad::new(common::silero_call(), VadConfig::default());
    let mut turns = TurnDetector::new(TurnConfig::default()).expect("default config is valid");
    let mut started = None;
    let mut found = Vec::new();
    for frame in frames16 {
        let p = vad.process(&frame).expect("vad runs");
        match turns.on_frame(p, frame.time(), frame.end_time()) {
            Some(TurnEvent::SpeechStart { at, .. }) => {
                assert!(started.is_none(), "a second SpeechStart inside one turn");
                started = Some(at);
            }
            Some(TurnEvent::TurnEnd { start, end }) => {
                assert_eq!(
                    started.take(),
                    Some(start),
                    "TurnEnd repeats its SpeechStart time"
                );
                found.push((start.as_secs_f64(), end.as_secs_f64()));
            }
            _ => {}
        }
    }
    assert!(
        started.is_none(),
        "a turn was still open when the recording ended"
    );
    found
}

fn detect_48k(name: &str) -> Vec<(f64, f64)> {
    let (rate, samples) = common::read_wav(name);
    assert_eq!(rate, 48_000);
    let mut resampler = Resampler48To16::new().expect("resampler builds");
    // One second of silence after the recording, as a call would keep sending.
    let frames = common::frames48(&samples, 50);
    detect(
        frames
            .iter()
            .map(|f| resampler.process(f).expect("resample")),
    )
}

fn detect_16k(name: &str) -> Vec<(f64, f64)> {
    let (rate, samples) = common::read_wav(name);
    assert_eq!(rate, 16_000);
    detect(common::frames16(&samples, 50))
}

fn assert_turns(name: &str, found: &[(f64, f64)], expected: &[(f64, f64)]) {
    assert_eq!(
        found.len(),
        expected.len(),
        "{name}: found {found:?}, expected {expected:?}"
    );
    for (f, e) in found.iter().zip(expected) {
        assert!(
            (f.0 - e.0).abs() <= TOLERANCE_S && (f.1 - e.1).abs() <= TOLERANCE_S,
            "{name}: found {f:?}, expected {e:?} (±{TOLERANCE_S} s); all found {found:?}"
        );
    }
}

#[test]
fn each_single_utterance_is_one_turn_at_the_right_place() {
    for (name, start, end) in [
        ("hello.48k.wav", 0.01, 2.48),
        ("minecraft.48k.wav", 0.04, 2.37),
        ("story.48k.wav", 0.05, 3.33),
        ("interrupt.48k.wav", 0.00, 2.64),
    ] {
        assert_turns(name, &detect_48k(name), &[(start, end)]);
    }
}

#[test]
fn a_call_with_two_turns_gives_two_turns() {
    let name = "call-two-turns.48k.wav";
    assert_turns(name, &detect_48k(name), &[(0.51, 2.98), (5.84, 8.18)]);
}

#[test]
fn a_caller_who_interrupts_the_companion_gives_two_turns() {
    let name = "call-barge-in.48k.wav";
    assert_turns(name, &detect_48k(name), &[(0.55, 3.83), (5.36, 8.00)]);
}

#[test]
fn silence_and_pink_noise_are_not_speech() {
    for name in ["silence-3s.16k.wav", "pink-noise-3s.16k.wav"] {
        assert_turns(name, &detect_16k(name), &[]);
    }
}

#[test]
fn a_cough_does_not_start_a_turn() {
    // 100 ms of the start of "hello" (a short voiced burst) between silences.
    let (_, samples) = common::read_wav("hello.48k.wav");
    let mut clip = vec![0i16; 48_000];
    clip.extend_from_slice(&samples[480..480 + 4_800]);
    clip.extend(std::iter::repeat_n(0i16, 48_000));
    let mut resampler = Resampler48To16::new().expect("resampler builds");
    let frames = common::frames48(&clip, 10);
    let found = detect(
        frames
            .iter()
            .map(|f| resampler.process(f).expect("resample")),
    );
    assert!(found.is_empty(), "a 100 ms sound started a turn: {found:?}");
}
