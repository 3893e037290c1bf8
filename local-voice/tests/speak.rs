//! The companion speaks: espeak-ng turns text into streamed audio with timing events, stops
//! at once when the caller barges in, and serves many voices from one worker.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use local_voice::Error;
use local_voice::espeak::{Espeak, EspeakConfig, EspeakHandle, SAMPLE_RATE_HZ, SynthEvent, Voice};

const HELLO: &str = "Hello! What is the weather like today?";

/// espeak-ng is a process-wide singleton: every test shares one worker.
fn engine() -> EspeakHandle {
    static ENGINE: OnceLock<EspeakHandle> = OnceLock::new();
    ENGINE
        .get_or_init(|| Espeak::start(EspeakConfig::default()).expect("espeak-ng starts"))
        .clone()
}

/// Everything one request produced, in order, with the audio joined.
struct Spoken {
    audio: Vec<i16>,
    chunks: usize,
    events: Vec<SynthEvent>,
}

fn speak(handle: &EspeakHandle, text: &str, voice: &Voice) -> Spoken {
    let mut spoken = Spoken {
        audio: Vec::new(),
        chunks: 0,
        events: Vec::new(),
    };
    for item in handle.synthesize(text, voice).expect("request queued") {
        match item.expect("synthesis succeeds") {
            SynthEvent::Audio(pcm) => {
                spoken.chunks += 1;
                spoken.audio.extend_from_slice(&pcm);
            }
            event => spoken.events.push(event),
        }
    }
    spoken
}

fn audio_ms(samples: usize) -> u32 {
    (samples as u64 * 1000 / u64::from(SAMPLE_RATE_HZ)) as u32
}

#[test]
fn hello_is_spoken_as_streamed_audio_with_phonemes_and_words_in_time() {
    let spoken = speak(&engine(), HELLO, &Voice::default());

    // About 2.3 s of speech, delivered in many chunks rather than one block at the end.
    let duration_ms = audio_ms(spoken.audio.len());
    assert!((1_500..=3_500).contains(&duration_ms), "{duration_ms} ms");
    assert!(spoken.chunks > 20, "only {} chunks", spoken.chunks);
    let peak = spoken.audio.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 3_000, "audio is nearly silent (peak {peak})");
    assert!(matches!(
        spoken.events.last(),
        Some(SynthEvent::Finished { samples }) if *samples == spoken.audio.len() as u64
    ));

    // Phonemes: a couple of dozen, starting in order, all inside the audio.
    let phonemes: Vec<(&str, u32)> = spoken
        .events
        .iter()
        .filter_map(|e| match e {
            SynthEvent::Phoneme { mnemonic, start_ms } => Some((mnemonic.as_str(), *start_ms)),
            _ => None,
        })
        .collect();
    assert!(phonemes.len() >= 20, "{phonemes:?}");
    assert!(
        phonemes.windows(2).all(|w| w[0].1 <= w[1].1),
        "{phonemes:?}"
    );
    assert!(
        phonemes.iter().all(|(_, t)| *t <= duration_ms),
        "{phonemes:?}"
    );
    assert!(phonemes.iter().any(|(m, _)| *m == "h"), "{phonemes:?}");

    // Words: every word of the sentence, in order, pointing back into the text.
    let words: Vec<(&str, u32)> = spoken
        .events
        .iter()
        .filter_map(|e| match e {
            SynthEvent::Word {
                text_offset,
                text_len,
                start_ms,
            } => Some((&HELLO[*text_offset..text_offset + text_len], *start_ms)),
            _ => None,
        })
        .collect();
    let texts: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
    assert_eq!(
        texts,
        ["Hello", "What", "is", "the", "weather", "like", "today"]
    );
    assert!(words.windows(2).all(|w| w[0].1 < w[1].1), "{words:?}");

    // Two sentences end: after "Hello!" and at the end.
    let ends = spoken
        .events
        .iter()
        .filter(|e| matches!(e, SynthEvent::SentenceEnd { .. }))
        .count();
    assert_eq!(ends, 2);
}

#[test]
fn barge_in_stops_a_long_answer_within_milliseconds_and_the_next_answer_plays() {
    let tts = engine();
    let long = "Once upon a time a little robot learned to paint the sky. ".repeat(60);
    let mut answer = tts.synthesize(&long, &Voice::default()).unwrap();
    // The first audio arrives while the rest is still being synthesised.
    let first = answer.next().unwrap().unwrap();
    assert!(matches!(
        first,
        SynthEvent::Phoneme { .. } | SynthEvent::Word { .. } | SynthEvent::Audio(_)
    ));

    // The user talks over the companion.
    let barge_in = Instant::now();
    answer.cancel();
    let mut heard_ms = 0;
    let mut last = None;
    for item in answer.by_ref() {
        match item {
            Ok(SynthEvent::Audio(pcm)) => heard_ms += audio_ms(pcm.len()),
            other => last = Some(other),
        }
    }
    let stopped_after = barge_in.elapsed();
    assert!(matches!(last, Some(Err(Error::Cancelled))), "{last:?}");
    // Measured ~40 us; the bound leaves room for a loaded CI machine.
    assert!(
        stopped_after < Duration::from_millis(200),
        "{stopped_after:?}"
    );
    // A few minutes of speech were asked for; far less was made.
    assert!(heard_ms < 60_000, "{heard_ms} ms of audio after cancel");

    // The worker is free again at once.
    let next = speak(&tts, "Okay, go on.", &Voice::default());
    assert!(audio_ms(next.audio.len()) > 300);
}

