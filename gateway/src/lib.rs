//! The data plane: terminates live streams (browser voice calls, token streams) and runs the
//! voice pipeline per call.
//!
//! The gateway holds no signing secret and no tables: it learns who a caller is from access
//! tokens it verifies against the control plane's published keys.
//!
//! The crate is a core with edges (see the README for the picture and who may import whom):
//! `core` holds what every transport shares (caller identity, configuration, errors, call
//! slots, drain phases, the control-plane client, the chat service and the voice bridge) and
//! imports nothing above it; each module of `edges` adapts one transport (WebRTC with WHIP
//! signaling, WebSocket, QUIC/WebTransport, the OpenAI-compatible HTTP endpoints, the demo
//! page) to the core and knows nothing of its siblings. This file assembles them into a
//! [`Gateway`].
#![forbid(unsafe_code)]

mod core;
mod edges;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use crate::core::{
    auth::{AuthError, Caller, CallerVerifier, JwksVerifier, fetch_jwks},
    config::{ChatConfig, Config, IceServer, OpenAiConfig, openai::CompletionLimits},
    error::Error,
    per_ip::{ConnectionSlot, PerIp},
    types::{CallId, DrainPhase},
    voice,
    voice::{VoiceConfig, VoiceError, VoiceSessionFactory},
};
pub use edges::quic;
pub use edges::webrtc::{
    command::MediaCensus,
    drain::DrainReport,
    handle::{CallHandle, CallHandler, CallSender, CallStats, SendError},
    offer::{OfferError, check_offer},
    registry::{
        CallOpError, CallRegistry, CreateError, CreatedCall, EVENTS_CHANNEL, RegistryOutput,
        RegistrySettings, RegistryStats, RegistryTables,
    },
    trickle::{FragmentError, TrickleFragment, parse_fragment},
    types::{CallEvent, CallState, CloseReason, InboundOpus},
};

use axum::Router;
use tokio::sync::watch;

use crate::core::{Node, NodeInner, auth};
use edges::{
    quic::{QuicEndpoint, QuicError, QuicInfo, ReplyService},
    webrtc::Media,
};

/// A gateway node, ready to serve. Cheap to clone: clones share one media endpoint.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Assembled>,
}

/// What the builder methods set; the node is rebuilt from it on each.
#[derive(Clone)]
struct Parts {
    config: Config,
    verifier: Arc<dyn CallerVerifier>,
    handler: Arc<dyn CallHandler>,
    providers: Option<pipeline::session::Providers>,
    drain: Arc<watch::Sender<DrainPhase>>,
}

struct Assembled {
    parts: Parts,
    node: Node,
    /// The WebRTC media endpoint, started on first use.
    media: Media,
    /// The QUIC endpoint's address and certificate, once started (`Gateway::start_quic`).
    quic: Arc<std::sync::OnceLock<QuicInfo>>,
}

