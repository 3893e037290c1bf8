//! A PocketSphinx decoder for one audio stream.

use std::ffi::{CStr, CString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Mutex, Once};

use super::noise::NoiseFloor;
use super::{RecognizerConfig, SAMPLE_RATE_HZ, ffi, models};
use crate::Error;

/// PocketSphinx's feature frame rate: one frame per 10 ms.
const FRAME_MS: u32 = 10;

/// Serialises decoder set-up: model loading touches SphinxBase's process-wide logging state.
static INIT: Mutex<()> = Mutex::new(());

/// One word of a transcript with its place in the utterance's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTiming {
    /// The word, lower case as in the dictionary.
    pub word: String,
    /// Start from the beginning of the utterance, milliseconds.
    pub start_ms: u32,
    /// End (exclusive) from the beginning of the utterance, milliseconds.
    pub end_ms: u32,
}

/// What was said in one utterance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcript {
    /// The words, space separated; empty when nothing was recognised.
    pub text: String,
    /// The words with timings (silences and noises left out).
    pub words: Vec<WordTiming>,
    /// Audio fed for this utterance, milliseconds.
    pub audio_ms: u64,
}

/// A PocketSphinx decoder fed 16 kHz mono PCM for one stream.
///
/// Use: [`Recognizer::start_utterance`], then [`Recognizer::feed`] audio as it arrives
/// (reading [`Recognizer::partial`] whenever useful), then [`Recognizer::finish`]. The
/// recogniser can be reused for the next utterance. It may move between threads but serves
/// one stream at a time; create one per concurrent stream.
#[derive(Debug)]
pub struct Recognizer {
    decoder: NonNull<ffi::Decoder>,
    cmdln: NonNull<ffi::CmdLn>,
    /// The argument strings `cmdln` points into; must outlive it.
    _args: Vec<CString>,
    noise: Option<NoiseFloor>,
    in_utterance: bool,
    samples_fed: u64,
}

// SAFETY: a PocketSphinx decoder has no thread affinity; `Recognizer` owns its decoder and
// configuration exclusively and every call that touches them takes `&mut self`, so moving it
// to another thread cannot create concurrent access. It is deliberately not `Sync`.
unsafe impl Send for Recognizer {}

impl Recognizer {
    /// Loads the models named by `config` into a new decoder (about 0.1-0.3 s).
    ///
    /// Missing files give [`Error::ModelMissing`] naming the path and the package to install.
    /// The first call silences SphinxBase's logging for the whole process.
    pub fn new(config: &RecognizerConfig) -> Result<Self, Error> {
        let files = models::prepare(config)?;
        let args = [
            ("-hmm", arg_path(&files.acoustic_model)?),
            ("-lm", arg_path(&files.language_model)?),
            ("-dict", arg_path(&files.dictionary)?),
            ("-lw", arg_str(&config.lm_weight.to_string())?),
            ("-samprate", arg_str(&SAMPLE_RATE_HZ.to_string())?),
        ];
        let mut owned = Vec::with_capacity(args.len() * 2);
        for (key, value) in args {
            owned.push(arg_str(key)?);
            owned.push(value);
        }
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len()).unwrap_or(i32::MAX);

