//! Visemes (mouth shapes for lipsync), stamped on the outgoing audio's media clock.
//!
//! # The viseme set
//!
//! The 15 Oculus/Meta visemes, with the sounds that produce them:
//!
//! | viseme | sounds (ARPAbet / IPA)            | mouth                         |
//! |--------|-----------------------------------|-------------------------------|
//! | `sil`  | silence, pauses                   | closed, relaxed               |
//! | `PP`   | P B M / p b m                     | lips pressed together         |
//! | `FF`   | F V / f v                         | lower lip under upper teeth   |
//! | `TH`   | TH DH / θ ð                       | tongue between teeth          |
//! | `DD`   | T D / t d                         | tongue on the ridge, open a bit|
//! | `kk`   | K G NG HH / k g ŋ h x             | back of tongue raised         |
//! | `CH`   | CH JH SH ZH / tʃ dʒ ʃ ʒ           | lips pushed forward           |
//! | `SS`   | S Z / s z                         | teeth nearly closed           |
//! | `nn`   | N L / n l                         | tongue up, slightly open      |
//! | `RR`   | R ER / r ɹ ɾ ɜ ɚ                  | lips slightly rounded         |
//! | `aa`   | AA AE AH AW AY / a ɑ æ ʌ ɐ        | open jaw                      |
//! | `E`    | EH EY / e ɛ ə                     | half open, spread             |
//! | `ih`   | IH IY Y / i ɪ j                   | spread, nearly closed         |
//! | `oh`   | AO OW OY / o ɔ ɒ                  | rounded, open                 |
//! | `ou`   | UH UW W / u ʊ w                   | rounded, small                |
//!
//! VRM avatars have five mouth blend shapes (`aa ee ih oh ou`) plus neutral. The reduction
//! ([`Viseme::to_vrm`]) keeps the five vowels as they are and gives each consonant a partial
//! weight on the vowel shape its mouth resembles: `PP` and `sil` are neutral (all zero), `FF`
//! `TH` `SS` `DD` `nn` are a small `ih`, `kk` a small `aa`, `CH` and `RR` a small `ou`.
//!
//! # Two sources
//!
//! - [`Viseme::from_arpabet`] and [`Viseme::from_espeak`] map a TTS engine's phoneme timings
//!   (espeak-ng mnemonics or IPA; ARPAbet) to visemes; [`VisemeFrame::at`] stamps one at
//!   `audio_start + offset`, where `audio_start` is the media time of the utterance's first
//!   outgoing sample.
//! - [`AudioVisemeEstimator`] estimates mouth openness and vowel weights from the outgoing
//!   audio itself, for TTS engines that give no timings: loudness drives openness, and the
//!   energy split between three bands (roughly F1, low F2 and high F2 regions) chooses between
//!   open (`aa`), front (`ee`, `ih`) and rounded (`oh`, `ou`) shapes. It is a cheap heuristic,
//!   not a phoneme recogniser.
//!
//! Frames carry the same [`MediaTime`] as the audio they describe, so a client schedules them
//! against playback of that audio.

use std::time::Duration;

use crate::frame::{Frame48, to_dbfs};
use crate::time::MediaTime;

/// One of the 15 Oculus visemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Viseme {
    /// Silence.
    #[serde(rename = "sil")]
    Sil,
    /// P, B, M.
    PP,
    /// F, V.
    FF,
    /// TH (both voiced and voiceless).
    TH,
    /// T, D.
    DD,
    /// K, G, NG.
    #[serde(rename = "kk")]
    Kk,
    /// CH, J, SH, ZH.
    CH,
    /// S, Z.
    SS,
    /// N, L.
    #[serde(rename = "nn")]
    Nn,
    /// R.
    RR,
    /// Open vowels (father, cat, cut).
    #[serde(rename = "aa")]
    Aa,
    /// Mid front vowels (bed, say).
    E,
    /// Close front vowels (sit, see).
    #[serde(rename = "ih")]
    Ih,
    /// Rounded open vowels (thought, go).
    #[serde(rename = "oh")]
    Oh,
    /// Rounded close vowels (book, food).
    #[serde(rename = "ou")]
    Ou,
}

/// Weights of the five VRM mouth shapes (each 0..1; all zero is the neutral mouth).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VrmWeights {
    /// Open mouth.
    pub aa: f32,
    /// Spread, half open.
    pub ee: f32,
    /// Spread, nearly closed.
    pub ih: f32,
    /// Rounded, open.
    pub oh: f32,
    /// Rounded, small.
    pub ou: f32,
}

