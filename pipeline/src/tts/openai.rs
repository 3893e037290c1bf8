//! OpenAI-compatible `POST /v1/audio/speech` with `response_format: "pcm"`.
//!
//! The body is raw 24 kHz mono s16le, chunked as the model produces it; each network chunk
//! is handed on as soon as it arrives (re-cut to whole samples).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::remote::{AudioBody, Auth, Vendor};
use crate::PipelineError;
use crate::config::{HttpConfig, OpenAiTtsConfig, Secret};
use crate::http;
use crate::pcm::SampleAligner;
use crate::provider::{ServedModel, TtsChunk, TtsProvider, TtsRequest, TtsStream};

/// The sample rate of OpenAI's `pcm` output format.
pub const OPENAI_PCM_SAMPLE_RATE: u32 = 24_000;

/// The OpenAI-compatible speech provider.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    vendor: Vendor,
    config: OpenAiTtsConfig,
}

impl OpenAiTts {
    /// A provider from its config section and a resolved key.
    pub fn new(
        name: impl Into<String>,
        config: &OpenAiTtsConfig,
        key: Secret,
        http_config: &HttpConfig,
    ) -> Self {
        Self {
            vendor: Vendor::new(name.into(), key, Auth::Bearer, http_config),
            config: config.clone(),
        }
    }
}

impl TtsProvider for OpenAiTts {
    fn name(&self) -> &str {
        self.vendor.name()
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.config.model, self.vendor.name())]
    }

    fn synthesize(&self, request: TtsRequest) -> TtsStream {
        let body = json!({
            "model": self.config.model,
            "input": request.text,
            "voice": request.voice.as_deref().unwrap_or(&self.config.voice),
            "response_format": "pcm",
        });
        let url = http::join_url(&self.config.base_url, "audio/speech");
        self.vendor
            .synthesize(&request, url, &body, RawPcm::default())
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        self.vendor
            .warm_up(http::join_url(&self.config.base_url, "models"))
    }
}

/// A raw s16le body: each network chunk is one [`TtsChunk`] (re-cut to whole samples).
#[derive(Default)]
struct RawPcm {
    aligner: SampleAligner,
    ready: Option<TtsChunk>,
    streamed: bool,
}

impl AudioBody for RawPcm {
    fn feed(&mut self, bytes: Bytes) -> Result<(), PipelineError> {
        let pcm = self.aligner.push(bytes);
        if !pcm.is_empty() {
            self.streamed = true;
            self.ready = Some(TtsChunk {
                pcm,
                sample_rate: OPENAI_PCM_SAMPLE_RATE,
                timings: Vec::new(),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }

    fn next_chunk(&mut self) -> Option<TtsChunk> {
        self.ready.take()
    }

    fn streamed(&self) -> bool {
        self.streamed
    }
}
