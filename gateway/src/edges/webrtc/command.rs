//! What the media endpoint is asked to do: by signaling (create, trickle, hang up), by call
//! handles (audio, messages), by other transports' sessions (call slots) and by the node
//! (shutdown, leak census). Its own file so handles and the endpoint both use it without
//! importing each other.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    registry::{CallOpError, CreateError, CreatedCall, RegistryTables},
    trickle::TrickleFragment,
};
use crate::core::{auth::Caller, types::CallId, voice::Admission};

/// Commands from signaling and from call handles. Bounded: senders wait when the endpoint is
/// busy, which is the backpressure.
#[derive(Debug)]
pub(crate) enum Command {
    Create {
        caller: Caller,
        offer: String,
        /// The caller's first block of voice seconds, handed to the call (released when the
        /// call is not created).
        admission: Admission,
        reply: oneshot::Sender<Result<CreatedCall, CreateError>>,
    },
    Candidates {
        id: CallId,
        user_id: String,
        frag: TrickleFragment,
        reply: oneshot::Sender<Result<usize, CallOpError>>,
    },
    HangUp {
        id: CallId,
        user_id: Option<String>,
        reply: Option<oneshot::Sender<Result<(), CallOpError>>>,
    },
    Audio {
        id: CallId,
        payload: Bytes,
        samples: u32,
    },
    Message {
        id: CallId,
        text: String,
    },
    /// Take a call slot for a WebSocket voice session (one limit with WebRTC calls).
    Reserve {
        caller: Caller,
        reply: oneshot::Sender<Result<(), CreateError>>,
    },
    /// Give back a slot taken with `Reserve`.
    Release {
        user_id: String,
    },
    /// Node shutdown: hang up every call (each closes with `CloseReason::Shutdown`).
    HangUpAll {
        reply: oneshot::Sender<usize>,
    },
    /// How much per-call state the endpoint holds (leak checks).
    Census {
        reply: oneshot::Sender<MediaCensus>,
    },
}

/// How much per-call state a node's media endpoint holds right now: every table should be
/// empty once every call has ended (what the leak checks assert).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCensus {
    /// The call registry's own tables.
    pub registry: RegistryTables,
    /// Calls whose channels (audio, messages, state) the endpoint still feeds.
    pub call_channels: usize,
}
