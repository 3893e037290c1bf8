//! Settings for the PocketSphinx recogniser.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Sample rate the recogniser expects: mono s16 PCM at 16 kHz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// Where Debian's `pocketsphinx-en-us` package installs the US English model.
pub const DEBIAN_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

/// How a [`super::Recognizer`] is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognizerConfig {
    /// Acoustic model directory. Default: `/usr/share/pocketsphinx/model/en-us/en-us`
    /// (Debian package `pocketsphinx-en-us`).
    pub acoustic_model: PathBuf,
    /// Full CMU pronunciation dictionary; the companion model takes its words' entries from
    /// it. Default: `/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict`.
    pub dictionary: PathBuf,
    /// Which words and word sequences the decoder expects. Default: [`LanguageModel::Companion`].
    pub language_model: LanguageModel,
    /// Language-model weight: how much word statistics count against the acoustics.
    /// Default: 6.5 (PocketSphinx's own default).
    pub lm_weight: f32,
    /// RMS level, in dBFS, of a quiet deterministic white-noise floor mixed into the audio
    /// before decoding; `None` feeds the audio untouched. PocketSphinx's acoustic model was
    /// trained on recorded speech, which always has a noise floor: digitally clean input
    /// (synthesised speech, digital silence, aggressive noise suppression) decodes much worse
    /// without one, while real microphone audio is already noisier than this and barely
    /// changes. Default: `Some(-50.0)` (a quiet room through a laptop microphone).
    pub noise_floor_dbfs: Option<f32>,
}

impl Default for RecognizerConfig {
    fn default() -> Self {
        Self {
            acoustic_model: PathBuf::from(DEBIAN_MODEL_DIR).join("en-us"),
            dictionary: PathBuf::from(DEBIAN_MODEL_DIR).join("cmudict-en-us.dict"),
            language_model: LanguageModel::default(),
            lm_weight: 6.5,
            noise_floor_dbfs: Some(-50.0),
        }
    }
}

/// The language model the decoder searches with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LanguageModel {
    /// A trigram model built at start-up from the in-tree companion-chat corpus
    /// ([`crate::lm::COMPANION_CORPUS`]), with the dictionary cut down to its words. The default:
    /// accurate on chat-like speech, ~10x smaller than the stock model.
    #[default]
    Companion,
    /// The same, built from your own corpus file (one sentence per line).
    Corpus(PathBuf),
    /// Debian's general English model (`en-us.lm.bin`, 134k words) with the full dictionary.
    Stock,
    /// A prepared model file (ARPA text or binary) used with the full dictionary.
    File(PathBuf),
}
