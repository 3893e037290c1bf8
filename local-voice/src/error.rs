//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong in an offline speech engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// espeak-ng could not initialise, usually because its data files are not installed.
    #[error(
        "espeak-ng failed to initialise (code {code}) with data directory {data_dir}; \
         install the Debian packages `libespeak-ng1 espeak-ng-data` (scripts/bootstrap does)"
    )]
    EspeakUnavailable {
        /// The value `espeak_Initialize` returned (0 when the data directory was checked first).
        code: i32,
        /// The data directory that was tried (`default` for the library's built-in one).
        data_dir: String,
    },
    /// espeak-ng is a process-wide singleton and its worker was started with another config.
    #[error("espeak-ng is already running in this process with a different configuration")]
    EspeakAlreadyRunning,
    /// The espeak-ng worker thread has stopped (it panicked or could not be spawned).
    #[error("the espeak-ng worker thread is not running")]
    EspeakStopped,
    /// More synthesis requests are waiting than the configured queue depth allows.
    #[error("the espeak-ng request queue is full ({depth} requests waiting)")]
    QueueFull {
        /// The configured queue depth.
        depth: usize,
    },
    /// The text to speak is longer than the configured limit.
    #[error("text of {len} bytes is longer than the limit of {max} bytes")]
    TextTooLong {
        /// Length of the rejected text in bytes.
        len: usize,
        /// The configured `max_text_bytes`.
        max: usize,
    },
    /// The text to speak or a voice name contains a NUL byte, which C strings cannot carry.
    #[error("{what} contains a NUL byte")]
    InteriorNul {
        /// Which argument held the NUL byte.
        what: &'static str,
    },
    /// A voice setting is outside the range espeak-ng accepts.
    #[error("voice setting `{setting}` = {value} is outside {min}..={max}")]
    VoiceOutOfRange {
        /// The setting's name (`rate_wpm`, `pitch`).
        setting: &'static str,
        /// The rejected value.
        value: u32,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// espeak-ng has no voice of this name (see `espeak-ng --voices`).
    #[error("espeak-ng has no voice named `{0}`")]
    UnknownVoice(String),
    /// `espeak_Synth` reported an error.
    #[error("espeak-ng synthesis failed with code {0}")]
    SynthesisFailed(i32),
    /// The consumer cancelled the synthesis (or dropped the stream) before it finished.
    #[error("synthesis was cancelled")]
    Cancelled,

    /// A model file or directory the recogniser needs does not exist.
    #[error("{what} not found at {}; {hint}", path.display())]
    ModelMissing {
        /// Which model part is missing (`acoustic model`, `dictionary`, ...).
        what: &'static str,
        /// The path that was tried.
        path: PathBuf,
        /// What to do about it (which package to install, which config key to set).
        hint: &'static str,
    },
    /// A language-model corpus gave nothing to learn from or used words the dictionary lacks.
    #[error("language model corpus is unusable: {0}")]
    BadCorpus(String),
    /// PocketSphinx refused its configuration or failed to load the models.
    #[error("PocketSphinx failed to initialise: {0}")]
    RecognizerInit(String),
    /// A PocketSphinx call failed while decoding.
    #[error("PocketSphinx `{call}` failed with code {code}")]
    Decode {
        /// The C function that failed.
        call: &'static str,
        /// Its return value.
        code: i32,
    },
    /// `feed` or `finish` was called without `start_utterance` first.
    #[error("no utterance in progress: call start_utterance first")]
    NoUtterance,
    /// Reading or writing a model file failed.
    #[error("{what} at {}: {source}", path.display())]
    Io {
        /// What was being read or written.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
