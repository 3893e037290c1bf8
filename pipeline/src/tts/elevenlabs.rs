//! ElevenLabs `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=pcm_24000`.
//!
//! The body is newline-delimited JSON: each line has `audio_base64` (raw s16le PCM at the
//! requested rate) and `alignment` with `characters`, `character_start_times_seconds` and
//! `character_end_times_seconds`, measured from the start of the request's audio.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::remote::{AudioBody, Auth, Vendor};
use crate::PipelineError;
use crate::config::{ElevenLabsConfig, HttpConfig, Secret};
use crate::http;
use crate::pcm::SampleAligner;
use crate::provider::{
    ServedModel, Timing, TimingUnit, TtsChunk, TtsProvider, TtsRequest, TtsStream,
};

/// Longest NDJSON line accepted (about 30 s of 44.1 kHz audio in base64).
const MAX_LINE_BYTES: usize = 4 << 20;

/// The ElevenLabs streaming provider.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    vendor: Vendor,
    config: ElevenLabsConfig,
}

impl ElevenLabsTts {
    /// A provider from its config section and a resolved key.
    pub fn new(
        name: impl Into<String>,
        config: &ElevenLabsConfig,
        key: Secret,
        http_config: &HttpConfig,
    ) -> Self {
        Self {
            vendor: Vendor::new(name.into(), key, Auth::Header("xi-api-key"), http_config),
            config: config.clone(),
        }
    }
}

impl TtsProvider for ElevenLabsTts {
    fn name(&self) -> &str {
        self.vendor.name()
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.config.model, self.vendor.name())]
    }

    fn synthesize(&self, request: TtsRequest) -> TtsStream {
        let voice = request.voice.as_deref().unwrap_or(&self.config.voice_id);
        let url = http::join_url(
            &self.config.base_url,
            &format!(
                "v1/text-to-speech/{voice}/stream/with-timestamps?output_format=pcm_{}",
                self.config.sample_rate
            ),
        );
        let body = json!({"text": request.text, "model_id": self.config.model});
        let decoder = NdjsonDecoder::new(self.vendor.name().to_owned(), self.config.sample_rate);
        self.vendor.synthesize(&request, url, &body, decoder)
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        self.vendor
            .warm_up(http::join_url(&self.config.base_url, "v1/models"))
    }
}

#[derive(Deserialize)]
struct Line {
    audio_base64: Option<String>,
    alignment: Option<Alignment>,
}

#[derive(Deserialize)]
struct Alignment {
    #[serde(default)]
    characters: Vec<String>,
    #[serde(default)]
    character_start_times_seconds: Vec<f64>,
    #[serde(default)]
    character_end_times_seconds: Vec<f64>,
}

/// Splits the NDJSON body into lines and decodes each into a [`TtsChunk`] (sans-IO).
pub(crate) struct NdjsonDecoder {
    provider: String,
    sample_rate: u32,
    line: Vec<u8>,
    aligner: SampleAligner,
    ready: VecDeque<TtsChunk>,
    streamed: bool,
}

impl NdjsonDecoder {
    pub(crate) fn new(provider: String, sample_rate: u32) -> Self {
        Self {
            provider,
            sample_rate,
            line: Vec::new(),
            aligner: SampleAligner::new(),
            ready: VecDeque::new(),
            streamed: false,
        }
    }

    fn protocol(&self, message: String) -> PipelineError {
        PipelineError::Protocol {
            provider: self.provider.clone(),
            streamed: self.streamed,
            message,
        }
    }

    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), PipelineError> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..end]);
            let line = std::mem::take(&mut self.line);
            self.decode_line(&line)?;
            bytes = &bytes[end + 1..];
        }
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(self.protocol(format!("line longer than {MAX_LINE_BYTES} bytes")));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// The body ended: decode a last line without a newline.
    pub(crate) fn finish(&mut self) -> Result<(), PipelineError> {
        let line = std::mem::take(&mut self.line);
        self.decode_line(&line)
    }

    fn decode_line(&mut self, line: &[u8]) -> Result<(), PipelineError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let parsed: Line = serde_json::from_slice(line)
            .map_err(|e| self.protocol(format!("bad stream line: {e}")))?;
        let pcm = match parsed.audio_base64.as_deref().filter(|a| !a.is_empty()) {
            Some(b64) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| self.protocol(format!("bad audio_base64: {e}")))?;
                self.aligner.push(Bytes::from(raw))
            }
            None => Bytes::new(),
        };
        let timings = parsed.alignment.map(alignment_timings).unwrap_or_default();
        if pcm.is_empty() && timings.is_empty() {
            return Ok(());
        }
        self.streamed |= !pcm.is_empty();
        self.ready.push_back(TtsChunk {
            pcm,
            sample_rate: self.sample_rate,
            timings,
        });
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> Vec<TtsChunk> {
        self.ready.drain(..).collect()
    }
}

impl AudioBody for NdjsonDecoder {
    fn feed(&mut self, bytes: Bytes) -> Result<(), PipelineError> {
        NdjsonDecoder::feed(self, &bytes)
    }

    fn finish(&mut self) -> Result<(), PipelineError> {
        NdjsonDecoder::finish(self)
    }

    fn next_chunk(&mut self) -> Option<TtsChunk> {
        self.ready.pop_front()
    }

    fn streamed(&self) -> bool {
        self.streamed
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

fn alignment_timings(a: Alignment) -> Vec<Timing> {
    a.characters
        .into_iter()
        .zip(a.character_start_times_seconds)
        .zip(a.character_end_times_seconds)
        .map(|((text, start), end)| Timing {
            text,
            unit: TimingUnit::Character,
            start: seconds(start),
            end: seconds(end),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere_decode_to_audio_and_character_timings() {
        let audio = base64::engine::general_purpose::STANDARD.encode([1u8, 0, 2, 0]);
        let body = format!(
            "{{\"audio_base64\":\"{audio}\",\"alignment\":{{\"characters\":[\"H\",\"i\"],\
             \"character_start_times_seconds\":[0.0,0.1],\"character_end_times_seconds\":[0.1,0.25]}},\
             \"normalized_alignment\":null}}\n{{\"audio_base64\":\"{audio}\",\"alignment\":null}}\n"
        );
        let mut d = NdjsonDecoder::new("elevenlabs".into(), 24_000);
        for piece in body.as_bytes().chunks(7) {
            d.feed(piece).unwrap();
        }
        d.finish().unwrap();
        let chunks = d.drain();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].samples().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(chunks[0].timings[1].text, "i");
        assert_eq!(chunks[0].timings[1].end, Duration::from_millis(250));
        assert!(chunks[1].timings.is_empty());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut d = NdjsonDecoder::new("elevenlabs".into(), 24_000);
        assert!(matches!(
            d.feed(b"<html>oops</html>\n"),
            Err(PipelineError::Protocol { .. })
        ));
    }
}
