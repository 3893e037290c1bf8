//! OpenAI-compatible `POST /v1/audio/transcriptions` (multipart `model` + WAV `file`).
//!
//! A batch API: the audio is collected until the caller's audio stream ends, then sent as one
//! WAV file; the answer `{"text": ...}` becomes one [`SttEvent::Final`].

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream;
use serde::Deserialize;

use crate::PipelineError;
use crate::config::{HttpConfig, OpenAiSttConfig, Secret};
use crate::http;
use crate::pcm::{SampleAligner, wav_header};
use crate::provider::{
    AudioStream, STT_SAMPLE_RATE, ServedModel, SttEvent, SttProvider, SttStream,
};

/// The API's upload limit is 25 MB; 10 minutes of 16 kHz audio is well inside it.
const MAX_AUDIO_BYTES: usize = 10 * 60 * STT_SAMPLE_RATE as usize * 2;

/// The OpenAI-compatible transcription provider.
#[derive(Debug, Clone)]
pub struct OpenAiStt {
    name: String,
    client: reqwest::Client,
    config: OpenAiSttConfig,
    key: Secret,
}

impl OpenAiStt {
    /// A provider from its config section and a resolved key.
    pub fn new(
        name: impl Into<String>,
        config: &OpenAiSttConfig,
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

#[derive(Deserialize)]
struct Transcription {
    text: String,
}

impl SttProvider for OpenAiStt {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.config.model, &self.name)]
    }

    fn transcribe(&self, mut audio: AudioStream) -> SttStream {
        let this = self.clone();
        stream::once(async move {
            let mut pcm = BytesMut::new();
            let mut aligner = SampleAligner::new();
            while let Some(chunk) = audio.next().await {
                pcm.extend_from_slice(&aligner.push(chunk));
                if pcm.len() > MAX_AUDIO_BYTES {
                    return Err(PipelineError::InvalidRequest(format!(
                        "utterance longer than {} s",
                        MAX_AUDIO_BYTES / (2 * STT_SAMPLE_RATE as usize)
                    )));
                }
            }
            if pcm.is_empty() {
                return Err(PipelineError::InvalidRequest(
                    "no audio to transcribe".into(),
                ));
            }
            let (content_type, body) = this.multipart(&pcm);
            let request = this
                .client
                .post(http::join_url(
                    &this.config.base_url,
                    "audio/transcriptions",
                ))
                .bearer_auth(this.key.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
            let response = http::send(&this.name, request).await?;
            let parsed: Transcription =
                response.json().await.map_err(|e| PipelineError::Protocol {
                    provider: this.name.clone(),
                    streamed: false,
                    message: format!("bad transcription response: {}", http::error_chain(&e)),
                })?;
            Ok(SttEvent::Final(parsed.text.trim().to_owned()))
        })
        .boxed()
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        let builder = self
            .client
            .get(http::join_url(&self.config.base_url, "models"))
            .bearer_auth(self.key.expose());
        Box::pin(async move { http::warm_up(&self.name, builder).await })
    }
}

impl OpenAiStt {
    fn multipart(&self, pcm: &[u8]) -> (String, Bytes) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let boundary = format!(
            "----pipeline-{nanos:08x}-{:x}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut body = BytesMut::with_capacity(pcm.len() + 512);
        let mut field = |name: &str, value: &str| {
            body.put_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        };
        field("model", &self.config.model);
        field("response_format", "json");
        if !self.config.language.is_empty() {
            field("language", &self.config.language);
        }
        body.put_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.put_slice(&wav_header(STT_SAMPLE_RATE, pcm.len() as u32));
        body.put_slice(pcm);
        body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={boundary}"),
            body.freeze(),
        )
    }
}