impl Viseme {
    /// All 15, in the Oculus order.
    pub const ALL: [Self; 15] = [
        Self::Sil,
        Self::PP,
        Self::FF,
        Self::TH,
        Self::DD,
        Self::Kk,
        Self::CH,
        Self::SS,
        Self::Nn,
        Self::RR,
        Self::Aa,
        Self::E,
        Self::Ih,
        Self::Oh,
        Self::Ou,
    ];

    /// The Oculus name (`"sil"`, `"PP"`, ... `"ou"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sil => "sil",
            Self::PP => "PP",
            Self::FF => "FF",
            Self::TH => "TH",
            Self::DD => "DD",
            Self::Kk => "kk",
            Self::CH => "CH",
            Self::SS => "SS",
            Self::Nn => "nn",
            Self::RR => "RR",
            Self::Aa => "aa",
            Self::E => "E",
            Self::Ih => "ih",
            Self::Oh => "oh",
            Self::Ou => "ou",
        }
    }

    /// The VRM reduction (see the module docs).
    #[must_use]
    pub const fn to_vrm(self) -> VrmWeights {
        let z = VrmWeights {
            aa: 0.0,
            ee: 0.0,
            ih: 0.0,
            oh: 0.0,
            ou: 0.0,
        };
        match self {
            Self::Sil | Self::PP => z,
            Self::FF | Self::TH | Self::SS => VrmWeights { ih: 0.3, ..z },
            Self::DD | Self::Nn => VrmWeights { ih: 0.4, ..z },
            Self::Kk => VrmWeights { aa: 0.4, ..z },
            Self::CH => VrmWeights { ou: 0.5, ..z },
            Self::RR => VrmWeights { ou: 0.4, ..z },
            Self::Aa => VrmWeights { aa: 1.0, ..z },
            Self::E => VrmWeights { ee: 1.0, ..z },
            Self::Ih => VrmWeights { ih: 1.0, ..z },
            Self::Oh => VrmWeights { oh: 1.0, ..z },
            Self::Ou => VrmWeights { ou: 1.0, ..z },
        }
    }

    /// Maps an ARPAbet phoneme (`"HH"`, `"AH0"`, `"OW1"`; stress digits ignored, any case).
    /// `None` for symbols that are not ARPAbet.
    #[must_use]
    pub fn from_arpabet(phoneme: &str) -> Option<Self> {
        let p = phoneme
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit());
        let mut buf = [0u8; 3];
        if p.is_empty() || p.len() > buf.len() || !p.is_ascii() {
            return None;
        }
        for (b, c) in buf.iter_mut().zip(p.bytes()) {
            *b = c.to_ascii_uppercase();
        }
        Some(match &buf[..p.len()] {
            b"SIL" | b"SP" | b"PAU" => Self::Sil,
            b"P" | b"B" | b"M" => Self::PP,
            b"F" | b"V" => Self::FF,
            b"TH" | b"DH" => Self::TH,
            b"T" | b"D" | b"DX" => Self::DD,
            b"K" | b"G" | b"NG" | b"HH" => Self::Kk,
            b"CH" | b"JH" | b"SH" | b"ZH" => Self::CH,
            b"S" | b"Z" => Self::SS,
            b"N" | b"L" | b"EL" | b"EM" | b"EN" => Self::Nn,
            b"R" | b"ER" | b"AXR" => Self::RR,
            b"AA" | b"AE" | b"AH" | b"AW" | b"AY" | b"AX" => Self::Aa,
            b"EH" | b"EY" => Self::E,
            b"IH" | b"IY" | b"Y" | b"IX" => Self::Ih,
            b"AO" | b"OW" | b"OY" => Self::Oh,
            b"UH" | b"UW" | b"W" => Self::Ou,
            _ => return None,
        })
    }

    /// Maps an espeak-ng phoneme mnemonic (`"h"`, `"@"`, `"oU"`, `"aI"`, `"tS"`) or an IPA
    /// symbol (`"ə"`, `"ʃ"`, `"oʊ"`). Stress and length marks are ignored; a diphthong takes
    /// the viseme of its first vowel. `None` for symbols it does not know.
    #[must_use]
    pub fn from_espeak(phoneme: &str) -> Option<Self> {
        let mut chars = phoneme.chars().filter(|c| {
            !matches!(
                c,
                '\'' | ',' | ':' | 'ˈ' | 'ˌ' | 'ː' | 'ˑ' | '#' | '-' | '%' | '=' | '!'
            )
        });
        let first = chars.next()?;
        let second = chars.next();
        // Affricates and the espeak digraphs that start with a letter of another class.
        match (first, second) {
            ('t', Some('S' | 'ʃ')) | ('d', Some('Z' | 'ʒ')) => return Some(Self::CH),
            ('_', _) => return Some(Self::Sil),
            _ => {}
        }
        Some(match first {
            'p' | 'b' | 'm' => Self::PP,
            'f' | 'v' => Self::FF,
            'T' | 'D' | 'θ' | 'ð' => Self::TH,
            't' | 'd' => Self::DD,
            'k' | 'g' | 'ɡ' | 'N' | 'ŋ' | 'h' | 'x' | 'ʔ' => Self::Kk,
            'S' | 'Z' | 'ʃ' | 'ʒ' | 'ʧ' | 'ʤ' | 'C' | 'ç' => Self::CH,
            's' | 'z' => Self::SS,
            'n' | 'l' | 'ɫ' | 'ɲ' => Self::Nn,
            'r' | 'ɹ' | 'ɾ' | 'ʁ' | 'R' | '3' | 'ɜ' | 'ɚ' | 'ɝ' => Self::RR,
            'a' | 'A' | 'V' | 'ɑ' | 'æ' | 'ʌ' | 'ɐ' | '&' => Self::Aa,
            'e' | 'E' | '@' | 'ɛ' | 'ə' => Self::E,
            'i' | 'I' | 'j' | 'y' | 'ɪ' | 'Y' => Self::Ih,
            'o' | 'O' | '0' | 'ɔ' | 'ɒ' => Self::Oh,
            'u' | 'U' | 'w' | 'ʊ' | 'ɯ' => Self::Ou,
            _ => return None,
        })
    }
}

