//! What every caller says: a 48 kHz mono WAV, pre-encoded once into 20 ms Opus frames, and
//! where its turns are (found with the media crate's own VAD and end-of-turn detector, so any
//! recording works without hand-written timings).

use std::{path::Path, sync::Arc, time::Duration};

use media::{
    Frame16, Frame48, MediaTime, OpusConfig, OpusEncoder, Resampler48To16, RuntimePaths,
    SileroModel, TurnConfig, TurnDetector, TurnEvent, Vad, VadConfig,
};

/// Why a recording could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read or is not a WAV.
    #[error("reading {path}: {source}")]
    Wav {
        /// The file.
        path: String,
        /// What went wrong.
        source: hound::Error,
    },
    /// The WAV is not what a browser sends.
    #[error(
        "{path}: need 48 kHz mono 16-bit PCM, got {rate} Hz, {channels} channel(s), {bits} bit"
    )]
    Format {
        /// The file.
        path: String,
        /// Its sample rate.
        rate: u32,
        /// Its channel count.
        channels: u16,
        /// Its sample width.
        bits: u16,
    },
    /// Opus, the resampler or the VAD failed.
    #[error("media: {0}")]
    Media(#[from] media::MediaError),
    /// `--turns` could not be parsed.
    #[error(
        "turn list {0:?}: expected START-END[,START-END...] in seconds, e.g. 0.51-2.98,5.84-8.18"
    )]
    TurnList(String),
    /// The detector found no speech in the recording.
    #[error("no turn found in {0}: the recording holds no speech the VAD recognises")]
    NoTurns(String),
}

/// One utterance of the caller, as offsets from the start of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Turn {
    /// Where speech begins.
    #[serde(serialize_with = "ser_ms")]
    pub start: Duration,
    /// Where speech ends (the reference point of the reply latency).
    #[serde(serialize_with = "ser_ms")]
    pub end: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// 48 kHz mono samples of a WAV file.
pub fn read_wav(path: &Path) -> Result<Vec<i16>, ScriptError> {
    let shown = path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|source| ScriptError::Wav {
        path: shown.clone(),
        source,
    })?;
    let spec = reader.spec();
    if spec.sample_rate != 48_000
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(ScriptError::Format {
            path: shown,
            rate: spec.sample_rate,
            channels: spec.channels,
            bits: spec.bits_per_sample,
        });
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ScriptError::Wav {
            path: shown,
            source,
        })
}

/// The samples as 20 ms frames (the last one padded with silence).
#[must_use]
pub fn frames48(samples: &[i16]) -> Vec<Frame48> {
    samples
        .chunks(Frame48::LEN)
        .enumerate()
        .map(|(i, chunk)| {
            let mut pcm = [0i16; Frame48::LEN];
            pcm[..chunk.len()].copy_from_slice(chunk);
            let time = MediaTime::from_samples((i * Frame48::LEN) as u64, 48_000);
            Frame48::from_i16(48_000, &pcm, time).unwrap_or_else(|_| Frame48::silence(time))
        })
        .collect()
}

/// The turns in `frames`, found as the gateway finds them: 48 -> 16 kHz, Silero VAD behind
/// the energy gate, the end-of-turn state machine with default settings. One second of
/// silence is appended so a turn that ends with the file is still closed.
pub fn detect_turns(model: &SileroModel, frames: &[Frame48]) -> Result<Vec<Turn>, ScriptError> {
    let mut resampler = Resampler48To16::new()?;
    let mut vad = Vad::new(model.for_call()?, VadConfig::default());
    let mut detector = TurnDetector::new(TurnConfig::default())?;
    let end = frames.last().map_or(MediaTime::ZERO, |f| f.end_time());
    let tail = (0..50u64).map(|i| Frame48::silence(MediaTime(end.0 + i * Frame48::LEN as u64)));
    let mut turns = Vec::new();
    for frame in frames.iter().copied().chain(tail) {
        let f16: Frame16 = resampler.process(&frame)?;
        let p = vad.process(&f16)?;
        if let Some(TurnEvent::TurnEnd { start, end }) =
            detector.on_frame(p, f16.time(), f16.end_time())
        {
            turns.push(Turn {
                start: start.as_duration(),
                end: end.as_duration(),
            });
        }
    }
    Ok(turns)
}

