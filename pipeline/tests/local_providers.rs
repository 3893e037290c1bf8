//! With no API key and no network the companion still speaks (espeak-ng) and listens
//! (PocketSphinx): the local fallback providers, on their own and behind failover.
#![allow(clippy::print_stderr)] // measured latencies and accuracy are printed for the record

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hello_audio;
use futures_util::StreamExt;
use pipeline::config::{LocalSttConfig, LocalTtsConfig};
use pipeline::failover::{build_stt, build_tts};
use pipeline::mock::{Endpoint, MockConfig, MockServer};
use pipeline::stt::LocalStt;
use pipeline::tts::LocalTts;
use pipeline::{SttEvent, SttProvider, TimingUnit, TtsChunk, TtsProvider, TtsRequest};

const HELLO: &str = "Hello! What is the weather like today?";

async fn speak(tts: &dyn TtsProvider, text: &str) -> (Vec<TtsChunk>, Duration) {
    let started = Instant::now();
    let mut stream = tts.synthesize(TtsRequest::new(text));
    let first = stream.next().await.expect("some audio").expect("no error");
    let first_audio = started.elapsed();
    let mut chunks = vec![first];
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.expect("no error mid-stream"));
    }
    (chunks, first_audio)
}

fn audio_secs(chunks: &[TtsChunk]) -> f64 {
    chunks.iter().map(|c| c.duration().as_secs_f64()).sum()
}

#[tokio::test]
async fn the_local_voice_says_hello_with_phoneme_timings_inside_its_audio() {
    let tts = LocalTts::new(&LocalTtsConfig::default()).unwrap();
    assert_eq!(tts.name(), "local-espeak");

    let (chunks, first_audio) = speak(&tts, HELLO).await;

    assert!(chunks.iter().all(|c| c.sample_rate == 22_050));
    let secs = audio_secs(&chunks);
    assert!((1.5..4.0).contains(&secs), "{secs} s of audio");
    let timings: Vec<_> = chunks.iter().flat_map(|c| &c.timings).collect();
    let phonemes: Vec<_> = timings
        .iter()
        .filter(|t| t.unit == TimingUnit::Phoneme)
        .collect();
    assert!(phonemes.len() >= 15, "{} phonemes", phonemes.len());
    for pair in phonemes.windows(2) {
        assert!(pair[0].start <= pair[1].start, "{pair:?}");
        assert!(pair[0].end <= pair[1].start + Duration::from_millis(1));
    }
    assert!(phonemes.iter().all(|p| p.start <= p.end));
    assert!(phonemes.last().unwrap().end.as_secs_f64() <= secs + 0.001);
    let words: Vec<_> = timings
        .iter()
        .filter(|t| t.unit == TimingUnit::Word)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        words,
        ["Hello", "What", "is", "the", "weather", "like", "today"]
    );
    // Measured ~1 ms on a warm engine; the bound leaves room for a busy CI machine.
    assert!(first_audio < Duration::from_millis(500), "{first_audio:?}");
    eprintln!("local tts: first audio {first_audio:?}, {secs:.2} s of audio");
}

#[tokio::test]
async fn text_longer_than_the_engine_takes_at_once_is_spoken_in_pieces_with_running_timings() {
    let tts = LocalTts::new(&LocalTtsConfig::default()).unwrap();
    // 5,000 bytes: over the engine's 4,096-byte request limit and five 1,000-byte pieces.
    let text = "Nine fine pines stand in a line. ".repeat(5_000 / 33 + 1);
    assert!(text.len() > LocalTtsConfig::default().engine.max_text_bytes);
    let (chunks, _) = speak(&tts, &text).await;
    let secs = audio_secs(&chunks);
    assert!(secs > 60.0, "all of it is spoken: {secs} s");
    let words: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.timings)
        .filter(|t| t.unit == TimingUnit::Word)
        .collect();
    assert!(words.len() > 900, "{} words", words.len());
    for pair in words.windows(2) {
        assert!(
            pair[0].start <= pair[1].start,
            "timings run on across pieces: {pair:?}"
        );
    }
    assert!(words.last().unwrap().end.as_secs_f64() <= secs + 0.001);
}

#[tokio::test]
async fn a_caller_barging_in_stops_the_local_voice_and_the_next_reply_starts_at_once() {
    let tts = LocalTts::new(&LocalTtsConfig::default()).unwrap();
    let long = "This sentence is long enough to keep the engine busy for a while. ".repeat(60);
    let started = Instant::now();
    let (whole, _) = speak(&tts, &long).await;
    let whole_time = started.elapsed();
    assert!(audio_secs(&whole) > 60.0);

    let mut reply = tts.synthesize(TtsRequest::new(long.as_str()));
    reply.next().await.unwrap().unwrap();
    let barge_in = Instant::now();
    drop(reply);
    let (next, first_audio) = speak(&tts, HELLO).await;
    let next_reply = barge_in.elapsed();

    assert!((1.5..4.0).contains(&audio_secs(&next)));
    // Were the first reply not cancelled, the engine would finish it before starting the
    // next one.
    assert!(
        next_reply < whole_time / 2,
        "next reply after {next_reply:?}, whole long reply took {whole_time:?}"
    );
    eprintln!(
        "barge-in: next reply complete {next_reply:?} after drop (first audio {first_audio:?}); \
         whole long reply took {whole_time:?}"
    );
}

