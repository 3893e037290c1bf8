//! Connection-level events: hello, heartbeat, errors and the graceful-shutdown notice.

use serde::{Deserialize, Serialize};

/// `hello` (server -> client): the first event on every connection, announcing what the
/// server speaks and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the server.
    pub protocol_version: u16,
    /// Id of this connection, for support requests and logs.
    pub connection_id: String,
    /// Largest JSON event the server accepts, bytes.
    pub max_event_bytes: u32,
    /// Largest binary frame payload the server accepts, bytes.
    pub max_frame_payload: u32,
    /// How often the client should `ping` when otherwise idle, ms; the server closes
    /// connections silent for three intervals.
    pub heartbeat_interval_ms: u32,
}

/// Longest access token an `auth` event may carry, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// `auth` (client -> server): a fresh access token. The first frame of every QUIC request
/// stream; on a voice session (WebRTC `events` channel or WebSocket) it replaces the token
/// the session renews its voice quota with, before the old one expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// The access token (the control plane's JWT): 1-8,192 visible ASCII bytes.
    pub token: String,
}

impl std::fmt::Debug for Auth {
    // A token is a credential: it never appears in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_bytes", &self.token.len())
            .finish()
    }
}

/// `ping` / `pong` (either direction): heartbeat. The receiver of a `ping` answers with a
/// `pong` carrying the same `nonce`, which also measures round-trip time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// Sender-chosen number echoed in the `pong`.
    pub nonce: u64,
}

/// Stable error codes. The string forms never change meaning within a protocol version;
/// clients branch on them, never on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The client sent something this protocol does not allow (bad frame, unknown field value).
    BadRequest,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// Missing, expired or invalid access token.
    Unauthorized,
    /// Authenticated, but not allowed this conversation or feature.
    Forbidden,
    /// The conversation, companion or session does not exist.
    NotFound,
    /// A `requestId` already in use on this connection, or a second voice session.
    Conflict,
    /// Too many requests; wait `retryAfterMs`.
    RateLimited,
    /// The subscription's daily quota is used up.
    QuotaExceeded,
    /// A message or frame over the size limits.
    PayloadTooLarge,
    /// Moderation blocked the user's message or the reply.
    ContentBlocked,
    /// Speech recognition failed on every configured provider.
    SttFailed,
    /// The language model failed on every configured provider.
    LlmFailed,
    /// Speech synthesis failed on every configured provider.
    TtsFailed,
    /// A provider or the client took too long.
    Timeout,
    /// The server is shutting down and takes no new work (see `goodbye`).
    ServerDraining,
    /// An unexpected server fault.
    Internal,
    /// A code from a newer server that this build does not know; treat as `internal`.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The stable string form, as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ContentBlocked => "content_blocked",
            Self::SttFailed => "stt_failed",
            Self::LlmFailed => "llm_failed",
            Self::TtsFailed => "tts_failed",
            Self::Timeout => "timeout",
            Self::ServerDraining => "server_draining",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [Self; 17] = [
        Self::BadRequest,
        Self::UnsupportedVersion,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::RateLimited,
        Self::QuotaExceeded,
        Self::PayloadTooLarge,
        Self::ContentBlocked,
        Self::SttFailed,
        Self::LlmFailed,
        Self::TtsFailed,
        Self::Timeout,
        Self::ServerDraining,
        Self::Internal,
        Self::Unknown,
    ];
}

/// `error` (server -> client): something failed. Chat and voice share this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation (English, may change between releases).
    pub message: String,
    /// Whether repeating the same request later can succeed.
    pub retryable: bool,
    /// When `retryable`, how long to wait first, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The `requestId` of the client message the error is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The voice session the error is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Why the server says goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GoodbyeReason {
    /// The node is draining for a deploy or scale-down; reconnect to any node.
    Draining,
    /// The node is restarting; reconnect after the hint.
    Restart,
    /// The connection was idle past the heartbeat limit.
    IdleTimeout,
    /// The same user opened a newer connection that replaces this one.
    Replaced,
}

/// `goodbye` (server -> client): the server will close this connection. Live replies and
/// calls continue until `deadlineMs`; the client should open a new connection now and move
/// new work to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Goodbye {
    /// Why.
    pub reason: GoodbyeReason,
    /// Milliseconds from now until the server closes the connection regardless.
    pub deadline_ms: u64,
    /// Suggested wait before reconnecting, ms (spreads a reconnect storm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_after_ms: Option<u64>,
}
