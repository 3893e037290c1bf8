//! The WebRTC edge: WHIP-style signaling over HTTP ([`signaling`]), a sans-IO registry of
//! every call on this node ([`registry`]), a thin tokio shell around it owning the UDP
//! sockets ([`endpoint`]), the handle a voice session uses to talk on one call ([`handle`]),
//! and a call as a voice-bridge transport ([`voice`]). The registry also keeps the node's call
//! slots, which sessions over other transports take through [`Media`]'s `CallSlots`.

pub(crate) mod command;
pub(crate) mod drain;
pub(crate) mod endpoint;
pub(crate) mod handle;
mod http_errors;
mod inbound;
pub(crate) mod offer;
pub(crate) mod registry;
pub(crate) mod signaling;
mod slot;
pub(crate) mod trickle;
mod turn;
pub(crate) mod types;
mod voice;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::OnceCell;

use self::{
    command::{Command, MediaCensus},
    drain::DrainReport,
    endpoint::Endpoint,
    handle::CallHandler,
};
use crate::core::{
    Node,
    auth::Caller,
    error::Error,
    slots::{CallSlot, CallSlots, SlotError},
    types::DrainPhase,
};

/// The node's media endpoint, started on first use. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Media {
    inner: Arc<MediaInner>,
}

struct MediaInner {
    node: Node,
    handler: Arc<dyn CallHandler>,
    endpoint: OnceCell<Endpoint>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("endpoint", &self.inner.endpoint.get())
            .finish_non_exhaustive()
    }
}

impl Media {
    /// A media endpoint for `node` handing each new call to `handler`; nothing is bound yet.
    pub(crate) fn new(node: Node, handler: Arc<dyn CallHandler>) -> Self {
        Self {
            inner: Arc::new(MediaInner {
                node,
                handler,
                endpoint: OnceCell::new(),
            }),
        }
    }

    /// The endpoint, binding its UDP sockets the first time. Idempotent.
    pub(crate) async fn endpoint(&self) -> Result<&Endpoint, Error> {
        let inner = &self.inner;
        inner
            .endpoint
            .get_or_try_init(|| {
                Endpoint::start(
                    inner.node.config(),
                    inner.handler.clone(),
                    inner.node.drain_notices(),
                )
            })
            .await
    }

    /// The endpoint if it has started.
    pub(crate) fn started(&self) -> Option<&Endpoint> {
        self.inner.endpoint.get()
    }

    /// Hangs up every live call; returns how many there were.
    pub(crate) async fn hang_up_all(&self) -> usize {
        let Some(endpoint) = self.started() else {
            return 0;
        };
        let (reply, done) = tokio::sync::oneshot::channel();
        if endpoint
            .commands
            .send(Command::HangUpAll { reply })
            .await
            .is_err()
        {
            return 0;
        }
        done.await.unwrap_or(0)
    }

    /// Calls live on this node: WebRTC calls plus slots held by other transports.
    pub(crate) fn active_calls(&self) -> usize {
        self.started().map_or(0, |e| *e.active_calls.borrow())
    }

    /// Drains the calls for shutdown (what the node's drain does).
    pub(crate) async fn drain(&self, deadline: Duration) -> DrainReport {
        drain::run(self.started(), self.inner.node.drain_sender(), deadline).await
    }

    /// How much per-call state the endpoint holds (`None` before it starts).
    pub(crate) async fn census(&self) -> Option<MediaCensus> {
        let endpoint = self.started()?;
        let (reply, census) = tokio::sync::oneshot::channel();
        endpoint
            .commands
            .send(Command::Census { reply })
            .await
            .ok()?;
        census.await.ok()
    }
}

impl CallSlots for Media {
    fn reserve(
        &self,
        caller: Caller,
    ) -> Pin<Box<dyn Future<Output = Result<CallSlot, SlotError>> + Send + '_>> {
        Box::pin(async move {
            if self.inner.node.drain_phase() != DrainPhase::Serving {
                return Err(SlotError::Draining);
            }
            let endpoint = self.endpoint().await.map_err(|_| SlotError::Unavailable)?;
            slot::reserve(&endpoint.commands, caller).await
        })
    }
}
