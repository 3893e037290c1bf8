//! Chat over QUIC (ALPN `companion/1`, for native clients) and WebTransport (HTTP/3, ALPN
//! `h3`, for browsers) on one UDP endpoint. Reference: `docs/protocol.md`, "QUIC and
//! WebTransport".
//!
//! Both transports are served by the same code: a WebTransport session is a QUIC connection
//! with an HTTP/3 handshake in front and 32-bit error codes, and `web-transport-quinn`
//! presents both as one `Session` type. On either:
//!
//! - the server opens a unidirectional **control stream** and writes `hello` (and `goodbye`
//!   when the node drains);
//! - the client opens one **bidirectional stream per request**: an `auth` event frame with its
//!   bearer token, a `send_message` event frame, optionally `cancel`/`ping` frames later; the
//!   server writes the reply's event frames and finishes the stream.
//!
//! A token travels on every request stream, so a refreshed token needs no new connection and
//! an expired one is caught at the next request. Errors reach the client as an `error` event
//! and then as the stream's [`AppCode`](codes::AppCode); one stream's failure never closes the
//! connection.
//!
//! Layout: `stream_core` decides (sans-IO, unit-tested, fuzzed); `stream` and `connection`
//! are the tokio shells of a stream and a connection; `endpoint` binds, accepts by ALPN and
//! drains; `identity` holds the certificate; `cert_hash` serves its hash over HTTP.

mod cert_hash;
pub mod codes;
mod config;
mod connection;
mod endpoint;
mod error;
mod identity;
mod per_ip;
mod stream;
pub mod stream_core;

use std::{future::Future, pin::Pin, sync::Arc};

use protocol::{ServerEvent, chat::SendMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use cert_hash::routes;
pub use config::QuicConfig;
pub use endpoint::QuicEndpoint;
pub use error::QuicError;
pub use identity::{CertHash, install_crypto_provider};

use crate::{Gateway, auth::Caller, chat::ChatService};

/// Runs one chat request and streams its events (what the chat service does). The QUIC
/// transport calls it once per request stream; tests can put their own behind the endpoint.
pub trait ReplyService: Send + Sync + 'static {
    /// Runs `request` for `caller` to its end, sending every event of the reply on `events`
    /// in order, and ending it early (with a cancelled `message_complete`) when `cancel`
    /// fires. The stream ends when the returned future completes and `events` is dropped.
    fn reply(
        &self,
        caller: Caller,
        bearer_token: String,
        request: SendMessage,
        events: mpsc::Sender<ServerEvent>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

impl ReplyService for ChatService {
    fn reply(
        &self,
        caller: Caller,
        bearer_token: String,
        request: SendMessage,
        events: mpsc::Sender<ServerEvent>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let chat = self.clone();
        Box::pin(async move {
            ChatService::reply(&chat, &caller, &bearer_token, request, events, cancel).await;
        })
    }
}

/// What the HTTP side needs to know about a running endpoint (kept by the [`Gateway`], which
/// must not hold the endpoint itself: the endpoint's chat service holds the gateway).
#[derive(Debug, Clone)]
pub(crate) struct QuicInfo {
    local_addr: std::net::SocketAddr,
    webtransport_path: Option<String>,
    cert: Arc<std::sync::RwLock<CertHash>>,
    status: Arc<endpoint::Status>,
}

impl Gateway {
    /// Starts the QUIC + WebTransport endpoint at `gateway.quic.listen` with the gateway's
    /// chat service and token verifier, or returns `Ok(None)` when `gateway.quic.enabled` is
    /// off. The caller keeps the endpoint (dropping it closes it) and drains it at shutdown;
    /// `GET /v1/webtransport/cert-hash` describes it meanwhile. Call once.
    pub async fn start_quic(&self) -> Result<Option<QuicEndpoint>, QuicError> {
        if !self.config().quic.enabled {
            return Ok(None);
        }
        let llm = self.providers().map(|providers| providers.llm.clone());
        let chat = ChatService::new(self.clone(), llm);
        self.start_quic_with(Arc::new(chat)).await.map(Some)
    }

    /// Starts the endpoint as [`start_quic`](Self::start_quic) does (even when
    /// `gateway.quic.enabled` is off), answering requests with `service`: for embedding the
    /// transport in front of another service, and for tests.
    pub async fn start_quic_with(
        &self,
        service: Arc<dyn ReplyService>,
    ) -> Result<QuicEndpoint, QuicError> {
        let config = self.config();
        let endpoint = QuicEndpoint::start(
            &config.quic,
            self.inner.verifier.clone(),
            service,
            config.chat.allowed_origins.clone(),
        )
        .await?;
        let _ = self.inner.quic.set(endpoint.info());
        Ok(endpoint)
    }

    pub(crate) fn quic_info(&self) -> Option<&QuicInfo> {
        self.inner.quic.get()
    }

    /// The `/readyz` entry of the QUIC endpoint, once one has started: ok while it is bound
    /// and accepting, failing once it drains or closes.
    pub(crate) fn quic_readiness(&self) -> Option<Result<(), String>> {
        self.quic_info().map(|info| info.status.readiness())
    }
}
