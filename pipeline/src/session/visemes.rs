//! Viseme frames for the client: from TTS timings when the provider gives them, else from
//! the outgoing audio (media's estimator), in the protocol's id set.

use media::viseme::{AudioViseme, Viseme};
use protocol::viseme::VisemeFrame;

use crate::provider::{Timing, TimingUnit};

/// The protocol id of a viseme (the Oculus order, which `Viseme::ALL` follows).
pub(crate) fn id(v: Viseme) -> u8 {
    Viseme::ALL
        .iter()
        .position(|x| *x == v)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

/// The viseme a timed piece of text or phoneme shows, if the timing says.
pub(crate) fn from_timing(t: &Timing) -> Option<Viseme> {
    match t.unit {
        TimingUnit::Word => None,
        TimingUnit::Phoneme => {
            Viseme::from_espeak(&t.text).or_else(|| Viseme::from_arpabet(&t.text))
        }
        TimingUnit::Character => {
            let mut chars = t.text.chars();
            let c = chars.next()?;
            if !c.is_alphanumeric() {
                return Some(Viseme::Sil);
            }
            let mut buf = [0u8; 4];
            Viseme::from_espeak(c.to_ascii_lowercase().encode_utf8(&mut buf)).or(Some(Viseme::Nn))
        }
    }
}

/// The dominant viseme of an audio estimate (the estimator gives the five VRM vowels).
pub(crate) fn from_audio(a: &AudioViseme) -> Viseme {
    if a.openness < 0.1 {
        return Viseme::Sil;
    }
    let w = a.vrm;
    let best = [
        (w.aa, Viseme::Aa),
        (w.ee, Viseme::E),
        (w.ih, Viseme::Ih),
        (w.oh, Viseme::Oh),
        (w.ou, Viseme::Ou),
    ]
    .into_iter()
    .fold(
        (f32::MIN, Viseme::Sil),
        |b, x| if x.0 > b.0 { x } else { b },
    );
    best.1
}

/// A protocol frame (dominant id only: no weights, so no allocation per frame).
pub(crate) fn frame(v: Viseme, media_time_us: u64) -> VisemeFrame {
    VisemeFrame {
        media_time_us,
        viseme_id: id(v),
        weights: Vec::new(),
    }
}
