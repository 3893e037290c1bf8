//! What a synthesis request yields, and the stream that yields it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use crate::Error;

/// One piece of a synthesis, in the order espeak-ng produces them.
///
/// Timing events carry `start_ms`, the time from the start of this request's audio (sample 0
/// of its first [`SynthEvent::Audio`] chunk) at which the item begins. A timing event is sent
/// before the audio chunk it falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynthEvent {
    /// Mono s16 PCM at [`super::SAMPLE_RATE_HZ`].
    Audio(Vec<i16>),
    /// A phoneme starts.
    Phoneme {
        /// espeak-ng's phoneme mnemonic (`h`, `@`, `l`, `oU`, ...); `_` and `_:` are pauses.
        mnemonic: String,
        /// Start within the request's audio, milliseconds.
        start_ms: u32,
    },
    /// A word starts.
    Word {
        /// Byte offset of the word in the request's text.
        text_offset: usize,
        /// Length of the word in bytes.
        text_len: usize,
        /// Start within the request's audio, milliseconds.
        start_ms: u32,
    },
    /// A sentence or clause ends (espeak-ng's `END` event), e.g. after "Hello!".
    SentenceEnd {
        /// Time within the request's audio, milliseconds.
        start_ms: u32,
    },
    /// Synthesis completed; no more items follow.
    Finished {
        /// Total audio samples produced.
        samples: u64,
    },
}

/// The output of one synthesis request, received while the worker produces it.
///
/// Iterate it (blocking) or poll it with [`SynthStream::try_next`]. Dropping it, or calling
/// [`SynthStream::cancel`], stops the synthesis at the next audio chunk and frees the worker
/// for the next request: this is barge-in.
#[derive(Debug)]
pub struct SynthStream {
    pub(super) events: Receiver<Result<SynthEvent, Error>>,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) done: bool,
}

impl SynthStream {
    /// Stops the synthesis; the stream then ends (items already produced may still arrive).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// The next item if one is ready, without waiting. `None` means "nothing yet" unless
    /// [`SynthStream::is_done`] is true.
    pub fn try_next(&mut self) -> Option<Result<SynthEvent, Error>> {
        if self.done {
            return None;
        }
        match self.events.try_recv() {
            Ok(item) => Some(self.note(item)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.done = true;
                Some(Err(Error::EspeakStopped))
            }
        }
    }

    /// The next item, waiting at most `timeout`; `None` if none arrived in time or the
    /// stream has ended.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<SynthEvent, Error>> {
        if self.done {
            return None;
        }
        match self.events.recv_timeout(timeout) {
            Ok(item) => Some(self.note(item)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.done = true;
                Some(Err(Error::EspeakStopped))
            }
        }
    }

    /// True once the final item (`Finished` or an error) has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn note(&mut self, item: Result<SynthEvent, Error>) -> Result<SynthEvent, Error> {
        if matches!(item, Ok(SynthEvent::Finished { .. }) | Err(_)) {
            self.done = true;
        }
        item
    }
}

impl Iterator for SynthStream {
    type Item = Result<SynthEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.events.recv() {
            Ok(item) => Some(self.note(item)),
            Err(_) => {
                self.done = true;
                Some(Err(Error::EspeakStopped))
            }
        }
    }
}

impl Drop for SynthStream {
    fn drop(&mut self) {
        self.cancel();
    }
}
