//! Mock providers: one HTTP server that speaks every vendor format the real providers use.
//!
//! Endpoints (all under one address):
//! - `POST /v1/chat/completions` — OpenAI-compatible SSE (also stands in for Groq and local servers)
//! - `POST /v1/messages` — Anthropic Messages SSE
//! - `POST /v1/audio/transcriptions` — OpenAI transcription (multipart WAV in, JSON out)
//! - `POST /v1/audio/speech` — OpenAI speech, streamed `pcm` (24 kHz s16le) or `wav`
//! - `GET /v1/listen` — Deepgram live transcription over WebSocket
//! - `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps` — ElevenLabs NDJSON with alignment
//! - `GET /v1/models` — for connection warm-up
//!
//! Timing (time to first token, token interval, TTS time to first byte) comes from
//! [`MockConfig`]. Faults ([`Fault`]) are chosen per request by the `x-mock-fault` header,
//! else by a model name `fault-<spec>` (`fault-500`, `fault-429-3`, `fault-hang`,
//! `fault-cut-5`, `fault-stall-2`, `fault-error-1`), else server-wide
//! ([`MockConfig::fault`] / [`MockServer::set_fault`]).
//! The language model answers deterministically from the user's last words ([`reply_for`]).

mod fault;
mod llm;
mod paced;
mod reply;
mod stt;
mod tts;
mod voice;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::oneshot;

pub use fault::Fault;
pub use reply::{continuation, reply_for, tokenize};
pub use tts::mock_speech_duration;
pub use voice::{SECONDS_PER_CHAR, synthesize};

use crate::PipelineError;
use crate::config::{PipelineConfig, Secret};

/// The key every mock endpoint accepts (any non-empty key is accepted).
pub const MOCK_API_KEY: &str = "mock-key";

/// Timing and behaviour of a mock server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Delay before the first LLM token. Default 30 ms.
    pub ttft_ms: u64,
    /// Delay between LLM tokens. Default 5 ms.
    pub token_interval_ms: u64,
    /// Delay before the first TTS audio byte. Default 30 ms.
    pub tts_ttfb_ms: u64,
    /// Audio per TTS chunk. Default 40 ms.
    pub tts_chunk_ms: u64,
    /// Delay between TTS chunks after the first (0 = as fast as possible). Default 0.
    pub tts_chunk_interval_ms: u64,
    /// Delay before a transcription answer / the final Deepgram result. Default 20 ms.
    pub stt_latency_ms: u64,
    /// What the STT endpoints hear, unless a request sends `x-mock-transcript`.
    /// Default "what is the weather like today".
    pub transcript: String,
    /// How long `hang` and `stall` faults stay silent before dropping the connection.
    /// Default 30000 ms.
    pub hang_ms: u64,
    /// Server-wide fault spec (see [`Fault::parse`]). Default "none".
    pub fault: String,
    /// Reject requests without an API key header (401), as the vendors do. Default true.
    pub require_auth: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            ttft_ms: 30,
            token_interval_ms: 5,
            tts_ttfb_ms: 30,
            tts_chunk_ms: 40,
            tts_chunk_interval_ms: 0,
            stt_latency_ms: 20,
            transcript: "what is the weather like today".into(),
            hang_ms: 30_000,
            fault: "none".into(),
            require_auth: true,
        }
    }
}

/// Which endpoint a request hit (for request counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/messages`
    AnthropicMessages,
    /// `/v1/audio/transcriptions`
    Transcriptions,
    /// `/v1/audio/speech`
    Speech,
    /// `/v1/listen`
    DeepgramListen,
    /// ElevenLabs `stream/with-timestamps`
    ElevenLabs,
}

pub(crate) struct MockState {
    pub(crate) config: MockConfig,
    fault: Mutex<Fault>,
    counters: [AtomicU64; 6],
    connections: AtomicU64,
    pub(crate) keepalives: AtomicU64,
}

impl MockState {
    pub(crate) fn server_fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self, endpoint: Endpoint) {
        self.counters[endpoint as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A running mock server. Dropping it stops accepting connections.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts a server on `127.0.0.1:0` inside the current tokio runtime.
    pub async fn start(config: MockConfig) -> Result<Self, PipelineError> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr, config: MockConfig) -> Result<Self, PipelineError> {
        use axum::serve::ListenerExt;
        let fault = Fault::parse(&config.fault).ok_or_else(|| PipelineError::Config {
            key: "fault".into(),
            message: format!("unknown fault spec {:?}", config.fault),
        })?;
        let state = Arc::new(MockState {
            config,
            fault: Mutex::new(fault),
            counters: Default::default(),
            connections: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| PipelineError::Io {
                what: format!("binding mock server to {addr}"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| PipelineError::Io {
            what: "reading mock server address".into(),
            source,
        })?;
        let counted = state.clone();
        let listener = listener.tap_io(move |tcp| {
            counted.connections.fetch_add(1, Ordering::Relaxed);
            // Tokens are tiny writes; Nagle would batch them and distort latency numbers.
            let _ = tcp.set_nodelay(true);
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "mock server stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL for OpenAI-compatible clients.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/listen`, the Deepgram URL.
    pub fn deepgram_url(&self) -> String {
        format!("ws://{}/v1/listen", self.addr)
    }

    /// Changes the server-wide fault for later requests.
    pub fn set_fault(&self, fault: Fault) {
        *self
            .state
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// How many requests reached `endpoint`.
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.state.counters[endpoint as usize].load(Ordering::Relaxed)
    }

    /// How many TCP connections were accepted (to check that clients reuse warm ones).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// How many Deepgram `KeepAlive` messages arrived.
    pub fn keepalives(&self) -> u64 {
        self.state.keepalives.load(Ordering::Relaxed)
    }

    /// A pipeline config with every provider pointed at this server (key [`MOCK_API_KEY`],
    /// models `mock-openai`, `mock-claude`, `mock-groq`, ...). Tests change a provider's
    /// model to `fault-...` to make it fail. The offline `local` speech providers stay last in
    /// the default orders, as in production; set `tts.order` / `stt.order` to leave them out.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let key = Some(Secret::new(MOCK_API_KEY));
        let mut c = PipelineConfig::default();
        c.llm.openai.base_url = Some(self.openai_base_url());
        c.llm.openai.model = Some("mock-openai".into());
        c.llm.openai.api_key = key.clone();
        c.llm.groq.base_url = Some(self.openai_base_url());
        c.llm.groq.model = Some("mock-groq".into());
        c.llm.groq.api_key = key.clone();
        c.llm.local.base_url = Some(self.openai_base_url());
        c.llm.anthropic.base_url = self.url();
        c.llm.anthropic.model = "mock-claude".into();
        c.llm.anthropic.api_key = key.clone();
        c.stt.openai.base_url = self.openai_base_url();
        c.stt.openai.api_key = key.clone();
        c.stt.deepgram.url = self.deepgram_url();
        c.stt.deepgram.api_key = key.clone();
        c.tts.openai.base_url = self.openai_base_url();
        c.tts.openai.api_key = key.clone();
        c.tts.elevenlabs.base_url = self.url();
        c.tts.elevenlabs.api_key = key;
        c
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(llm::chat_completions))
        .route("/v1/messages", post(llm::anthropic_messages))
        .route("/v1/audio/transcriptions", post(stt::transcriptions))
        .route("/v1/listen", get(stt::deepgram_listen))
        .route("/v1/audio/speech", post(tts::openai_speech))
        .route(
            "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
            post(tts::elevenlabs_stream),
        )
        .route("/v1/models", get(llm::models))
        .with_state(state)
}
