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
mod connection;
mod endpoint;
mod error;
mod identity;
mod stream;
pub mod stream_core;

use std::{future::Future, pin::Pin, sync::Arc};

use protocol::{ServerEvent, chat::SendMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::core::config::QuicConfig;
pub(crate) use cert_hash::routes;
pub use endpoint::QuicEndpoint;
pub use error::QuicError;
pub use identity::{CertHash, install_crypto_provider};

use crate::core::{Node, auth::Caller, chat::ChatService};

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

/// What the HTTP side needs to know about a running endpoint (kept by the gateway, which
/// must not hold the endpoint itself: its owner drains and drops it).
#[derive(Debug, Clone)]
pub(crate) struct QuicInfo {
    local_addr: std::net::SocketAddr,
    webtransport_path: Option<String>,
    cert: Arc<std::sync::RwLock<CertHash>>,
    status: Arc<endpoint::Status>,
}

/// The node's chat service as the endpoint's reply service.
pub(crate) fn chat_service(node: Node) -> Arc<dyn ReplyService> {
    let llm = node.providers().map(|providers| providers.llm.clone());
    Arc::new(ChatService::new(node, llm))
}

impl QuicInfo {
    /// The `/readyz` entry of the endpoint: ok while it is bound and accepting, failing once
    /// it drains or closes.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        self.status.readiness()
    }
}
