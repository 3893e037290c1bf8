//! The one error type of the media crate.

use std::path::PathBuf;

/// Everything that can go wrong in the media core. Bad input is reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A buffer handed to a frame constructor had the wrong number of samples for the rate.
    #[error("a {rate} Hz 20 ms frame needs {expected} samples, got {got}")]
    WrongFrameLength {
        /// Sample rate of the frame type.
        rate: u32,
        /// Samples a 20 ms frame holds at that rate.
        expected: usize,
        /// Samples actually given.
        got: usize,
    },
    /// Audio arrived at a sample rate this stage does not take.
    #[error("expected audio at {expected} Hz, got {got} Hz")]
    WrongSampleRate {
        /// The rate the stage takes.
        expected: u32,
        /// The rate that was given.
        got: u32,
    },
    /// A sample was NaN or infinite.
    #[error("sample {index} is not a finite number")]
    NonFiniteSample {
        /// Index of the first bad sample in the frame.
        index: usize,
    },
    /// libopus rejected a packet or a setting.
    #[error("opus {what} failed: {source}")]
    Opus {
        /// What was being done (`"decode"`, `"set bitrate"`, ...).
        what: &'static str,
        /// The libopus error.
        #[source]
        source: opus::Error,
    },
    /// An Opus packet decoded to something other than one 20 ms frame.
    #[error(
        "opus packet holds {samples} samples per channel; only 20 ms packets (960) are accepted"
    )]
    WrongPacketDuration {
        /// Samples per channel in the packet.
        samples: usize,
    },
    /// An Opus packet is empty or larger than any Opus packet can be.
    #[error("opus packet of {len} bytes is malformed (must be 1..=1275 bytes)")]
    MalformedPacket {
        /// Length of the packet in bytes.
        len: usize,
    },
    /// The resampler could not be built or refused a chunk.
    #[error("resampler {what}: {detail}")]
    Resampler {
        /// What was being done.
        what: &'static str,
        /// The resampler's own message.
        detail: String,
    },
    /// A runtime file the VAD needs is not on disk.
    #[error(
        "{what} not found at {path}: run scripts/bootstrap (it installs the onnxruntime wheel and `silero-vad --no-deps` and links them under .deps/), or set COMPANION_DEPS_DIR"
    )]
    MissingRuntimeFile {
        /// Which file (`"ONNX Runtime library"`, `"Silero VAD model"`).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// ONNX Runtime failed to load, build the session or run the model.
    #[error("onnx runtime {what} failed: {detail}")]
    Onnx {
        /// What was being done.
        what: &'static str,
        /// The runtime's own message.
        detail: String,
    },
    /// The shared VAD session's lock was poisoned by a panic on another thread.
    #[error("the shared VAD session was poisoned by a panic on another call")]
    VadPoisoned,
    /// A configuration value is out of range.
    #[error("config `{key}`: {reason}")]
    InvalidConfig {
        /// Name of the bad key.
        key: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
}

/// Result alias for the media crate.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;
