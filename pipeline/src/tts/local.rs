//! The local fallback voice: espeak-ng on this machine, no API key, no network.
//!
//! Provider name `local-espeak`. Requests go to the process-wide espeak-ng worker of the
//! `local-voice` crate, which serialises the engine; each request's blocking event stream is
//! drained on a tokio blocking thread into a bounded channel, so the async side never blocks
//! and never polls. Chunks are 22,050 Hz mono (not resampled here) and carry exact phoneme
//! and word timings from the engine, for visemes and captions. Dropping the [`TtsStream`]
//! closes the channel; the blocking thread then drops its `SynthStream`, which stops
//! espeak-ng at its next chunk (barge-in).

use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream;
use local_voice::espeak::{Espeak, EspeakHandle, SynthEvent, SynthStream, Voice};
use tokio::sync::mpsc;

use super::espeak_timings::EspeakChunker;
use crate::PipelineError;
use crate::config::LocalTtsConfig;
use crate::provider::{ServedModel, TtsChunk, TtsProvider, TtsRequest, TtsStream};

/// The provider name of the local espeak-ng voice, in logs and errors.
pub const LOCAL_TTS_NAME: &str = "local-espeak";

/// Most text handed to libespeak-ng in one call, in bytes. Longer text is split at sentence
/// (else word, else character) boundaries and spoken piece after piece in one stream: the
/// engine parses untrusted text in process, so no single call sees more than this, whatever
/// `tts.local.engine.max_text_bytes` allows.
pub(crate) const MAX_PIECE_BYTES: usize = 1_000;

/// A short text spoken once at build time to check that the configured voice exists.
const VOICE_CHECK_TEXT: &str = "ok";

/// Text-to-speech with espeak-ng: the offline fallback of the embedded default.
#[derive(Debug, Clone)]
pub struct LocalTts {
    engine: EspeakHandle,
    voice: Voice,
    channel_chunks: usize,
}

impl LocalTts {
    /// Starts (or joins) the process's espeak-ng worker and checks the configured voice.
    ///
    /// A missing engine or data files give [`PipelineError::Config`] for `tts.local` naming
    /// the Debian packages to install; an unknown voice names `tts.local.voice`.
    pub fn new(config: &LocalTtsConfig) -> Result<Self, PipelineError> {
        let engine = Espeak::start(config.engine.clone()).map_err(|e| PipelineError::Config {
            key: "tts.local.engine".into(),
            message: e.to_string(),
        })?;
        let voice = Voice {
            name: config.voice.clone(),
            rate_wpm: config.rate_wpm,
            pitch: config.pitch,
        };
        let bad_voice = |e: local_voice::Error| PipelineError::Config {
            key: "tts.local.voice".into(),
            message: e.to_string(),
        };
        voice.validate().map_err(bad_voice)?;
        // The worker reports an unknown voice only inside a synthesis: try one (~1 ms).
        for event in engine
            .synthesize(VOICE_CHECK_TEXT, &voice)
            .map_err(bad_voice)?
        {
            if let Err(e) = event {
                return Err(bad_voice(e));
            }
        }
        tracing::info!(
            provider = LOCAL_TTS_NAME,
            voice = %voice.name,
            "local fallback TTS ready (espeak-ng, offline, 22050 Hz)"
        );
        Ok(Self {
            engine,
            voice,
            channel_chunks: config.channel_chunks.max(1),
        })
    }
}

impl TtsProvider for LocalTts {
    fn name(&self) -> &str {
        LOCAL_TTS_NAME
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new("espeak-ng", LOCAL_TTS_NAME)]
    }

    fn synthesize(&self, request: TtsRequest) -> TtsStream {
        if request.text.trim().is_empty() {
            return stream::once(async {
                Err(PipelineError::InvalidRequest("nothing to say".into()))
            })
            .boxed();
        }
        let job = Job {
            engine: self.engine.clone(),
            voice: request.voice.map(|name| Voice {
                name,
                ..self.voice.clone()
            }),
            default_voice: self.voice.clone(),
            text: request.text,
        };
        let (tx, rx) = mpsc::channel(self.channel_chunks);
        let mut tx = Some(tx);
        // Started on first poll, like the network providers.
        stream::unfold(rx, move |mut rx| {
            if let Some(tx) = tx.take() {
                let job = job.clone();
                tokio::task::spawn_blocking(move || job.run(&tx));
            }
            async move { rx.recv().await.map(|item| (item, rx)) }
        })
        .boxed()
    }
}

/// One synthesis request, run on a blocking thread.
#[derive(Debug, Clone)]
struct Job {
    engine: EspeakHandle,
    /// The request's own voice, if it named one.
    voice: Option<Voice>,
    default_voice: Voice,
    text: String,
}

