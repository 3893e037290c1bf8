//! The core of the data plane: what every edge (transport) shares and nothing transport
//! specific. It imports nothing from `edges` or the crate root.
//!
//! - [`Node`]: one gateway node as an edge sees it: configuration, token verification, the
//!   provider chains, the voice sessions and the drain phase.
//! - `auth`: caller identity from access tokens; `config`: every configuration type;
//!   `error` / `http_error`: the crate's error and the HTTP error shape every edge answers
//!   with; `types`: session ids and drain phases; `slots`: call slots (one limit for every
//!   transport's voice sessions); `origin`: the browser-origin allowlist.
//! - `control_plane`: how the node reaches its control plane (chat turns, quota), with its
//!   service credential; `chat`: the chat service (a turn: checks, bookkeeping, the streamed
//!   reply); `voice`: the voice session bridge, quota metering and the codecs of binary
//!   audio frames.

pub(crate) mod auth;
pub(crate) mod chat;
pub(crate) mod config;
pub(crate) mod control_plane;
pub(crate) mod error;
pub(crate) mod http_error;
pub(crate) mod origin;
pub(crate) mod per_ip;
pub(crate) mod slots;
pub(crate) mod types;
pub mod voice;

use std::sync::Arc;

use pipeline::session::Providers;
use tokio::sync::watch;

use self::{auth::CallerVerifier, config::Config, types::DrainPhase, voice::VoiceSessionFactory};

/// One gateway node as its edges see it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Node {
    inner: Arc<NodeInner>,
}

/// What a [`Node`] is made of.
pub(crate) struct NodeInner {
    pub(crate) config: Config,
    pub(crate) verifier: Arc<dyn CallerVerifier>,
    /// The LLM/STT/TTS chains the OpenAI-compatible endpoints and chat use; `None` answers
    /// them 503.
    pub(crate) providers: Option<Providers>,
    /// The voice sessions calls and WebSocket sessions run on, when the node has them.
    pub(crate) voice: Option<VoiceSessionFactory>,
    /// The node's shutdown phase, seen by signaling, readiness and every session.
    pub(crate) drain: Arc<watch::Sender<DrainPhase>>,
}

impl Node {
    pub(crate) fn new(inner: NodeInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn verifier(&self) -> &dyn CallerVerifier {
        &*self.inner.verifier
    }

    /// The token verifier, for sessions that check refreshed tokens while they run.
    pub(crate) fn shared_verifier(&self) -> Arc<dyn CallerVerifier> {
        self.inner.verifier.clone()
    }

    pub(crate) fn providers(&self) -> Option<&Providers> {
        self.inner.providers.as_ref()
    }

    pub(crate) fn voice_sessions(&self) -> Option<&VoiceSessionFactory> {
        self.inner.voice.as_ref()
    }

    /// Where the node is in its shutdown.
    pub(crate) fn drain_phase(&self) -> DrainPhase {
        *self.inner.drain.borrow()
    }

    /// The node's drain phases, for sessions to follow.
    pub(crate) fn drain_notices(&self) -> watch::Receiver<DrainPhase> {
        self.inner.drain.subscribe()
    }

    /// The sender of the drain phases (the node's shutdown sets it).
    pub(crate) fn drain_sender(&self) -> &Arc<watch::Sender<DrainPhase>> {
        &self.inner.drain
    }
}
