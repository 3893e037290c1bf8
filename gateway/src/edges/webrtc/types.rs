//! Values that cross between the call registry, its shell and the voice session.

use std::{fmt, time::Instant};

use bytes::Bytes;

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
