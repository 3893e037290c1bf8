//! The data plane: terminates live streams (browser voice calls, token streams) and runs the
//! voice pipeline per call.
//!
//! The gateway holds no signing secret and no tables: it learns who a caller is from access
//! tokens it verifies against the control plane's published keys.
//!
//! Browser voice calls arrive over WHIP-style signaling (the `/v1/calls` routes of
//! [`Gateway::router`]) and are terminated by a sans-IO [`CallRegistry`] driven by one tokio
//! task that owns the UDP sockets. Each new call is handed to the installed [`CallHandler`]
//! as a [`CallHandle`]. See the crate's README for the design notes.
#![forbid(unsafe_code)]

mod auth;
mod chat;
mod config;
mod control_plane;
mod demo;
mod error;
mod openai;
pub mod quic;
mod signaling;
pub mod voice;
mod webrtc;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use auth::{AuthError, Caller, CallerVerifier, JwksVerifier, fetch_jwks};
pub use chat::ChatConfig;
pub use config::{Config, IceServer};
pub use error::Error;
pub use openai::{CompletionLimits, OpenAiConfig};
pub use webrtc::{
    drain::DrainReport,
    endpoint::MediaCensus,
    handle::{CallHandle, CallHandler, CallSender, CallStats, SendError},
    offer::{OfferError, check_offer},
    registry::{
        CallOpError, CallRegistry, CreateError, CreatedCall, EVENTS_CHANNEL, RegistryOutput,
        RegistrySettings, RegistryStats, RegistryTables,
    },
    trickle::{FragmentError, TrickleFragment, parse_fragment},
    types::{CallEvent, CallId, CallState, CloseReason, DrainPhase, InboundOpus},
};

pub use voice::{VoiceConfig, VoiceError, VoiceSessionFactory};

use axum::Router;
use tokio::sync::{OnceCell, watch};

use webrtc::endpoint::Endpoint;

