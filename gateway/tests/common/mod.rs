//! Gateway test helpers: the browser stand-in (`test_support::webrtc::RecordingPeer`, a str0m
//! peer that offers what Chromium offers for a voice call), real Opus audio, CPU time.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod server;
pub mod session;
pub mod voice;

use std::time::Duration;

pub use test_support::webrtc::RecordingPeer;

/// `n` 20 ms Opus frames of a 440 Hz tone (48 kHz mono), as a microphone would send.
pub fn tone_frames(n: usize) -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    let mut pcm = [0i16; 960];
    let mut out = vec![0u8; 1500];
    let mut t = 0usize;
    (0..n)
        .map(|_| {
            for s in &mut pcm {
                let phase = t as f32 * 440.0 * std::f32::consts::TAU / 48_000.0;
                *s = (phase.sin() * 8000.0) as i16;
                t += 1;
            }
            let len = enc.encode(&pcm, &mut out).expect("encode");
            out[..len].to_vec()
        })
        .collect()
}

/// Decodes Opus packets and returns the RMS level of the audio (0..32767).
pub fn decoded_rms(packets: &[Vec<u8>]) -> f64 {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("opus decoder");
    let mut pcm = vec![0i16; 5760];
    let (mut sum, mut n) = (0f64, 0usize);
    for p in packets {
        let len = dec.decode(p, &mut pcm, false).expect("decodable opus");
        for s in &pcm[..len] {
            sum += f64::from(*s) * f64::from(*s);
        }
        n += len;
    }
    if n == 0 { 0.0 } else { (sum / n as f64).sqrt() }
}

/// A fixed step for hand-driven simulations.
pub const STEP: Duration = Duration::from_millis(5);

/// CPU time this process has used so far (all threads), from /proc: nanosecond resolution.
pub fn process_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}
