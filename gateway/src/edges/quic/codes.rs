//! Application error codes on the wire: QUIC `CONNECTION_CLOSE`, `RESET_STREAM` and
//! `STOP_SENDING` codes on raw QUIC, WebTransport session-close and stream error codes on
//! WebTransport (both 32-bit there). The same numbers mean the same thing on both.
//!
//! They complement the `error` event, which is what a client should act on: a stream the
//! server gives up on gets an `error` event first whenever the stream can still carry one.

/// An application error code, as sent in a close, reset or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppCode(pub u32);

impl AppCode {
    /// Normal end: the connection closed cleanly, or the server stopped reading a stream
    /// whose request is answered.
    pub const NO_ERROR: Self = Self(0x0);
    /// The client broke the stream protocol (a frame that does not decode, an unexpected
    /// frame type or event, a stream that ended before its request); the `error` event says
    /// what.
    pub const BAD_REQUEST: Self = Self(0x1);
    /// The stream's `auth` frame was missing or its token was refused.
    pub const UNAUTHORIZED: Self = Self(0x2);
    /// A frame declared a payload over the protocol's limit (131,072 bytes).
    pub const PAYLOAD_TOO_LARGE: Self = Self(0x3);
    /// The stream did not deliver its `auth` and `send_message` frames in time
    /// (`gateway.quic.request_start_timeout_secs`); also closes a connection that started no
    /// authenticated request in time (`gateway.quic.auth_timeout_secs`).
    pub const TIMEOUT: Self = Self(0x4);
    /// The server is shutting down: sent on connections still open at the drain deadline.
    pub const SERVER_DRAINING: Self = Self(0x5);
    /// An unexpected server fault.
    pub const INTERNAL: Self = Self(0x6);

    /// The code as a QUIC variable-length integer.
    pub fn varint(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self.0)
    }

    /// The code's name as documented in `docs/protocol.md`, or `None` for a code this build
    /// does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NO_ERROR => "no_error",
            Self::BAD_REQUEST => "bad_request",
            Self::UNAUTHORIZED => "unauthorized",
            Self::PAYLOAD_TOO_LARGE => "payload_too_large",
            Self::TIMEOUT => "timeout",
            Self::SERVER_DRAINING => "server_draining",
            Self::INTERNAL => "internal",
            _ => return None,
        })
    }
}

impl std::fmt::Display for AppCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#x})", self.0),
            None => write!(f, "{:#x}", self.0),
        }
    }
}
