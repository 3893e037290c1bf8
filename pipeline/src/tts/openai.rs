//! OpenAI-compatible `POST /v1/audio/speech` with `response_format: "pcm"`.
//!
//! The body is raw 24 kHz mono s16le, chunked as the model produces it; each network chunk
//! is handed on as soon as it arrives (re-cut to whole samples).

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use serde_json::json;

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
    name: String,
    client: reqwest::Client,
    config: OpenAiTtsConfig,
    key: Secret,
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
            name: name.into(),
            client: http::build_client(http_config),
            config: config.clone(),
            key,
        }
    }
}

impl TtsProvider for OpenAiTts {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.config.model, &self.name)]
    }

    fn synthesize(&self, request: TtsRequest) -> TtsStream {
        if request.text.trim().is_empty() {
            return stream::once(async {
                Err(PipelineError::InvalidRequest("nothing to say".into()))
            })
            .boxed();
        }
        let body = json!({
            "model": self.config.model,
            "input": request.text,
            "voice": request.voice.as_deref().unwrap_or(&self.config.voice),
            "response_format": "pcm",
        });
        let builder = self
            .client
            .post(http::join_url(&self.config.base_url, "audio/speech"))
            .bearer_auth(self.key.expose())
            .json(&body);
        let name = self.name.clone();
        raw_pcm_stream(
            name.clone(),
            async move { http::send(&name, builder).await },
            OPENAI_PCM_SAMPLE_RATE,
        )
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        let builder = self
            .client
            .get(http::join_url(&self.config.base_url, "models"))
            .bearer_auth(self.key.expose());
        Box::pin(async move { http::warm_up(&self.name, builder).await })
    }
}

struct RawBody {
    provider: String,
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    aligner: SampleAligner,
    sample_rate: u32,
    streamed: bool,
}

/// A raw s16le response body as [`TtsChunk`]s; a body that breaks off is a `StreamCut`.
fn raw_pcm_stream<F>(provider: String, open: F, sample_rate: u32) -> TtsStream
where
    F: std::future::Future<Output = Result<reqwest::Response, PipelineError>> + Send + 'static,
{
    enum Phase<F> {
        Open(String, F),
        Body(RawBody),
        Done,
    }
    stream::unfold(Phase::Open(provider, open), move |phase| async move {
        let mut raw = match phase {
            Phase::Done => return None,
            Phase::Body(raw) => raw,
            Phase::Open(provider, open) => match open.await {
                Err(e) => return Some((Err(e), Phase::Done)),
                Ok(response) => RawBody {
                    provider,
                    body: response.bytes_stream().boxed(),
                    aligner: SampleAligner::new(),
                    sample_rate,
                    streamed: false,
                },
            },
        };
        loop {
            match raw.body.next().await {
                Some(Ok(bytes)) => {
                    let pcm = raw.aligner.push(bytes);
                    if pcm.is_empty() {
                        continue;
                    }
                    raw.streamed = true;
                    let chunk = TtsChunk {
                        pcm,
                        sample_rate: raw.sample_rate,
                        timings: Vec::new(),
                    };
                    return Some((Ok(chunk), Phase::Body(raw)));
                }
                Some(Err(e)) => {
                    let error = PipelineError::StreamCut {
                        provider: raw.provider.clone(),
                        streamed: raw.streamed,
                        message: http::error_chain(&e),
                    };
                    return Some((Err(error), Phase::Done));
                }
                None if !raw.streamed => {
                    let error = PipelineError::Protocol {
                        provider: raw.provider.clone(),
                        streamed: false,
                        message: "response had no audio".into(),
                    };
                    return Some((Err(error), Phase::Done));
                }
                None => return None,
            }
        }
    })
    .boxed()
}
