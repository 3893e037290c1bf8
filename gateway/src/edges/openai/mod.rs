//! OpenAI-compatible endpoints, so existing OpenAI clients and SDKs work against the product
//! unchanged (base URL `<gateway>/v1`, API key = the caller's access token):
//!
//! - `POST /v1/chat/completions`: the LLM chain, as one `chat.completion` or as SSE
//!   `chat.completion.chunk` events ending in `data: [DONE]`;
//! - `POST /v1/audio/speech`: the TTS chain, 24 kHz mono 16-bit `wav` or `pcm`, streamed;
//! - `POST /v1/audio/transcriptions`: a WAV upload through the STT chain;
//! - `GET /v1/models`, `GET /v1/models/{model}`: the models behind those chains.
//!
//! Any `model` name is accepted and echoed back: the configured provider chain answers (with
//! its own failover), whatever the client calls it. Each completion spends one message of the
//! caller's daily quota, each speech or transcription its seconds of audio, reserved and
//! settled through the control plane's quota API. Errors use OpenAI's shape
//! (`{"error":{"message","type","param","code"}}`). What differs from OpenAI is listed in
//! docs/protocol.md, "OpenAI-compatible endpoints".

mod auth;
mod chat;
mod completions;
mod error;
mod limits;
mod models;
mod resample;
mod reserve;
mod settle;
mod speech;
mod transcription;
mod wav;

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    routing::{get, post},
};
use pipeline::session::Providers;

use self::{auth::Authenticated, error::OpenAiError, models::Catalogue};
use crate::core::{Node, config::openai::OpenAiConfig, control_plane::quota::QuotaClient};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct OpenAi {
    node: Node,
    quota: QuotaClient,
    config: OpenAiConfig,
    models: Arc<Catalogue>,
    /// Transcription uploads being decoded (`gateway.openai.transcription_workers`).
    decoders: Arc<tokio::sync::Semaphore>,
    /// Completions per caller per window (`gateway.openai.chat_requests_per_window`).
    chat_rate: Arc<std::sync::Mutex<limits::RateLimiter>>,
}

impl OpenAi {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, OpenAiError> {
        auth::authenticate(&self.node, headers)
    }

    fn providers(&self) -> Result<&Providers, OpenAiError> {
        self.node.providers().ok_or_else(|| {
            OpenAiError::unavailable(
                "providers_unavailable",
                "this gateway has no AI providers installed",
            )
        })
    }
}

/// The OpenAI-compatible routes, with their body limits.
pub(crate) fn routes(node: Node) -> Router {
    let config = node.config().openai.clone();
    let state = OpenAi {
        quota: QuotaClient::new(node.config()),
        config: config.clone(),
        models: Arc::new(Catalogue::new(node.providers(), unix_now())),
        decoders: Arc::new(tokio::sync::Semaphore::new(config.transcription_workers)),
        chat_rate: Arc::new(std::sync::Mutex::new(limits::RateLimiter::new(
            config.chat_requests_per_window,
            std::time::Duration::from_secs(config.chat_window_secs),
        ))),
        node,
    };
    let json = Router::new()
        .route("/v1/chat/completions", post(completions::create))
        .route("/v1/audio/speech", post(speech::create))
        .layer(DefaultBodyLimit::max(config.max_json_bytes));
    let audio = Router::new()
        .route("/v1/audio/transcriptions", post(transcription::create))
        .layer(DefaultBodyLimit::max(config.max_audio_bytes));
    let models = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*model}", get(models::retrieve));
    json.merge(audio).merge(models).with_state(state)
}

/// JSON endpoints want `Content-Type: application/json` (415 otherwise), as the SDKs send.
fn require_json(headers: &HeaderMap) -> Result<(), OpenAiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = got.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(OpenAiError::unsupported_media(format!(
        "expected Content-Type: application/json, got `{got}`"
    )))
}

/// The body, or 413 past the limit.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, OpenAiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OpenAiError::too_large(format!(
                "the request body is too large: {}",
                rejection.body_text()
            ))
        } else {
            OpenAiError::invalid("invalid_body", rejection.body_text())
        }
    })
}

fn random_id() -> String {
    let mut b = [0u8; 12];
    // Ids only need to be distinct in practice; a failing random source leaves the time part.
    let _ = getrandom::fill(&mut b);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut s = format!("{nanos:08x}");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
