//! A tiny formant synthesiser: real, speech-like audio for the mock TTS endpoints.
//!
//! Each character of the text gets a fixed slot; letters are voiced (a 120 Hz glottal pulse
//! train shaped by two vowel formants), spaces and punctuation are silence. Character slots
//! double as the alignment the ElevenLabs mock reports.

use std::f64::consts::TAU;

/// Seconds of audio per character of input text (about 15 characters per second, like speech).
pub const SECONDS_PER_CHAR: f64 = 0.065;

/// Synthesised speech for `text` at `sample_rate`: s16 samples.
pub fn synthesize(text: &str, sample_rate: u32) -> Vec<i16> {
    let rate = f64::from(sample_rate);
    let slot = (SECONDS_PER_CHAR * rate) as usize;
    let ramp = (0.005 * rate) as usize;
    let mut out = Vec::with_capacity(slot * text.chars().count());
    let mut phase = 0.0f64;
    for c in text.chars() {
        let Some((f1, f2)) = formants(c) else {
            out.extend(std::iter::repeat_n(0i16, slot));
            continue;
        };
        for n in 0..slot {
            let t = (out.len() as f64) / rate;
            let f0 = 120.0 + 6.0 * (TAU * 5.0 * t).sin();
            phase = (phase + f0 / rate).fract();
            let mut s = 0.0;
            for h in 1..=12 {
                let f = f0 * f64::from(h);
                if f > rate / 2.0 {
                    break;
                }
                let gain = resonance(f, f1, 90.0) + 0.6 * resonance(f, f2, 120.0);
                s += gain / f64::from(h) * (TAU * f64::from(h) * phase).sin();
            }
            let edge = n.min(slot - 1 - n);
            let env = if edge < ramp {
                edge as f64 / ramp as f64
            } else {
                1.0
            };
            out.push((s * env * 6000.0).clamp(-32767.0, 32767.0) as i16);
        }
    }
    out
}

/// First and second formant (Hz) for a letter; `None` for silence.
fn formants(c: char) -> Option<(f64, f64)> {
    if !c.is_alphanumeric() {
        return None;
    }
    Some(match c.to_ascii_lowercase() {
        'a' => (730.0, 1090.0),
        'e' => (530.0, 1840.0),
        'i' | 'y' => (270.0, 2290.0),
        'o' => (570.0, 840.0),
        'u' | 'w' => (300.0, 870.0),
        _ => (450.0, 1500.0), // a neutral, schwa-like consonant stand-in
    })
}

fn resonance(f: f64, centre: f64, bandwidth: f64) -> f64 {
    let x = (f - centre) / bandwidth;
    1.0 / (1.0 + x * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_length_follows_the_text_and_is_not_silent() {
        let a = synthesize("hello there", 24_000);
        assert_eq!(a.len(), 11 * (0.065 * 24_000.0) as usize);
        let energy: f64 = a.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(energy.sqrt() > 500.0, "rms {}", energy.sqrt());
        assert!(synthesize("...", 16_000).iter().all(|&s| s == 0));
    }
}
