//! Prints the numbers in README.md: recogniser word accuracy (stock vs companion language
//! model), real-time factor and memory, and espeak-ng synthesis speed and timing events.
//!
//! `cargo run -p local-voice --release --example measure [stock|companion|tts]`: an argument
//! runs only that part, so memory can be read for one model in a fresh process.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use local_voice::espeak::{Espeak, EspeakConfig, SAMPLE_RATE_HZ, SynthEvent, Voice};
use local_voice::sphinx::{LanguageModel, Recognizer, RecognizerConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time this process has used, seconds (Linux `/proc/self/stat`, 100 ticks per second).
/// The machine is shared, so CPU time says more than wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let only = std::env::args().nth(1).unwrap_or_default();
    for (label, lm, noise_floor_dbfs) in [
        ("stock, clean input", LanguageModel::Stock, None),
        ("stock, noise floor", LanguageModel::Stock, Some(-50.0)),
        ("companion, clean input", LanguageModel::Companion, None),
        (
            "companion, noise floor",
            LanguageModel::Companion,
            Some(-50.0),
        ),
    ] {
        if !only.is_empty() && !label.starts_with(only.as_str()) {
            continue;
        }
        let before = rss_kib();
        let t = Instant::now();
        let mut config = RecognizerConfig {
            language_model: lm,
            noise_floor_dbfs,
            ..RecognizerConfig::default()
        };
        // MEASURE_LW=10 tries another language-model weight.
        if let Some(lw) = std::env::var("MEASURE_LW")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.lm_weight = lw;
        }
        let mut recognizer = Recognizer::new(&config)?;
        let load = t.elapsed();
        let rss = rss_kib().saturating_sub(before);
        let (mut audio_s, mut cpu_s, mut acc_sum) = (0.0, 0.0, 0.0);
        println!("== {label}: load {load:?}, +{} MiB RSS", rss / 1024);
        for (name, reference) in common::RECORDINGS {
            let pcm = common::read_wav(&common::testdata(&format!("{name}.16k.wav")));
            let cpu = cpu_seconds();
            recognizer.start_utterance()?;
            for chunk in pcm.chunks(320) {
                recognizer.feed(chunk)?;
            }
            let transcript = recognizer.finish()?;
            cpu_s += cpu_seconds() - cpu;
            audio_s += pcm.len() as f64 / 16_000.0;
            let acc = common::word_accuracy(reference, &transcript.text);
            acc_sum += acc;
            println!(
                "  {name:<10} {:>5.1} %  \"{}\"",
                acc * 100.0,
                transcript.text
            );
        }
        println!(
            "  mean word accuracy {:.1} %, real-time factor {:.3}",
            acc_sum * 100.0 / common::RECORDINGS.len() as f64,
            cpu_s / audio_s
        );
    }

    if !only.is_empty() && only != "tts" {
        return Ok(());
    }
    let tts = Espeak::start(EspeakConfig::default())?;
    let voice = Voice::default();
    let text = "Hello! What is the weather like today?";
    // Time a warm request: the engine is shared by the whole process.
    for _ in tts.synthesize(text, &voice)? {}
    let t = Instant::now();
    let mut first_audio = None;
    let (mut samples, mut phonemes) = (0usize, Vec::new());
    for item in tts.synthesize(text, &voice)? {
        match item? {
            SynthEvent::Audio(pcm) => {
                first_audio.get_or_insert(t.elapsed());
                samples += pcm.len();
            }
            SynthEvent::Phoneme { mnemonic, start_ms } => {
                phonemes.push(format!("{mnemonic}@{start_ms}"));
            }
            SynthEvent::Word {
                text_offset,
                text_len,
                start_ms,
            } => {
                println!(
                    "  word {:?} at {start_ms} ms",
                    &text[text_offset..text_offset + text_len]
                );
            }
            other => println!("  {other:?}"),
        }
    }
    println!(
        "== espeak-ng: {} ms audio in {:?} (first audio after {:?}); {} phonemes: {}",
        samples as u64 * 1000 / u64::from(SAMPLE_RATE_HZ),
        t.elapsed(),
        first_audio.unwrap_or_default(),
        phonemes.len(),
        phonemes.join(" ")
    );
    let long = text.repeat(50);
    let t = Instant::now();
    let cpu = cpu_seconds();
    let mut samples = 0usize;
    for item in tts.synthesize(&long, &voice)? {
        if let SynthEvent::Audio(pcm) = item? {
            samples += pcm.len();
        }
    }
    let audio_s = samples as f64 / f64::from(SAMPLE_RATE_HZ);
    let cpu = cpu_seconds() - cpu;
    println!(
        "== espeak-ng speed: {audio_s:.1} s of audio in {:?} wall, {cpu:.2} s CPU = {:.0} s of audio per CPU-second",
        t.elapsed(),
        audio_s / cpu.max(0.01)
    );

    // Barge-in: cancel a long answer just after its first audio.
    let mut answer = tts.synthesize(&long, &voice)?;
    while !matches!(answer.next(), Some(Ok(SynthEvent::Audio(_))) | None) {}
    let t = Instant::now();
    answer.cancel();
    let after: usize = answer
        .by_ref()
        .map(|item| match item {
            Ok(SynthEvent::Audio(pcm)) => pcm.len(),
            _ => 0,
        })
        .sum();
    println!(
        "== barge-in: stream ended {:?} after cancel, {} ms of audio delivered after it",
        t.elapsed(),
        after as u64 * 1000 / u64::from(SAMPLE_RATE_HZ)
    );
    Ok(())
}
