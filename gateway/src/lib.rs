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
mod config;
mod error;
mod signaling;
mod status_page;
pub mod voice;
mod webrtc;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
};

pub use auth::{AuthError, Caller, CallerVerifier, JwksVerifier, fetch_jwks};
pub use config::{Config, IceServer};
pub use error::Error;
pub use webrtc::{
    handle::{CallHandle, CallHandler, CallSender, CallStats, SendError},
    offer::{OfferError, check_offer},
    registry::{
        CallOpError, CallRegistry, CreateError, CreatedCall, EVENTS_CHANNEL, RegistryOutput,
        RegistrySettings, RegistryStats,
    },
    trickle::{FragmentError, TrickleFragment, parse_fragment},
    types::{CallEvent, CallId, CallState, CloseReason, InboundOpus},
};

pub use voice::{VoiceConfig, VoiceError, VoiceSessionFactory};

use axum::{Router, routing::get};
use tokio::sync::OnceCell;

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

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            verifier: shared.verifier.clone(),
            handler: shared.handler.clone(),
            endpoint: OnceCell::new(),
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
            .get_or_try_init(|| Endpoint::start(&self.inner.config, self.inner.handler.clone()))
            .await
    }

    pub(crate) fn verifier(&self) -> &dyn CallerVerifier {
        &*self.inner.verifier
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

    /// Calls currently live on this node.
    pub fn active_calls(&self) -> usize {
        self.inner
            .endpoint
            .get()
            .map_or(0, |e| e.active_calls.load(Relaxed))
    }

    /// The HTTP routes this gateway serves. `/healthz` and `/readyz` are added by the hosting
    /// process, which may host the control plane too.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(status_page::page))
            .merge(signaling::routes(self.clone()))
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency. Starts the media
    /// endpoint if nothing has yet, so a node whose UDP port cannot be bound is never ready.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let media = self.endpoint().await.map(|_| ()).map_err(|e| e.to_string());
        vec![("webrtc_udp", media)]
    }

    /// The configuration this gateway runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}