impl Assembled {
    fn new(parts: Parts) -> Self {
        let node = Node::new(NodeInner {
            config: parts.config.clone(),
            verifier: parts.verifier.clone(),
            providers: parts.providers.clone(),
            voice: parts.handler.voice_sessions().cloned(),
            drain: parts.drain.clone(),
        });
        Self {
            media: Media::new(node.clone(), parts.handler.clone()),
            node,
            parts,
            quic: Arc::new(std::sync::OnceLock::new()),
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", self.config())
            .field("media", &self.inner.media)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds a gateway from its configuration section. Nothing is bound yet: the WebRTC UDP
    /// sockets open on [`start`](Self::start), or on the first call.
    ///
    /// Token verification: with no verifier installed ([`with_verifier`](Self::with_verifier))
    /// every call is refused with 401, unless `gateway.dev_tokens = true` allows development
    /// tokens `dev:<user id>`.
    pub fn new(config: Config) -> Self {
        let verifier: Arc<dyn CallerVerifier> = if config.dev_tokens {
            tracing::warn!("gateway.dev_tokens is on: any `dev:<user>` token is accepted");
            Arc::new(auth::DevVerifier {
                max_concurrent_calls: config.dev_max_concurrent_calls,
            })
        } else {
            Arc::new(auth::RefuseAll)
        };
        let parts = Parts {
            config,
            verifier,
            handler: Arc::new(|_call: CallHandle| {}),
            providers: None,
            drain: Arc::new(watch::channel(DrainPhase::Serving).0),
        };
        Self {
            inner: Arc::new(Assembled::new(parts)),
        }
    }

    /// Uses `verifier` for bearer tokens (replacing development tokens). Call before
    /// [`start`](Self::start) or the first request.
    pub fn with_verifier(self, verifier: Arc<dyn CallerVerifier>) -> Self {
        self.rebuild(|parts| parts.verifier = verifier)
    }

    /// Hands every new call to `handler` (the voice session). Call before
    /// [`start`](Self::start) or the first request.
    pub fn with_call_handler(self, handler: impl CallHandler) -> Self {
        let handler: Arc<dyn CallHandler> = Arc::new(handler);
        self.rebuild(|parts| parts.handler = handler)
    }

    /// Gives the node its provider chains (LLM, STT, TTS), used by the OpenAI-compatible
    /// endpoints (`/v1/chat/completions`, `/v1/audio/*`). Call before
    /// [`router`](Self::router).
    pub fn with_providers(self, providers: pipeline::session::Providers) -> Self {
        self.rebuild(|parts| parts.providers = Some(providers))
    }

    /// The provider chains installed with [`with_providers`](Self::with_providers).
    pub fn providers(&self) -> Option<&pipeline::session::Providers> {
        self.inner.node.providers()
    }

    /// A new node from this one's parts with `change` applied (nothing started is kept).
    fn rebuild(self, change: impl FnOnce(&mut Parts)) -> Self {
        let mut parts = self.inner.parts.clone();
        change(&mut parts);
        Self {
            inner: Arc::new(Assembled::new(parts)),
        }
    }

    /// Binds the WebRTC UDP sockets and starts the media endpoint; returns the addresses
    /// advertised to callers. Idempotent.
    pub async fn start(&self) -> Result<Vec<SocketAddr>, Error> {
        Ok(self.inner.media.endpoint().await?.advertised.clone())
    }

    /// Hangs up every live call (node shutdown: callers get a DTLS goodbye at once instead of
    /// waiting for ICE to time out). Returns how many calls were live; new calls are still
    /// accepted afterwards, so stop the HTTP listener first.
    pub async fn hang_up_all(&self) -> usize {
        self.inner.media.hang_up_all().await
    }

    /// Calls currently live on this node: WebRTC calls plus WebSocket voice sessions.
    pub fn active_calls(&self) -> usize {
        self.inner.media.active_calls()
    }

    /// Drains the node for shutdown: new calls get 503 `draining` (with `Retry-After`) and
    /// `/readyz` fails at once, while live calls go on. Each call's handler is told
    /// ([`CallSender::drain_notices`]): the voice bridge sends `goodbye` with the deadline.
    /// When the last call has ended or `deadline` has passed, whichever is first, handlers
    /// end their sessions (`session_ended{server_shutdown}`) and hang up; calls still open
    /// a moment later are hung up by the node. Returns once no call is left. Keep the HTTP
    /// server running meanwhile: callers still hang up and trickle over it.
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        self.inner.media.drain(deadline).await
    }

    /// Where the node is in its shutdown.
    pub fn drain_phase(&self) -> DrainPhase {
        self.inner.node.drain_phase()
    }

    /// How much per-call state the media endpoint holds (`None` before it starts): every
    /// table is empty once every call has ended.
    pub async fn media_census(&self) -> Option<MediaCensus> {
        self.inner.media.census().await
    }

    /// The HTTP routes this gateway serves. `/healthz` and `/readyz` are added by the hosting
    /// process, which may host the control plane too.
    pub fn router(&self) -> Router {
        let node = &self.inner.node;
        let llm = node.providers().map(|p| p.llm.clone());
        Router::new()
            .merge(edges::demo::routes(node.config().dev_tokens))
            .merge(edges::webrtc::signaling::routes(
                node.clone(),
                self.inner.media.clone(),
            ))
            .merge(edges::openai::routes(node.clone()))
            .merge(edges::ws::routes(
                node.clone(),
                llm,
                Arc::new(self.inner.media.clone()),
            ))
            .merge(edges::quic::routes(self.inner.quic.clone()))
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency. Starts the media
    /// endpoint if nothing has yet, so a node whose UDP port cannot be bound is never ready.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let media = (self.inner.media.endpoint().await)
            .map(|_| ())
            .map_err(|e| e.to_string());
        // A draining node fails readiness so load balancers stop sending it calls.
        let accepting = match self.drain_phase() {
            DrainPhase::Serving => Ok(()),
            _ => Err(format!(
                "draining for shutdown: {} calls left",
                self.active_calls()
            )),
        };
        let mut checks = vec![("webrtc_udp", media), ("accepting_calls", accepting)];
        // Reported once the hosting process has started the endpoint (`gateway.quic`).
        checks.extend(self.inner.quic.get().map(|quic| ("quic", quic.readiness())));
        checks
    }

    /// The configuration this gateway runs with.
    pub fn config(&self) -> &Config {
        self.inner.node.config()
    }

    /// Starts the QUIC + WebTransport endpoint at `gateway.quic.listen` with the gateway's
    /// chat service and token verifier, or returns `Ok(None)` when `gateway.quic.enabled` is
    /// off. The caller keeps the endpoint (dropping it closes it) and drains it at shutdown;
    /// `GET /v1/webtransport/cert-hash` describes it meanwhile. Call once.
    pub async fn start_quic(&self) -> Result<Option<QuicEndpoint>, QuicError> {
        if !self.config().quic.enabled {
            return Ok(None);
        }
        let service = edges::quic::chat_service(self.inner.node.clone());
        self.start_quic_with(service).await.map(Some)
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
            self.inner.node.shared_verifier(),
            service,
            config.chat.allowed_origins.clone(),
        )
        .await?;
        let _ = self.inner.quic.set(endpoint.info());
        Ok(endpoint)
    }
}