        let _guard = INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        silence_logging();
        // SAFETY: `argv` holds `argc` valid NUL-terminated strings that live in `owned`,
        // which the returned Recognizer keeps for as long as the configuration exists. The
        // library only reads them (the C signature is not const-correct).
        let cmdln = unsafe {
            ffi::cmd_ln_parse_r(
                std::ptr::null_mut(),
                ffi::ps_args(),
                argc,
                argv.as_mut_ptr(),
                1,
            )
        };
        let cmdln = NonNull::new(cmdln).ok_or_else(|| {
            Error::RecognizerInit("the decoder rejected its configuration".into())
        })?;
        // SAFETY: `cmdln` is a live configuration; ps_init takes its own reference.
        let decoder = unsafe { ffi::ps_init(cmdln.as_ptr()) };
        let Some(decoder) = NonNull::new(decoder) else {
            // SAFETY: releases the configuration created above, which nothing else uses.
            unsafe { ffi::cmd_ln_free_r(cmdln.as_ptr()) };
            return Err(Error::RecognizerInit(format!(
                "could not load the models (acoustic model {}, language model {}, dictionary {})",
                files.acoustic_model.display(),
                files.language_model.display(),
                files.dictionary.display()
            )));
        };
        Ok(Self {
            decoder,
            cmdln,
            _args: owned,
            noise: config.noise_floor_dbfs.map(NoiseFloor::new),
            in_utterance: false,
            samples_fed: 0,
        })
    }

    /// Begins a new utterance, discarding any unfinished one.
    pub fn start_utterance(&mut self) -> Result<(), Error> {
        if self.in_utterance {
            // SAFETY: the decoder is live and an utterance is open.
            unsafe { ffi::ps_end_utt(self.decoder.as_ptr()) };
            self.in_utterance = false;
        }
        // SAFETY: the decoder is live and no utterance is open.
        let code = unsafe { ffi::ps_start_utt(self.decoder.as_ptr()) };
        check("ps_start_utt", code)?;
        self.in_utterance = true;
        self.samples_fed = 0;
        if let Some(noise) = &mut self.noise {
            noise.reset();
        }
        Ok(())
    }

    /// Decodes the next piece of the utterance: 16 kHz mono PCM, any length.
    pub fn feed(&mut self, pcm: &[i16]) -> Result<(), Error> {
        if !self.in_utterance {
            return Err(Error::NoUtterance);
        }
        if pcm.is_empty() {
            return Ok(());
        }
        self.samples_fed += pcm.len() as u64;
        let pcm = match &mut self.noise {
            Some(noise) => noise.apply(pcm),
            None => pcm,
        };
        // SAFETY: `pcm` is valid for `pcm.len()` samples during the call; the decoder copies
        // what it needs and is live with an open utterance.
        let code =
            unsafe { ffi::ps_process_raw(self.decoder.as_ptr(), pcm.as_ptr(), pcm.len(), 0, 0) };
        check("ps_process_raw", code)?;
        Ok(())
    }

    /// The best guess so far in the open utterance, if it has any words.
    pub fn partial(&mut self) -> Option<String> {
        if !self.in_utterance {
            return None;
        }
        self.hypothesis().filter(|h| !h.is_empty())
    }

    /// Whether the decoder currently hears speech (its own voice-activity estimate).
    pub fn in_speech(&mut self) -> bool {
        // SAFETY: the decoder is live; this reads a flag.
        self.in_utterance && unsafe { ffi::ps_get_in_speech(self.decoder.as_ptr()) } != 0
    }

    /// Ends the utterance and returns its final transcript.
    pub fn finish(&mut self) -> Result<Transcript, Error> {
        if !self.in_utterance {
            return Err(Error::NoUtterance);
        }
        self.in_utterance = false;
        // SAFETY: the decoder is live with an open utterance.
        let code = unsafe { ffi::ps_end_utt(self.decoder.as_ptr()) };
        check("ps_end_utt", code)?;
        let text = self.hypothesis().unwrap_or_default();
        let words = if text.is_empty() {
            Vec::new()
        } else {
            self.word_timings()
        };
        Ok(Transcript {
            text,
            words,
            audio_ms: self.samples_fed * 1000 / u64::from(SAMPLE_RATE_HZ),
        })
    }

    /// Convenience: one whole utterance in, its transcript out.
    pub fn transcribe(&mut self, pcm: &[i16]) -> Result<Transcript, Error> {
        self.start_utterance()?;
        self.feed(pcm)?;
        self.finish()
    }

    fn hypothesis(&mut self) -> Option<String> {
        let mut score = 0i32;
        // SAFETY: the decoder is live; the returned string is owned by the decoder and valid
        // until the next decoder call, so it is copied out at once.
        let hyp = unsafe { ffi::ps_get_hyp(self.decoder.as_ptr(), &mut score) };
        if hyp.is_null() {
            return None;
        }
        // SAFETY: non-null hypotheses are NUL-terminated strings (see above).
        let text = unsafe { CStr::from_ptr(hyp) };
        Some(text.to_string_lossy().trim().to_owned())
    }

    fn word_timings(&mut self) -> Vec<WordTiming> {
        let mut words = Vec::new();
        // SAFETY: the decoder is live; the iterator is advanced to its end (where the
        // library frees it) and each word string is copied before the next step.
        unsafe {
            let mut seg = ffi::ps_seg_iter(self.decoder.as_ptr());
            while !seg.is_null() {
                let raw = ffi::ps_seg_word(seg);
                let (mut sf, mut ef): (c_int, c_int) = (0, 0);
                ffi::ps_seg_frames(seg, &mut sf, &mut ef);
                if !raw.is_null() {
                    let word = CStr::from_ptr(raw).to_string_lossy();
                    if let Some(word) = spoken_word(&word) {
                        words.push(WordTiming {
                            word: word.to_owned(),
                            start_ms: u32::try_from(sf).unwrap_or(0) * FRAME_MS,
                            end_ms: (u32::try_from(ef).unwrap_or(0) + 1) * FRAME_MS,
                        });
                    }
                }
                seg = ffi::ps_seg_next(seg);
            }
        }
        words
    }
}

impl Drop for Recognizer {
    fn drop(&mut self) {
        // SAFETY: both pointers are live and owned by this value; the decoder goes first
        // because it holds a reference to the configuration.
        unsafe {
            ffi::ps_free(self.decoder.as_ptr());
            ffi::cmd_ln_free_r(self.cmdln.as_ptr());
        }
    }
}

/// The dictionary word of a segment, or `None` for silence and noise fillers
/// (`<s>`, `</s>`, `<sil>`, `[NOISE]`, ...). Alternate pronunciations (`the(2)`) map to the word.
fn spoken_word(segment: &str) -> Option<&str> {
    if segment.starts_with('<') || segment.starts_with('[') || segment.starts_with('+') {
        return None;
    }
    Some(segment.split_once('(').map_or(segment, |(w, _)| w))
}

fn check(call: &'static str, code: c_int) -> Result<(), Error> {
    if code < 0 {
        Err(Error::Decode { call, code })
    } else {
        Ok(())
    }
}

fn arg_str(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::InteriorNul {
        what: "recognizer argument",
    })
}

fn arg_path(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::InteriorNul { what: "model path" })
}

/// SphinxBase logs every configuration value and model statistic to stderr by default; the
/// service has its own logging, so turn it off once for the process.
fn silence_logging() {
    static ONCE: Once = Once::new();
    // SAFETY: a null stream disables SphinxBase logging; called under the INIT lock before
    // any decoder exists in this process.
    ONCE.call_once(|| unsafe { ffi::err_set_logfp(std::ptr::null_mut()) });
}
