//! WebRTC termination: a sans-IO registry of every call on this node ([`registry`]), a thin
//! tokio shell around it owning the UDP sockets ([`endpoint`]), and the handle a voice session
//! uses to talk on one call ([`handle`]).

pub(crate) mod drain;
pub(crate) mod endpoint;
pub(crate) mod handle;
pub(crate) mod offer;
pub(crate) mod registry;
pub(crate) mod slot;
pub(crate) mod trickle;
pub(crate) mod turn;
pub(crate) mod types;