/// One viseme event on the media clock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisemeFrame {
    /// Media time at which this mouth shape starts (the outgoing audio's clock).
    pub time: MediaTime,
    /// The Oculus viseme.
    pub viseme: Viseme,
    /// The same shape as VRM weights.
    pub vrm: VrmWeights,
}

impl VisemeFrame {
    /// A viseme starting `offset` after `audio_start` (the media time of the utterance's
    /// first outgoing sample), as a TTS engine's phoneme timing gives it.
    #[must_use]
    pub fn at(viseme: Viseme, audio_start: MediaTime, offset: Duration) -> Self {
        Self {
            time: audio_start.plus(offset),
            viseme,
            vrm: viseme.to_vrm(),
        }
    }
}

/// Mouth shape estimated from 20 ms of outgoing audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioViseme {
    /// Media time of the frame it describes.
    pub time: MediaTime,
    /// How open the mouth is, 0 (closed) to 1.
    pub openness: f32,
    /// Vowel weights; they sum to `openness`.
    pub vrm: VrmWeights,
}

/// A second-order band-pass filter (RBJ cookbook, constant 0 dB peak gain).
#[derive(Debug, Clone, Copy)]
struct BandPass {
    b0: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    x1: f32,
    x2: f32,
    y1: f32,
    y2: f32,
}

impl BandPass {
    fn new(centre_hz: f32, q: f32, rate: f32) -> Self {
        let w0 = 2.0 * std::f32::consts::PI * centre_hz / rate;
        let alpha = w0.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        Self {
            b0: alpha / a0,
            b2: -alpha / a0,
            a1: -2.0 * w0.cos() / a0,
            a2: (1.0 - alpha) / a0,
            x1: 0.0,
            x2: 0.0,
            y1: 0.0,
            y2: 0.0,
        }
    }

