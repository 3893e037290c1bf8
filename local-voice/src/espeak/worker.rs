//! The one thread that owns espeak-ng.
//!
//! libespeak-ng keeps its whole state in globals: two threads synthesising at once crash it.
//! So exactly one worker thread initialises it in synchronous mode, takes requests from a
//! bounded queue one at a time, and calls `espeak_Synth`, which runs the synthesis on this
//! thread and calls [`on_synth`] for every chunk of audio before returning.

use std::cell::RefCell;
use std::ffi::{CString, c_int, c_short, c_void};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use super::ffi;
use super::{EspeakConfig, SynthEvent};
use crate::Error;

/// One queued synthesis.
pub(super) struct Request {
    pub(super) text: String,
    pub(super) voice: CString,
    pub(super) rate_wpm: u16,
    pub(super) pitch: u8,
    pub(super) events: Sender<Result<SynthEvent, Error>>,
    pub(super) cancel: Arc<AtomicBool>,
}

/// The request being synthesised, reachable from the C callback (which runs on this thread).
struct Active {
    events: Sender<Result<SynthEvent, Error>>,
    cancel: Arc<AtomicBool>,
    /// Byte offset of every char of the text, plus its length: espeak-ng reports word
    /// positions in characters counted from 1.
    char_starts: Vec<usize>,
    samples: u64,
    aborted: bool,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Initialises espeak-ng on the current thread and reports the outcome on `ready`, then
/// serves requests for the rest of the process's life.
pub(super) fn run(
    config: &EspeakConfig,
    ready: &SyncSender<Result<(), Error>>,
    requests: &Receiver<Request>,
) {
    let path = config
        .data_dir
        .as_ref()
        .map(|p| CString::new(p.as_os_str().as_bytes()));
    let path = match path {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            let _ = ready.send(Err(Error::InteriorNul { what: "data_dir" }));
            return;
        }
        None => None,
    };
    // espeak-ng silently falls back to its built-in directory when the given one is missing,
    // which would hide a configuration mistake: check it first.
    if let Some(dir) = &config.data_dir
        && !dir.join("espeak-ng-data").join("phontab").is_file()
    {
        let _ = ready.send(Err(Error::EspeakUnavailable {
            code: 0,
            data_dir: dir.display().to_string(),
        }));
        return;
    }
    let path_ptr = path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    // SAFETY: `path_ptr` is null or a NUL-terminated string that outlives the call. This is
    // the only thread touching espeak-ng (`Espeak::start` starts at most one worker).
    let rate = unsafe {
        ffi::espeak_Initialize(
            ffi::AUDIO_OUTPUT_SYNCHRONOUS,
            c_int::from(config.chunk_ms.max(1)),
            path_ptr,
            ffi::INITIALIZE_PHONEME_EVENTS | ffi::INITIALIZE_DONT_EXIT,
        )
    };
    // With DONT_EXIT, a missing data directory is only reported on stderr and the call still
    // returns the sample rate, so check for the phoneme table where the library looked.
    if rate <= 0 || !data_present() {
        let data_dir = config
            .data_dir
            .as_ref()
            .map_or_else(|| "default".to_owned(), |p| p.display().to_string());
        let _ = ready.send(Err(Error::EspeakUnavailable {
            code: rate,
            data_dir,
        }));
        // No espeak_Terminate: it deadlocks in synchronous mode (see `ENGINE` in mod.rs).
        return;
    }
    // SAFETY: `on_synth` matches `t_espeak_callback` and never unwinds.
    unsafe { ffi::espeak_SetSynthCallback(Some(on_synth)) };
    let _ = ready.send(Ok(()));

    // Load the default voice now, so the first request does not pay ~10-30 ms for it.
    let mut current_voice: Option<CString> = None;
    if let Ok(voice) = CString::new(super::Voice::default().name) {
        // SAFETY: `voice` is NUL-terminated and lives across the call; worker thread only.
        if unsafe { ffi::espeak_SetVoiceByName(voice.as_ptr()) } == ffi::EE_OK {
            current_voice = Some(voice);
        }
    }
    // Ends only if every sender is gone, which the process-wide `ENGINE` prevents.
    while let Ok(request) = requests.recv() {
        serve(request, &mut current_voice);
    }
}

