//! Shared helpers for the media integration tests: reading the test recordings and loading
//! the Silero model from the bootstrap's `.deps` folder.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use media::{Frame16, Frame48, MediaTime, RuntimePaths, SileroCall, SileroModel};

/// `media/testdata/NAME`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The runtime files: `$COMPANION_DEPS_DIR`, else `<workspace root>/.deps`.
pub fn runtime_paths() -> RuntimePaths {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("media sits in the workspace root");
    RuntimePaths::from_env_or(root)
}

/// The shared Silero model; panics with the loader's message (which says what to install).
pub fn silero() -> SileroModel {
    match SileroModel::load(&runtime_paths()) {
        Ok(model) => model,
        Err(e) => panic!("{e}"),
    }
}

/// A mono 16-bit WAV file: its rate and samples.
pub fn read_wav(name: &str) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::open(testdata(name)).expect("test recording exists");
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{name} is mono");
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("readable wav");
    (spec.sample_rate, samples)
}

/// Cuts a 48 kHz recording into 20 ms frames the way a call delivers them (last one padded),
/// followed by `tail_frames` frames of silence.
pub fn frames48(samples: &[i16], tail_frames: usize) -> Vec<Frame48> {
    let mut frames = Vec::new();
    for (i, chunk) in samples.chunks(960).enumerate() {
        let mut buf = [0i16; 960];
        buf[..chunk.len()].copy_from_slice(chunk);
        let time = MediaTime::from_samples(i as u64 * 960, 48_000);
        frames.push(Frame48::from_i16(48_000, &buf, time).expect("960 samples at 48 kHz"));
    }
    let n = frames.len();
    for i in n..n + tail_frames {
        frames.push(Frame48::silence(MediaTime::from_samples(
            i as u64 * 960,
            48_000,
        )));
    }
    frames
}

/// As [`frames48`] for a 16 kHz recording.
pub fn frames16(samples: &[i16], tail_frames: usize) -> Vec<Frame16> {
    let mut frames = Vec::new();
    for (i, chunk) in samples.chunks(320).enumerate() {
        let mut buf = [0i16; 320];
        buf[..chunk.len()].copy_from_slice(chunk);
        let time = MediaTime::from_samples(i as u64 * 320, 16_000);
        frames.push(Frame16::from_i16(16_000, &buf, time).expect("320 samples at 16 kHz"));
    }
    let n = frames.len();
    for i in n..n + tail_frames {
        frames.push(Frame16::silence(MediaTime::from_samples(
            i as u64 * 320,
            16_000,
        )));
    }
    frames
}

/// One call's handle on the shared model.
pub fn silero_call() -> SileroCall {
    silero().for_call().expect("per-call tensors")
}