    fn step(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.b2 * self.x2 - self.a1 * self.y1 - self.a2 * self.y2;
        self.x2 = self.x1;
        self.x1 = x;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Estimates visemes from outgoing 48 kHz audio, one estimate per 20 ms frame.
#[derive(Debug, Clone)]
pub struct AudioVisemeEstimator {
    /// Around the first formant of open vowels.
    f1: BandPass,
    /// Low second formant: rounded back vowels.
    f2_low: BandPass,
    /// High second formant: spread front vowels.
    f2_high: BandPass,
    openness: f32,
}

impl Default for AudioVisemeEstimator {
    fn default() -> Self {
        Self::new()
    }
}

/// Level (dBFS) at which the mouth starts to open, and at which it is fully open.
const QUIET_DBFS: f32 = -50.0;
const LOUD_DBFS: f32 = -15.0;

impl AudioVisemeEstimator {
    /// A fresh estimator.
    #[must_use]
    pub fn new() -> Self {
        let rate = Frame48::RATE as f32;
        Self {
            f1: BandPass::new(700.0, 1.0, rate),
            f2_low: BandPass::new(900.0, 1.5, rate),
            f2_high: BandPass::new(2_200.0, 1.2, rate),
            openness: 0.0,
        }
    }

    /// The mouth shape for one frame of outgoing audio.
    pub fn process(&mut self, frame: &Frame48) -> AudioViseme {
        let (mut total, mut e1, mut e2l, mut e2h) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for &s in frame.samples() {
            let s = if s.is_finite() { s } else { 0.0 };
            total += s * s;
            let a = self.f1.step(s);
            let b = self.f2_low.step(s);
            let c = self.f2_high.step(s);
            e1 += a * a;
            e2l += b * b;
            e2h += c * c;
        }
        let level = to_dbfs((total / Frame48::LEN as f32).sqrt());
        let target = ((level - QUIET_DBFS) / (LOUD_DBFS - QUIET_DBFS)).clamp(0.0, 1.0);
        // Open fast, close a little slower, as jaws do; smooths 20 ms flicker.
        let rate = if target > self.openness { 0.7 } else { 0.4 };
        self.openness += (target - self.openness) * rate;
        let openness = if self.openness.is_finite() {
            self.openness
        } else {
            0.0
        };
        self.openness = openness;

        let sum = e1 + e2l + e2h;
        let vrm = if openness <= 0.01 || sum <= f32::MIN_POSITIVE {
            VrmWeights::default()
        } else {
            let (open, back, front) = (e1 / sum, e2l / sum, e2h / sum);
            // Open vowels need a wide jaw; front/back vowels split by how open the mouth is.
            let raw = VrmWeights {
                aa: open * openness,
                ee: front * openness,
                ih: front * (1.0 - openness),
                oh: back * openness,
                ou: back * (1.0 - openness),
            };
            let norm = raw.aa + raw.ee + raw.ih + raw.oh + raw.ou;
            let k = if norm > 0.0 { openness / norm } else { 0.0 };
            VrmWeights {
                aa: raw.aa * k,
                ee: raw.ee * k,
                ih: raw.ih * k,
                oh: raw.oh * k,
                ou: raw.ou * k,
            }
        };
        AudioViseme {
            time: frame.time(),
            openness,
            vrm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arpabet_and_espeak_agree_on_hello() {
        let arpabet: Vec<_> = ["HH", "AH0", "L", "OW1"]
            .iter()
            .map(|p| Viseme::from_arpabet(p))
            .collect();
        let espeak: Vec<_> = ["h", "@", "l", "'oU"]
            .iter()
            .map(|p| Viseme::from_espeak(p))
            .collect();
        let ipa: Vec<_> = ["h", "ə", "l", "ˈoʊ"]
            .iter()
            .map(|p| Viseme::from_espeak(p))
            .collect();
        assert_eq!(
            arpabet,
            [
                Some(Viseme::Kk),
                Some(Viseme::Aa),
                Some(Viseme::Nn),
                Some(Viseme::Oh)
            ]
        );
        assert_eq!(
            espeak,
            [
                Some(Viseme::Kk),
                Some(Viseme::E),
                Some(Viseme::Nn),
                Some(Viseme::Oh)
            ]
        );
        assert_eq!(espeak, ipa);
        assert_eq!(Viseme::from_espeak("tS"), Some(Viseme::CH));
        assert_eq!(Viseme::from_arpabet("XYZW"), None);
        assert_eq!(Viseme::from_espeak(""), None);
    }

    #[test]
    fn every_viseme_reduces_to_at_most_one_vrm_shape() {
        for v in Viseme::ALL {
            let w = v.to_vrm();
            let sum = w.aa + w.ee + w.ih + w.oh + w.ou;
            assert!((0.0..=1.0).contains(&sum), "{}", v.name());
        }
        assert_eq!(
            serde_json::to_string(&Viseme::Kk).expect("serialises"),
            "\"kk\""
        );
    }

    #[test]
    fn audio_opens_the_mouth_and_silence_closes_it() {
        let mut est = AudioVisemeEstimator::new();
        let mut tone = Frame48::silence(MediaTime(960));
        for (i, s) in tone.samples_mut().iter_mut().enumerate() {
            *s = 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 700.0 / 48_000.0).sin();
        }
        let mut open = AudioViseme::default();
        for _ in 0..5 {
            open = est.process(&tone);
        }
        assert!(open.openness > 0.8, "{open:?}");
        assert!(
            open.vrm.aa > open.vrm.ee,
            "a 700 Hz tone looks like an open vowel: {open:?}"
        );
        assert_eq!(open.time, MediaTime(960));
        let mut closed = open;
        for _ in 0..10 {
            closed = est.process(&Frame48::silence(MediaTime::ZERO));
        }
        assert!(closed.openness < 0.05, "{closed:?}");
    }
}