/// Whether espeak-ng found its data: `phontab` in the directory it reports using.
fn data_present() -> bool {
    let mut path: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: espeak_Info stores a pointer to a static, NUL-terminated path string (or leaves
    // it null); called on the worker thread after initialisation.
    unsafe { ffi::espeak_Info(&mut path) };
    if path.is_null() {
        return false;
    }
    // SAFETY: non-null, NUL-terminated and owned by the library for its lifetime.
    let dir = unsafe { std::ffi::CStr::from_ptr(path) };
    std::path::Path::new(std::ffi::OsStr::from_bytes(dir.to_bytes()))
        .join("phontab")
        .is_file()
}

fn serve(request: Request, current_voice: &mut Option<CString>) {
    let Request {
        text,
        voice,
        rate_wpm,
        pitch,
        events,
        cancel,
    } = request;
    // A request cancelled while it waited in the queue costs nothing.
    if cancel.load(Ordering::Acquire) {
        let _ = events.send(Err(Error::Cancelled));
        return;
    }
    if current_voice.as_ref() != Some(&voice) {
        // SAFETY: `voice` is NUL-terminated and lives across the call; worker thread only.
        let code = unsafe { ffi::espeak_SetVoiceByName(voice.as_ptr()) };
        if code != ffi::EE_OK {
            *current_voice = None;
            let name = voice.to_string_lossy().into_owned();
            let _ = events.send(Err(Error::UnknownVoice(name)));
            return;
        }
        *current_voice = Some(voice);
    }
    // SAFETY: plain integer setters on the worker thread; values validated by `Voice::validate`.
    unsafe {
        ffi::espeak_SetParameter(ffi::PARAM_RATE, c_int::from(rate_wpm), 0);
        ffi::espeak_SetParameter(ffi::PARAM_PITCH, c_int::from(pitch), 0);
    }

    let mut char_starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    char_starts.push(text.len());
    ACTIVE.with_borrow_mut(|active| {
        *active = Some(Active {
            events,
            cancel,
            char_starts,
            samples: 0,
            aborted: false,
        });
    });
    // espeak-ng reads the text up to its terminating NUL; `size` is only a buffer hint.
    let Ok(c_text) = CString::new(text) else {
        // `synthesize` rejects NUL bytes, so this is unreachable; fail the request, not the thread.
        finish(Err(Error::InteriorNul { what: "text" }));
        return;
    };
    let bytes = c_text.as_bytes_with_nul();
    // SAFETY: `c_text` is NUL-terminated and outlives the call, which is synchronous
    // (AUDIO_OUTPUT_SYNCHRONOUS): every callback has run when it returns.
    let code = unsafe {
        ffi::espeak_Synth(
            bytes.as_ptr().cast::<c_void>(),
            bytes.len(),
            0,
            ffi::POS_CHARACTER,
            0,
            ffi::CHARS_UTF8,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    let outcome = ACTIVE.with_borrow(|active| match active {
        Some(a) if a.aborted => Err(Error::Cancelled),
        Some(a) if code == ffi::EE_OK => Ok(SynthEvent::Finished { samples: a.samples }),
        _ => Err(Error::SynthesisFailed(code)),
    });
    finish(outcome);
}

/// Sends the request's last item and forgets it.
fn finish(outcome: Result<SynthEvent, Error>) {
    if let Some(active) = ACTIVE.with_borrow_mut(Option::take) {
        // Nobody listening (stream dropped) is fine: the request is over either way.
        let _ = active.events.send(outcome);
    }
}

/// espeak-ng's synth callback: forwards timing events and audio to the request's stream.
/// Returns 1 (abort) once the request is cancelled or its stream is gone.
unsafe extern "C" fn on_synth(
    wav: *mut c_short,
    numsamples: c_int,
    events: *mut ffi::Event,
) -> c_int {
    ACTIVE.with_borrow_mut(|active| {
        let Some(active) = active else { return 1 };
        if active.aborted || active.cancel.load(Ordering::Acquire) {
            active.aborted = true;
            return 1;
        }
        let mut alive = true;
        let mut event = events;
        while !event.is_null() {
            // SAFETY: espeak-ng passes an array of events terminated by an
            // EVENT_LIST_TERMINATED entry, valid for the duration of this callback.
            let ev = unsafe { &*event };
            if ev.kind == ffi::EVENT_LIST_TERMINATED {
                break;
            }
            if let Some(item) = timing_event(ev, &active.char_starts) {
                alive &= active.events.send(Ok(item)).is_ok();
            }
            // SAFETY: not yet at the terminator, so the next element is in the array.
            event = unsafe { event.add(1) };
        }
        let count = usize::try_from(numsamples).unwrap_or(0);
        if !wav.is_null() && count > 0 {
            // SAFETY: espeak-ng hands `numsamples` valid samples at `wav` for this callback.
            let pcm = unsafe { std::slice::from_raw_parts(wav, count) };
            active.samples += count as u64;
            alive &= active
                .events
                .send(Ok(SynthEvent::Audio(pcm.to_vec())))
                .is_ok();
        }
        if alive {
            0
        } else {
            active.aborted = true;
            1
        }
    })
}

/// Translates one espeak-ng event into ours; `None` for events nobody downstream needs.
fn timing_event(ev: &ffi::Event, char_starts: &[usize]) -> Option<SynthEvent> {
    let start_ms = u32::try_from(ev.audio_position).unwrap_or(0);
    match ev.kind {
        ffi::EVENT_PHONEME => {
            // SAFETY: for phoneme events espeak-ng fills `id.string` (up to 8 bytes, NUL
            // terminated when shorter); any bit pattern is a valid [u8; 8].
            let raw = unsafe { ev.id.string };
            let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            let mnemonic = String::from_utf8_lossy(&raw[..len]).into_owned();
            Some(SynthEvent::Phoneme { mnemonic, start_ms })
        }
        ffi::EVENT_WORD => {
            // 1-based character position and character count -> byte range.
            let first = usize::try_from(ev.text_position).ok()?.checked_sub(1)?;
            let count = usize::try_from(ev.length).unwrap_or(0);
            let last = char_starts.len() - 1;
            let start = *char_starts.get(first.min(last))?;
            let end = *char_starts.get((first + count).min(last))?;
            // espeak-ng sometimes reports an empty "word" at punctuation; it names nothing.
            if end == start {
                return None;
            }
            Some(SynthEvent::Word {
                text_offset: start,
                text_len: end - start,
                start_ms,
            })
        }
        ffi::EVENT_END => Some(SynthEvent::SentenceEnd { start_ms }),
        ffi::EVENT_SENTENCE | ffi::EVENT_MSG_TERMINATED => None,
        _ => None,
    }
}
