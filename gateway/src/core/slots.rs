//! Call slots: every voice session holds one, whatever its transport, so one caller's
//! `max_concurrent_calls`, the node's `max_calls` and the drain count WebRTC calls and
//! sessions over other transports alike. The WebRTC media endpoint keeps the count today; an
//! edge asks for a slot through [`CallSlots`], which the node's assembly provides.

use std::{future::Future, pin::Pin};

use super::auth::Caller;

/// Why a slot could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SlotError {
    /// The node is draining for shutdown.
    #[error("the gateway is draining for shutdown")]
    Draining,
    /// A limit is reached: the caller's, or the node's (the message says which).
    #[error("{0}")]
    Full(String),
    /// The registry that keeps the count could not start or has stopped.
    #[error("the gateway's call registry is not running")]
    Unavailable,
}

/// One reserved slot; dropping it gives the slot back.
pub(crate) struct CallSlot {
    _held: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for CallSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallSlot")
    }
}

impl CallSlot {
    /// A slot that is given back when `held` is dropped.
    pub(crate) fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

/// Where slots come from.
pub(crate) trait CallSlots: Send + Sync + 'static {
    /// Takes a slot for `caller`.
    fn reserve(
        &self,
        caller: Caller,
    ) -> Pin<Box<dyn Future<Output = Result<CallSlot, SlotError>> + Send + '_>>;
}
