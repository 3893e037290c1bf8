//! The local fallback recogniser: PocketSphinx on this machine, no API key, no network.
//!
//! Provider name `local-pocketsphinx`. Each transcription gets its own decoder (they are not
//! shareable) on a tokio blocking thread; the caller's audio reaches it through a bounded
//! channel fed by a small async task, so a slow decoder slows the feeder instead of
//! buffering without limit. As with the other providers the end of the audio stream is the
//! end of the utterance: partials go out every `partial_interval_ms` of audio when the
//! guess changed, and the final transcript when the audio ends. Dropping the [`SttStream`]
//! stops the decoder at its next chunk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use local_voice::sphinx::Recognizer;
use tokio::sync::mpsc;

use crate::PipelineError;
use crate::config::LocalSttConfig;
use crate::pcm::SampleAligner;
use crate::provider::{
    AudioStream, STT_SAMPLE_RATE, ServedModel, SttEvent, SttProvider, SttStream,
};

/// The provider name of the local PocketSphinx recogniser, in logs and errors.
pub const LOCAL_STT_NAME: &str = "local-pocketsphinx";

/// Audio chunks (20 ms each, typically) that may wait for the decoder.
const AUDIO_QUEUE_CHUNKS: usize = 64;
/// Transcript events that may wait for the consumer.
const EVENT_QUEUE: usize = 16;

/// Speech to text with PocketSphinx: the offline fallback of the embedded default.
#[derive(Debug, Clone)]
pub struct LocalStt {
    config: Arc<LocalSttConfig>,
}

impl LocalStt {
    /// Checks that the models load by building one decoder (~0.1 s).
    ///
    /// A missing model gives [`PipelineError::Config`] for `stt.local.recognizer` naming the
    /// file and the Debian package to install (`pocketsphinx-en-us`).
    pub fn new(config: &LocalSttConfig) -> Result<Self, PipelineError> {
        Recognizer::new(&config.recognizer).map_err(|e| PipelineError::Config {
            key: "stt.local.recognizer".into(),
            message: e.to_string(),
        })?;
        tracing::info!(
            provider = LOCAL_STT_NAME,
            "local fallback STT ready (PocketSphinx, offline, 16 kHz)"
        );
        Ok(Self {
            config: Arc::new(config.clone()),
        })
    }
}

impl SttProvider for LocalStt {
    fn name(&self) -> &str {
        LOCAL_STT_NAME
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new("pocketsphinx", LOCAL_STT_NAME)]
    }

    fn transcribe(&self, audio: AudioStream) -> SttStream {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let mut start = Some((audio, events_tx, Arc::clone(&self.config)));
        // Started on first poll, like the network providers.
        stream::unfold(events_rx, move |mut rx| {
            if let Some((audio, events, config)) = start.take() {
                let (audio_tx, audio_rx) = mpsc::channel(AUDIO_QUEUE_CHUNKS);
                tokio::spawn(feed(audio, audio_tx));
                tokio::task::spawn_blocking(move || decode(&config, audio_rx, &events));
            }
            async move { rx.recv().await.map(|item| (item, rx)) }
        })
        .boxed()
    }
}

/// Moves the caller's audio into the decoder's bounded queue until either side is done.
async fn feed(mut audio: AudioStream, tx: mpsc::Sender<Bytes>) {
    while let Some(chunk) = audio.next().await {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

type Events = mpsc::Sender<Result<SttEvent, PipelineError>>;

/// Runs one utterance through a fresh decoder; errors go to the consumer.
fn decode(config: &LocalSttConfig, audio: mpsc::Receiver<Bytes>, events: &Events) {
    if let Err(e) = Utterance::run(config, audio, events) {
        let _ = events.blocking_send(Err(e));
    }
}

/// The decoding loop's state; `Err` is a failure to report, `Ok` includes "consumer gone".
struct Utterance<'a> {
    events: &'a Events,
    partial_every: u64,
    max_samples: u64,
    samples_fed: u64,
    last_partial: String,
    busy: Duration,
}

impl<'a> Utterance<'a> {
    fn run(
        config: &LocalSttConfig,
        mut audio: mpsc::Receiver<Bytes>,
        events: &'a Events,
    ) -> Result<(), PipelineError> {
        let began = Instant::now();
        let mut recognizer = Recognizer::new(&config.recognizer).map_err(|e| engine_error(&e))?;
        recognizer.start_utterance().map_err(|e| engine_error(&e))?;
        let setup = began.elapsed();
        let mut this = Utterance {
            events,
            partial_every: u64::from(config.partial_interval_ms.max(20))
                * u64::from(STT_SAMPLE_RATE)
                / 1000,
            max_samples: u64::from(config.max_utterance_secs) * u64::from(STT_SAMPLE_RATE),
            samples_fed: 0,
            last_partial: String::new(),
            busy: Duration::ZERO,
        };
        let mut aligner = SampleAligner::new();
        // Reused for every chunk: no allocation per audio frame once it has grown.
        let mut samples: Vec<i16> = Vec::with_capacity(1024);
        let mut next_partial = this.partial_every;
        while let Some(chunk) = audio.blocking_recv() {
            if events.is_closed() {
                return Ok(()); // the caller stopped listening
            }
            let bytes = aligner.push(chunk);
            samples.clear();
            samples.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
            let t = Instant::now();
            recognizer.feed(&samples).map_err(|e| engine_error(&e))?;
            this.busy += t.elapsed();
            this.samples_fed += samples.len() as u64;
            if this.samples_fed > this.max_samples {
                return Err(PipelineError::InvalidRequest(format!(
                    "utterance longer than {} s",
                    config.max_utterance_secs
                )));
            }
            if this.samples_fed >= next_partial {
                next_partial = this.samples_fed + this.partial_every;
                if !this.partial(&mut recognizer) {
                    return Ok(());
                }
            }
        }
        drop(audio);
        if this.samples_fed == 0 {
            return Err(PipelineError::InvalidRequest(
                "no audio to transcribe".into(),
            ));
        }
        let t = Instant::now();
        let transcript = recognizer.finish().map_err(|e| engine_error(&e))?;
        this.busy += t.elapsed();
        let audio_secs = this.samples_fed as f64 / f64::from(STT_SAMPLE_RATE);
        tracing::debug!(
            provider = LOCAL_STT_NAME,
            audio_ms = transcript.audio_ms,
            setup_ms = setup.as_millis(),
            decode_ms = this.busy.as_millis(),
            real_time_factor = this.busy.as_secs_f64() / audio_secs,
            "utterance decoded"
        );
        let _ = events.blocking_send(Ok(SttEvent::Final(transcript.text)));
        Ok(())
    }

    /// Sends the current guess if it changed; false when the consumer has gone.
    fn partial(&mut self, recognizer: &mut Recognizer) -> bool {
        let t = Instant::now();
        let guess = recognizer.partial();
        self.busy += t.elapsed();
        match guess {
            Some(guess) if guess != self.last_partial => {
                self.last_partial.clone_from(&guess);
                self.events
                    .blocking_send(Ok(SttEvent::Partial(guess)))
                    .is_ok()
            }
            _ => true,
        }
    }
}

/// Engine trouble lets failover replay the utterance to the next provider.
fn engine_error(error: &local_voice::Error) -> PipelineError {
    PipelineError::ProviderReported {
        provider: LOCAL_STT_NAME.into(),
        streamed: false,
        kind: "pocketsphinx".into(),
        message: error.to_string(),
    }
}