fn word_accuracy(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<String> = reference
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    // Levenshtein distance over words.
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cost = usize::from(rw != hw);
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    1.0 - row[h.len()] as f64 / r.len() as f64
}

#[tokio::test]
async fn the_local_recogniser_understands_hello_streamed_in_20_ms_chunks() {
    let stt = LocalStt::new(&LocalSttConfig::default()).unwrap();
    assert_eq!(stt.name(), "local-pocketsphinx");

    let started = Instant::now();
    let events: Vec<SttEvent> = stt
        .transcribe(hello_audio())
        .map(Result::unwrap)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let Some(SttEvent::Final(text)) = events.last() else {
        panic!("{events:?}")
    };
    let accuracy = word_accuracy(HELLO, text);
    let (_, pcm) = pipeline::pcm::parse_wav(common::HELLO_WAV).unwrap();
    let audio = pcm.len() as f64 / 32_000.0;
    eprintln!(
        "local stt: {text:?}, accuracy {:.0} %, {:.2} s for {audio:.2} s of audio \
         (real-time factor {:.2}, debug build, includes decoder set-up)",
        accuracy * 100.0,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / audio
    );
    // Measured 100 %; one wrong word of seven still passes.
    assert!(accuracy >= 0.85, "{text:?}: {accuracy}");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, SttEvent::Final(_)))
            .count(),
        1
    );
    assert!(
        matches!(events[0], SttEvent::Partial(_)),
        "a guess before the end: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_speaking_in_real_time_gets_the_transcript_soon_after_they_stop() {
    let stt = LocalStt::new(&LocalSttConfig::default()).unwrap();
    let last_chunk_sent = Arc::new(Mutex::new(Instant::now()));
    let mark = Arc::clone(&last_chunk_sent);
    let paced = hello_audio().then(move |chunk| {
        let mark = Arc::clone(&mark);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            *mark.lock().unwrap() = Instant::now();
            chunk
        }
    });

    let mut events = stt.transcribe(paced.boxed());
    let mut partials = 0;
    let final_text = loop {
        match events.next().await.expect("a final transcript").unwrap() {
            SttEvent::Partial(_) => partials += 1,
            SttEvent::Final(text) => break text,
        }
    };
    let final_latency = last_chunk_sent.lock().unwrap().elapsed();

    assert!(events.next().await.is_none());
    assert!(word_accuracy(HELLO, &final_text) >= 0.85, "{final_text:?}");
    assert!(partials >= 2, "{partials} partials");
    // Measured ~60 ms (debug build): the decoder keeps up with the caller.
    assert!(final_latency < Duration::from_secs(1), "{final_latency:?}");
    eprintln!(
        "local stt paced: {partials} partials, final {final_latency:?} after the audio ended"
    );
}

#[tokio::test]
async fn with_both_speech_vendors_down_the_companion_speaks_with_the_local_voice() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut cfg = mock.pipeline_config();
    cfg.tts.elevenlabs.model = "fault-503".into();
    cfg.tts.openai.model = "fault-500".into();
    let tts = build_tts(&cfg).unwrap();
    assert_eq!(
        tts.provider_names(),
        ["elevenlabs", "openai", "local-espeak"]
    );

    let (chunks, _) = speak(&tts, HELLO).await;

    assert!(chunks.iter().all(|c| c.sample_rate == 22_050));
    assert!((1.5..4.0).contains(&audio_secs(&chunks)));
    assert_eq!(mock.requests(Endpoint::ElevenLabs), 1);
    assert_eq!(mock.requests(Endpoint::Speech), 1);
}

#[tokio::test]
async fn with_no_keys_at_all_the_default_stages_are_the_local_engines() {
    let mut cfg = pipeline::config::PipelineConfig::default();
    for env in [
        &mut cfg.stt.openai.api_key_env,
        &mut cfg.tts.openai.api_key_env,
    ] {
        *env = "PIPELINE_TEST_UNSET_KEY".into();
    }
    cfg.stt.deepgram.api_key_env = "PIPELINE_TEST_UNSET_KEY".into();
    cfg.tts.elevenlabs.api_key_env = "PIPELINE_TEST_UNSET_KEY".into();

    let stt = build_stt(&cfg).unwrap();
    let tts = build_tts(&cfg).unwrap();

    assert_eq!(stt.provider_names(), ["local-pocketsphinx"]);
    assert_eq!(tts.provider_names(), ["local-espeak"]);
    let events: Vec<_> = stt.transcribe(hello_audio()).collect().await;
    assert!(matches!(events.last(), Some(Ok(SttEvent::Final(t))) if t.contains("weather")));
}

#[tokio::test]
async fn a_vendor_voice_reaching_the_local_fallback_is_spoken_in_the_configured_voice() {
    let tts = LocalTts::new(&LocalTtsConfig::default()).unwrap();
    let request = TtsRequest {
        text: HELLO.into(),
        voice: Some("alloy".into()),
    };

    let chunks: Vec<_> = tts.synthesize(request).map(Result::unwrap).collect().await;

    assert!((1.5..4.0).contains(&audio_secs(&chunks)));
}

#[test]
fn an_unknown_local_voice_is_a_config_error_naming_the_key() {
    let config = LocalTtsConfig {
        voice: "no-such-voice".into(),
        ..LocalTtsConfig::default()
    };
    let err = LocalTts::new(&config).unwrap_err();
    assert!(err.to_string().contains("tts.local.voice"), "{err}");
}
