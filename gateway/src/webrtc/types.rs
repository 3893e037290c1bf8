//! Values that cross between the call registry, its shell and the voice session.

use std::{fmt, str::FromStr, time::Instant};

use bytes::Bytes;

/// Identifies one call on this node: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u128);

impl CallId {
    /// A fresh, unguessable id (it appears in URLs other callers might probe).
    pub(crate) fn random() -> Self {
        let mut b = [0u8; 16];
        // The OS random source only fails on exotic platforms at boot; a clock-derived id
        // is still unique within this process then, which is all that correctness needs.
        if getrandom::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            b = t.to_le_bytes();
        }
        Self(u128::from_le_bytes(b))
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({self})")
    }
}

impl FromStr for CallId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(());
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| ())
    }
}

/// One Opus packet from the caller's microphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOpus {
    /// The Opus payload (one RTP packet's worth, usually 20 ms). Shares str0m's buffer.
    pub payload: Bytes,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp (48 kHz clock).
    pub rtp_timestamp: u32,
    /// When the datagram carrying it arrived.
    pub arrival: Instant,
}

/// How a call is doing, as seen by its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// ICE and DTLS are still being negotiated.
    Connecting,
    /// Media can flow.
    Connected,
    /// The call is over; nothing more will be received.
    Closed(CloseReason),
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The caller hung up (`DELETE`, or DTLS close from the browser).
    CallerHungUp,
    /// The server side (the voice session or the node) hung up.
    ServerHungUp,
    /// ICE + DTLS did not complete within `gateway.connect_timeout_secs`.
    ConnectTimeout,
    /// The caller stopped answering ICE consent checks for `gateway.disconnect_timeout_secs`.
    Disconnected,
    /// The transport failed (for example the DTLS certificate did not match the SDP
    /// fingerprint); the text says how.
    Failed(String),
    /// The gateway is shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CallerHungUp => f.write_str("the caller hung up"),
            Self::ServerHungUp => f.write_str("the server hung up"),
            Self::ConnectTimeout => f.write_str("the call did not connect in time"),
            Self::Disconnected => f.write_str("the caller stopped responding"),
            Self::Failed(why) => write!(f, "transport failure: {why}"),
            Self::Shutdown => f.write_str("the gateway is shutting down"),
        }
    }
}

/// Something that happened on a call, produced by the registry for its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// ICE + DTLS (+ SRTP keys) are up.
    Connected,
    /// An Opus packet arrived.
    Audio(InboundOpus),
    /// The `events` data channel opened.
    EventsOpen,
    /// The `events` data channel closed (the call may go on without it).
    EventsClosed,
    /// A text message arrived on the `events` data channel.
    Text(String),
    /// The call is gone from the registry.
    Closed(CloseReason),
}

/// Where the node is in its shutdown, as every call's handler sees it
/// ([`CallSender::drain_notices`](crate::CallSender::drain_notices)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainPhase {
    /// Taking calls as usual.
    Serving,
    /// No new calls; live calls go on until `deadline`. A handler tells its caller now
    /// (`goodbye`), so the client can move to another node before being cut off.
    Draining {
        /// When the node closes the remaining calls.
        deadline: Instant,
    },
    /// The deadline has passed: a handler ends its session (`session_ended`) and hangs up.
    /// Calls still open a moment later are hung up by the node.
    Closing,
}