/// Parses `--turns 0.51-2.98,5.84-8.18` (seconds).
pub fn parse_turns(text: &str) -> Result<Vec<Turn>, ScriptError> {
    let bad = || ScriptError::TurnList(text.to_owned());
    let secs = |s: &str| -> Result<Duration, ScriptError> {
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        Duration::try_from_secs_f64(v).map_err(|_| bad())
    };
    let turns = text
        .split(',')
        .map(|pair| {
            let (a, b) = pair.split_once('-').ok_or_else(bad)?;
            let turn = Turn {
                start: secs(a)?,
                end: secs(b)?,
            };
            if turn.end <= turn.start {
                return Err(bad());
            }
            Ok(turn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if turns.windows(2).any(|w| w[1].start < w[0].end) {
        return Err(bad());
    }
    Ok(turns)
}

/// What every caller plays: Opus frames of the recording, then of silence.
#[derive(Debug, Clone)]
pub struct Script {
    /// The recording as 20 ms Opus packets.
    pub speech: Arc<[bytes::Bytes]>,
    /// One 20 ms Opus packet of silence, sent after the recording (a microphone keeps
    /// sending).
    pub silence: bytes::Bytes,
    /// The caller's turns.
    pub turns: Vec<Turn>,
}

impl Script {
    /// Loads `wav`, keeps its first `limit` (if given) and encodes it with the media crate's
    /// encoder (default reply settings: 32 kbit/s, complexity 5, in-band FEC). Turns are
    /// `turns` when given, else detected with the Silero model under `deps`; turns that do not
    /// end inside the kept audio are dropped.
    pub fn load(
        wav: &Path,
        limit: Option<Duration>,
        turns: Option<Vec<Turn>>,
        deps: &RuntimePaths,
    ) -> Result<Self, ScriptError> {
        let mut frames = frames48(&read_wav(wav)?);
        if let Some(limit) = limit {
            frames.truncate(limit.as_millis().div_ceil(20) as usize);
        }
        let mut turns = match turns {
            Some(t) => t,
            None => detect_turns(&SileroModel::load(deps)?, &frames)?,
        };
        let length = Duration::from_millis(20 * frames.len() as u64);
        turns.retain(|t| t.end <= length);
        if turns.is_empty() {
            return Err(ScriptError::NoTurns(wav.display().to_string()));
        }
        let mut encoder = OpusEncoder::new(&OpusConfig::default())?;
        let mut out = [0u8; media::MAX_PACKET];
        let mut speech = Vec::with_capacity(frames.len());
        for f in &frames {
            let n = encoder.encode(f, &mut out)?;
            speech.push(bytes::Bytes::copy_from_slice(&out[..n]));
        }
        let n = encoder.encode(&Frame48::silence(MediaTime::ZERO), &mut out)?;
        Ok(Self {
            speech: speech.into(),
            silence: bytes::Bytes::copy_from_slice(&out[..n]),
            turns,
        })
    }

    /// Length of the recording as played.
    #[must_use]
    pub fn length(&self) -> Duration {
        Duration::from_millis(20 * self.speech.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../media/testdata")
            .join(name)
    }

    fn deps() -> RuntimePaths {
        RuntimePaths::from_env_or(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
    }

    fn close(a: Duration, secs: f64) -> bool {
        (a.as_secs_f64() - secs).abs() <= 0.08
    }

    #[test]
    fn the_two_turn_call_has_its_two_turns_where_the_readme_says() {
        let script = Script::load(&testdata("call-two-turns.48k.wav"), None, None, &deps())
            .unwrap_or_else(|e| panic!("{e}"));
        let t = &script.turns;
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(close(t[0].start, 0.51) && close(t[0].end, 2.98), "{t:?}");
        assert!(close(t[1].start, 5.84) && close(t[1].end, 8.18), "{t:?}");
        assert_eq!(script.length(), Duration::from_millis(10_020));
        assert_eq!(script.speech.len(), 501);
    }

    #[test]
    fn the_barge_in_call_starts_its_second_turn_at_5_36_s() {
        let script = Script::load(&testdata("call-barge-in.48k.wav"), None, None, &deps())
            .unwrap_or_else(|e| panic!("{e}"));
        let t = &script.turns;
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(close(t[0].end, 3.83) && close(t[1].start, 5.36), "{t:?}");
    }

    #[test]
    fn a_shortened_recording_keeps_only_turns_that_end_inside_it() {
        let script = Script::load(
            &testdata("call-two-turns.48k.wav"),
            Some(Duration::from_secs(4)),
            None,
            &deps(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(script.turns.len(), 1);
        assert_eq!(script.speech.len(), 200);
    }

    #[test]
    fn silence_has_no_turns_and_a_16k_file_is_refused() {
        let err = Script::load(&testdata("silence-3s.16k.wav"), None, None, &deps()).unwrap_err();
        assert!(
            matches!(err, ScriptError::Format { rate: 16_000, .. }),
            "{err}"
        );
        let silent = frames48(&vec![0i16; 48_000 * 2]);
        let model = SileroModel::load(&deps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(detect_turns(&model, &silent).unwrap(), vec![]);
    }

    #[test]
    fn turn_lists_parse_and_bad_ones_are_refused() {
        let t = parse_turns("0.51-2.98, 5.84-8.18").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].end, Duration::from_millis(8180));
        for bad in ["", "1", "2-1", "a-b", "0-2,1-3", "-1-2"] {
            assert!(parse_turns(bad).is_err(), "{bad}");
        }
    }
}