/// A gateway node, ready to serve. Cheap to clone: clones share one media endpoint.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    verifier: Arc<dyn CallerVerifier>,
    handler: Arc<dyn CallHandler>,
    endpoint: OnceCell<Endpoint>,
    /// The LLM/STT/TTS chains the OpenAI-compatible endpoints use; `None` answers them 503.
    providers: Option<pipeline::session::Providers>,
    /// The node's shutdown phase, seen by signaling, readiness and every call.
    drain: Arc<watch::Sender<DrainPhase>>,
    /// The QUIC endpoint's address and certificate, once started (`Gateway::start_quic`).
    quic: std::sync::OnceLock<quic::QuicInfo>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.inner.config)
            .field("media", &self.inner.endpoint.get())
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
        Self {
            inner: Arc::new(Inner {
                config,
                verifier,
                handler: Arc::new(|_call: CallHandle| {}),
                endpoint: OnceCell::new(),
                quic: std::sync::OnceLock::new(),
                providers: None,
                drain: Arc::new(watch::channel(DrainPhase::Serving).0),
            }),
        }
    }

    /// Uses `verifier` for bearer tokens (replacing development tokens). Call before
    /// [`start`](Self::start) or the first request.
    pub fn with_verifier(self, verifier: Arc<dyn CallerVerifier>) -> Self {
        self.rebuild(|inner| inner.verifier = verifier)
    }

    /// Hands every new call to `handler` (the voice session). Call before
    /// [`start`](Self::start) or the first request.
    pub fn with_call_handler(self, handler: impl CallHandler) -> Self {
        let handler: Arc<dyn CallHandler> = Arc::new(handler);
        self.rebuild(|inner| inner.handler = handler)
    }

    /// Gives the node its provider chains (LLM, STT, TTS), used by the OpenAI-compatible
    /// endpoints (`/v1/chat/completions`, `/v1/audio/*`). Call before
    /// [`router`](Self::router).
    pub fn with_providers(self, providers: pipeline::session::Providers) -> Self {
        self.rebuild(|inner| inner.providers = Some(providers))
    }

    /// The provider chains installed with [`with_providers`](Self::with_providers).
    pub fn providers(&self) -> Option<&pipeline::session::Providers> {
        self.inner.providers.as_ref()
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            verifier: shared.verifier.clone(),
            handler: shared.handler.clone(),
            endpoint: OnceCell::new(),
            quic: std::sync::OnceLock::new(),
            providers: shared.providers.clone(),
            drain: shared.drain.clone(),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Binds the WebRTC UDP sockets and starts the media endpoint; returns the addresses
    /// advertised to callers. Idempotent.
    pub async fn start(&self) -> Result<Vec<SocketAddr>, Error> {
        Ok(self.endpoint().await?.advertised.clone())
    }

    pub(crate) async fn endpoint(&self) -> Result<&Endpoint, Error> {
        self.inner
            .endpoint
            .get_or_try_init(|| {
                let drain = self.inner.drain.subscribe();
                Endpoint::start(&self.inner.config, self.inner.handler.clone(), drain)
            })
            .await
    }

    /// Takes a call slot for a WebSocket voice session: one `max_concurrent_calls` count
    /// with WebRTC calls (starts the media endpoint, which keeps that count).
    pub(crate) async fn reserve_call_slot(
        &self,
        caller: Caller,
    ) -> Result<webrtc::slot::CallSlot, webrtc::slot::SlotError> {
        if self.drain_phase() != DrainPhase::Serving {
            return Err(CreateError::Draining.into());
        }
        let endpoint = self
            .endpoint()
            .await
            .map_err(|_| webrtc::slot::SlotError::Unavailable)?;
        webrtc::slot::CallSlot::reserve(&endpoint.commands, caller).await
    }

    /// The voice sessions installed with the call handler, for WebSocket voice.
    pub(crate) fn voice_sessions(&self) -> Option<&VoiceSessionFactory> {
        self.inner.handler.voice_sessions()
    }

    /// The node's drain phases, for sessions outside the media endpoint.
    pub(crate) fn drain_notices(&self) -> watch::Receiver<DrainPhase> {
        self.inner.drain.subscribe()
    }

    pub(crate) fn verifier(&self) -> &dyn CallerVerifier {
        &*self.inner.verifier
    }

    /// The token verifier, for voice sessions that check refreshed tokens while they run.
    pub(crate) fn shared_verifier(&self) -> Arc<dyn CallerVerifier> {
        self.inner.verifier.clone()
    }

    /// Hangs up every live call (node shutdown: callers get a DTLS goodbye at once instead of
    /// waiting for ICE to time out). Returns how many calls were live; new calls are still
    /// accepted afterwards, so stop the HTTP listener first.
    pub async fn hang_up_all(&self) -> usize {
        let Some(endpoint) = self.inner.endpoint.get() else {
            return 0;
        };
        let (reply, done) = tokio::sync::oneshot::channel();
        if endpoint
            .commands
            .send(webrtc::endpoint::Command::HangUpAll { reply })
            .await
            .is_err()
        {
            return 0;
        }
        done.await.unwrap_or(0)
    }

    /// Calls currently live on this node: WebRTC calls plus WebSocket voice sessions.
    pub fn active_calls(&self) -> usize {
        self.inner
            .endpoint
            .get()
            .map_or(0, |e| *e.active_calls.borrow())
    }

    /// Drains the node for shutdown: new calls get 503 `draining` (with `Retry-After`) and
    /// `/readyz` fails at once, while live calls go on. Each call's handler is told
    /// ([`CallSender::drain_notices`]): the voice bridge sends `goodbye` with the deadline.
    /// When the last call has ended or `deadline` has passed, whichever is first, handlers
    /// end their sessions (`session_ended{server_shutdown}`) and hang up; calls still open
    /// a moment later are hung up by the node. Returns once no call is left. Keep the HTTP
    /// server running meanwhile: callers still hang up and trickle over it.
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        webrtc::drain::run(self.inner.endpoint.get(), &self.inner.drain, deadline).await
    }

    /// Where the node is in its shutdown.
    pub fn drain_phase(&self) -> DrainPhase {
        *self.inner.drain.borrow()
    }

    /// How much per-call state the media endpoint holds (`None` before it starts): every
    /// table is empty once every call has ended.
    pub async fn media_census(&self) -> Option<MediaCensus> {
        let endpoint = self.inner.endpoint.get()?;
        let (reply, census) = tokio::sync::oneshot::channel();
        let command = webrtc::endpoint::Command::Census { reply };
        endpoint.commands.send(command).await.ok()?;
        census.await.ok()
    }

    /// The HTTP routes this gateway serves. `/healthz` and `/readyz` are added by the hosting
    /// process, which may host the control plane too.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(demo::routes(self.inner.config.dev_tokens))
            .merge(signaling::routes(self.clone()))
            .merge(openai::routes(self.clone()))
            .merge(chat::routes(
                self.clone(),
                self.providers().map(|p| p.llm.clone()),
            ))
            .merge(quic::routes(self.clone()))
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency. Starts the media
    /// endpoint if nothing has yet, so a node whose UDP port cannot be bound is never ready.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let media = self.endpoint().await.map(|_| ()).map_err(|e| e.to_string());
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
        checks.extend(self.quic_readiness().map(|quic| ("quic", quic)));
        checks
    }

    /// The configuration this gateway runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}