impl Job {
    fn run(self, tx: &mpsc::Sender<Result<TtsChunk, PipelineError>>) {
        let started = Instant::now();
        let mut result = self.speak(
            self.voice.as_ref().unwrap_or(&self.default_voice),
            started,
            tx,
        );
        if let (Err(local_voice::Error::UnknownVoice(name)), Some(_)) = (&result, &self.voice) {
            // A voice picked for a vendor (`alloy`, an ElevenLabs id) reached the fallback:
            // speak in the configured voice (checked at start-up) rather than not at all.
            tracing::debug!(
                provider = LOCAL_TTS_NAME,
                voice = %name,
                "unknown espeak-ng voice; using the configured one"
            );
            result = self.speak(&self.default_voice, started, tx);
        }
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(engine_error(e, false)));
        }
    }

    /// Speaks the text in `voice`, sending chunks as they complete. An engine error before
    /// any audio is returned (so the caller may retry with another voice); later errors
    /// are sent to the consumer.
    fn speak(
        &self,
        voice: &Voice,
        started: Instant,
        tx: &mpsc::Sender<Result<TtsChunk, PipelineError>>,
    ) -> Result<(), local_voice::Error> {
        // Timings are measured from the start of the request's audio, across pieces.
        let mut offset = std::time::Duration::ZERO;
        let pieces = split_for_engine(&self.text, MAX_PIECE_BYTES);
        for (i, piece) in pieces.into_iter().enumerate() {
            let spoken = self
                .engine
                .synthesize(piece, voice)
                .and_then(|synth| pump(synth, piece, started, &mut offset, tx));
            match spoken {
                Ok(()) => {}
                // Before any audio: the caller may retry with another voice.
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    let _ = tx.blocking_send(Err(engine_error(e, true)));
                    return Ok(());
                }
            }
            if tx.is_closed() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// `text` cut into pieces of at most `max` bytes, each ending at a sentence end if one fits,
/// else at a space, else at a character boundary. Pieces with nothing to pronounce (only
/// punctuation or spaces) are left out.
pub(crate) fn split_for_engine(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = if rest.len() <= max {
            rest.len()
        } else {
            let mut limit = max;
            while !rest.is_char_boundary(limit) {
                limit -= 1;
            }
            let window = &rest[..limit];
            let sentence = window
                .char_indices()
                .rev()
                .find(|&(_, c)| matches!(c, '.' | '!' | '?' | ';' | '\n'))
                .map(|(i, c)| i + c.len_utf8());
            let space = window.rfind(char::is_whitespace).filter(|&i| i > 0);
            sentence.or(space).unwrap_or(limit)
        };
        let (piece, tail) = rest.split_at(cut);
        if piece.chars().any(char::is_alphanumeric) {
            pieces.push(piece);
        }
        rest = tail;
    }
    pieces
}

/// Drains one synthesis into the channel; returns when it ends or the consumer is gone.
fn pump(
    synth: SynthStream,
    text: &str,
    started: Instant,
    offset: &mut std::time::Duration,
    tx: &mpsc::Sender<Result<TtsChunk, PipelineError>>,
) -> Result<(), local_voice::Error> {
    let base = *offset;
    let mut chunker = EspeakChunker::new(text);
    for event in synth {
        let chunk = match event {
            Ok(event) => {
                let finished = matches!(event, SynthEvent::Finished { .. });
                let chunk = chunker.push(event);
                if finished && chunker.chunks_out() == 0 {
                    let _ = tx.blocking_send(Err(PipelineError::InvalidRequest(
                        "espeak-ng produced no audio for this text".into(),
                    )));
                    return Ok(());
                }
                chunk
            }
            Err(local_voice::Error::Cancelled) => return Ok(()),
            Err(e) if chunker.chunks_out() == 0 => return Err(e),
            Err(e) => {
                let _ = tx.blocking_send(Err(engine_error(e, true)));
                return Ok(());
            }
        };
        let Some(mut chunk) = chunk else { continue };
        // The engine times each piece from its own start.
        for timing in &mut chunk.timings {
            timing.start += base;
            timing.end += base;
        }
        *offset += std::time::Duration::from_secs_f64(
            chunk.sample_count() as f64 / f64::from(chunk.sample_rate.max(1)),
        );
        if chunker.chunks_out() == 1 {
            tracing::debug!(
                provider = LOCAL_TTS_NAME,
                first_audio_us = started.elapsed().as_micros(),
                "first audio"
            );
        }
        if tx.blocking_send(Ok(chunk)).is_err() {
            // The caller dropped the stream (barge-in): returning drops `synth`, which
            // tells espeak-ng to stop at its next chunk.
            tracing::debug!(
                provider = LOCAL_TTS_NAME,
                "synthesis cancelled by the caller"
            );
            return Ok(());
        }
    }
    Ok(())
}

/// Maps an engine error to the pipeline's error; engine trouble lets failover try the next
/// provider, a text the engine can never speak does not.
fn engine_error(error: local_voice::Error, streamed: bool) -> PipelineError {
    match error {
        local_voice::Error::TextTooLong { .. } | local_voice::Error::InteriorNul { .. } => {
            PipelineError::InvalidRequest(error.to_string())
        }
        other => PipelineError::ProviderReported {
            provider: LOCAL_TTS_NAME.into(),
            streamed,
            kind: "espeak-ng".into(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn long_text_reaches_the_engine_in_bounded_pieces_cut_at_sentences() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let text = sentence.repeat(100);
        let pieces = split_for_engine(&text, MAX_PIECE_BYTES);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| p.len() <= MAX_PIECE_BYTES));
        assert!(
            pieces.iter().all(|p| p.trim_end().ends_with('.')),
            "{pieces:?}"
        );
        assert_eq!(pieces.concat(), text, "nothing lost or repeated");
    }

    #[test]
    fn text_without_sentences_or_spaces_is_cut_at_character_boundaries() {
        let text = "é".repeat(1_500); // 3,000 bytes, no space
        let pieces = split_for_engine(&text, MAX_PIECE_BYTES);
        assert!(pieces.iter().all(|p| p.len() <= MAX_PIECE_BYTES));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_for_engine("short", MAX_PIECE_BYTES), ["short"]);
        assert!(split_for_engine("... !!", 4).is_empty());
    }
}