#[test]
fn dropping_a_stream_cancels_it_and_frees_the_worker() {
    let tts = engine();
    let long = "Tell me more about that. ".repeat(150);
    let started = Instant::now();
    for _ in 0..5 {
        let mut stream = tts.synthesize(&long, &Voice::default()).unwrap();
        let _ = stream.next();
        drop(stream);
    }
    let short = speak(&tts, "Yes.", &Voice::default());
    assert!(!short.audio.is_empty());
    // Five full syntheses of this text would take far longer than five aborted ones.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn many_voices_speak_at_once_from_many_threads_without_crashing() {
    let tts = engine();
    let voices = [
        Voice::default(),
        Voice::named("en"),
        Voice {
            rate_wpm: 250,
            pitch: 70,
            ..Voice::default()
        },
        Voice {
            rate_wpm: 120,
            pitch: 20,
            ..Voice::named("en-gb-x-rp")
        },
    ];
    let lengths: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = voices
            .iter()
            .map(|voice| {
                let tts = tts.clone();
                s.spawn(move || {
                    (0..5)
                        .map(|_| audio_ms(speak(&tts, HELLO, voice).audio.len()))
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for per_voice in &lengths {
        assert!(
            per_voice.iter().all(|ms| (1_000..=5_000).contains(ms)),
            "{lengths:?}"
        );
    }
    // Faster speech is shorter, slower speech longer.
    assert!(
        lengths[2][0] < lengths[0][0] && lengths[0][0] < lengths[3][0],
        "{lengths:?}"
    );
}

#[test]
fn bad_requests_get_typed_errors_and_the_worker_carries_on() {
    let tts = engine();
    let mut stream = tts
        .synthesize("hello", &Voice::named("no-such-voice"))
        .unwrap();
    assert!(matches!(stream.next(), Some(Err(Error::UnknownVoice(v))) if v == "no-such-voice"));
    assert!(stream.next().is_none());

    let too_fast = Voice {
        rate_wpm: 1_000,
        ..Voice::default()
    };
    assert!(matches!(
        tts.synthesize("hello", &too_fast),
        Err(Error::VoiceOutOfRange {
            setting: "rate_wpm",
            value: 1_000,
            ..
        })
    ));
    let max = tts.config().max_text_bytes;
    assert!(matches!(
        tts.synthesize(&"a".repeat(max + 1), &Voice::default()),
        Err(Error::TextTooLong { .. })
    ));
    assert!(matches!(
        tts.synthesize("nul\0byte", &Voice::default()),
        Err(Error::InteriorNul { what: "text" })
    ));

    // Empty text is not an error: it just makes (almost) no sound.
    let empty = speak(&tts, "", &Voice::default());
    assert!(audio_ms(empty.audio.len()) < 500);
    assert!(matches!(
        empty.events.last(),
        Some(SynthEvent::Finished { .. })
    ));
    assert!(!speak(&tts, HELLO, &Voice::default()).audio.is_empty());
}

#[test]
fn starting_again_shares_the_one_engine_but_a_different_config_is_refused() {
    let _running = engine();
    let again = Espeak::start(EspeakConfig::default()).unwrap();
    assert!(!speak(&again, "Yes.", &Voice::default()).audio.is_empty());
    let other = EspeakConfig {
        chunk_ms: 40,
        ..EspeakConfig::default()
    };
    assert!(matches!(
        Espeak::start(other),
        Err(Error::EspeakAlreadyRunning)
    ));
}

#[test]
fn config_reads_from_json_with_documented_defaults() {
    let config: EspeakConfig = serde_json::from_str(r#"{"chunk_ms": 10}"#).unwrap();
    assert_eq!(config.chunk_ms, 10);
    assert_eq!(config.queue_depth, EspeakConfig::default().queue_depth);
    assert!(serde_json::from_str::<EspeakConfig>(r#"{"chunk": 10}"#).is_err());
    let voice: Voice = serde_json::from_str(r#"{"name": "en"}"#).unwrap();
    assert_eq!(voice.rate_wpm, 175);
}

#[test]
fn word_positions_point_into_non_ascii_text() {
    let text = "Ça va? Très bien, naïve café.";
    let spoken = speak(&engine(), text, &Voice::named("fr"));
    let words: Vec<&str> = spoken
        .events
        .iter()
        .filter_map(|e| match e {
            SynthEvent::Word {
                text_offset,
                text_len,
                ..
            } => text.get(*text_offset..text_offset + text_len),
            _ => None,
        })
        .collect();
    assert_eq!(words, ["Ça", "va", "Très", "bien", "naïve", "café"]);
}
