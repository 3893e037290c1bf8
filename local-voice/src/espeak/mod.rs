//! Text to speech with espeak-ng through one worker thread that owns the engine.

mod config;
mod ffi;
mod stream;
mod worker;

use std::ffi::CString;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

pub use config::{EspeakConfig, RATE_MAX_WPM, RATE_MIN_WPM, SAMPLE_RATE_HZ, Voice};
pub use stream::{SynthEvent, SynthStream};

use crate::Error;

/// The one worker of this process and the configuration it was started with.
///
/// libespeak-ng keeps its state in globals, and in Debian's 1.51 `espeak_Terminate` deadlocks
/// in synchronous mode (it waits for an internal thread that never wakes), so the engine is
/// started once and lives until the process exits (a few MB).
static ENGINE: Mutex<Option<EspeakHandle>> = Mutex::new(None);

/// Entry point: starts the espeak-ng worker.
#[derive(Debug)]
pub struct Espeak;

impl Espeak {
    /// Starts the worker thread and initialises espeak-ng on it, or returns a handle to the
    /// worker already running in this process if it was started with the same `config`.
    ///
    /// Fails with [`Error::EspeakUnavailable`] (naming the packages to install) when the data
    /// files are missing, and with [`Error::EspeakAlreadyRunning`] when the running worker was
    /// started with a different configuration.
    pub fn start(config: EspeakConfig) -> Result<EspeakHandle, Error> {
        let mut engine = ENGINE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = engine.as_ref() {
            return if running.inner.config == config {
                Ok(running.clone())
            } else {
                Err(Error::EspeakAlreadyRunning)
            };
        }
        let handle = spawn(config)?;
        *engine = Some(handle.clone());
        Ok(handle)
    }
}

fn spawn(config: EspeakConfig) -> Result<EspeakHandle, Error> {
    let (requests_tx, requests_rx) = mpsc::sync_channel(config.queue_depth.max(1));
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let worker_config = config.clone();
    let thread = std::thread::Builder::new()
        .name("espeak-ng".to_owned())
        .spawn(move || worker::run(&worker_config, &ready_tx, &requests_rx))
        .map_err(|_| Error::EspeakStopped)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(EspeakHandle {
            inner: Arc::new(Inner {
                requests: requests_tx,
                config,
            }),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::EspeakStopped)
        }
    }
}

/// A cheap, cloneable, thread-safe handle to the espeak-ng worker.
#[derive(Debug, Clone)]
pub struct EspeakHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: SyncSender<worker::Request>,
    config: EspeakConfig,
}

impl EspeakHandle {
    /// Queues `text` to be spoken with `voice` and returns the stream of its audio and
    /// timing events. Never blocks: a full queue gives [`Error::QueueFull`].
    ///
    /// An unknown voice name is reported as the stream's only item,
    /// [`Error::UnknownVoice`].
    pub fn synthesize(&self, text: &str, voice: &Voice) -> Result<SynthStream, Error> {
        voice.validate()?;
        let max = self.inner.config.max_text_bytes;
        if text.len() > max {
            return Err(Error::TextTooLong {
                len: text.len(),
                max,
            });
        }
        if text.contains('\0') {
            return Err(Error::InteriorNul { what: "text" });
        }
        let voice_name =
            CString::new(voice.name.as_str()).map_err(|_| Error::InteriorNul { what: "voice" })?;
        // Unbounded per stream on purpose: the worker must never wait on one slow listener
        // while other voices queue behind it. `max_text_bytes` bounds what one request buffers.
        let (events_tx, events_rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let request = worker::Request {
            text: text.to_owned(),
            voice: voice_name,
            rate_wpm: voice.rate_wpm,
            pitch: voice.pitch,
            events: events_tx,
            cancel: Arc::clone(&cancel),
        };
        match self.inner.requests.try_send(request) {
            Ok(()) => Ok(SynthStream {
                events: events_rx,
                cancel,
                done: false,
            }),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull {
                depth: self.inner.config.queue_depth,
            }),
            Err(TrySendError::Disconnected(_)) => Err(Error::EspeakStopped),
        }
    }

    /// The configuration the worker was started with.
    pub fn config(&self) -> &EspeakConfig {
        &self.inner.config
    }
}
