//! The `[gateway.chat]` configuration section.

use serde::{Deserialize, Serialize};

/// Settings of text chat on this gateway (WebSocket `/v1/chat/ws`; the QUIC transport shares
/// the request limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Serve `/v1/chat/ws`. Default: `true`.
    pub enabled: bool,

    /// Browser origins allowed to open a chat WebSocket, exactly as the `Origin` header spells
    /// them (`https://app.example.com`), or `"*"` for any. A connection without an `Origin`
    /// header (native clients) is always allowed: the check stops other web sites from using a
    /// visitor's browser, which always sends one. Same-origin pages (the `Origin` host equals the
    /// request's `Host`) and `localhost` / `127.0.0.1` / `[::1]` pages are always allowed.
    /// The QUIC endpoint applies the same list to WebTransport sessions (a foreign page gets
    /// 403), counting a page on the same host name as same-origin whatever its port.
    /// Default: empty (same origin and localhost only).
    pub allowed_origins: Vec<String>,

    /// Seconds between the server's WebSocket pings. A connection from which nothing (pong,
    /// event) arrives for three intervals is closed with code 4000. Default: `15`.
    pub heartbeat_interval_secs: u64,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection with
    /// code 1009. Default: `131072` (`protocol::MAX_EVENT_BYTES`).
    pub max_message_bytes: usize,

    /// Replies one connection may have running at once; a further `send_message` gets an
    /// `error` event (`rate_limited`). Default: `4`.
    pub max_concurrent_requests: usize,

    /// Events queued per connection for a client that reads slowly. When the queue is full the
    /// replies wait (no event is dropped and memory stays bounded). A voice session on the
    /// connection gets a second queue of this size, whose audio and viseme frames are dropped
    /// when it is full (its events wait). Default: `256`.
    pub outbound_queue: usize,

    /// Milliseconds one write to a client may stay blocked (its TCP window closed, the queue
    /// full) before the connection is closed with code 4008 (slow consumer). Default: `10000`.
    pub slow_consumer_timeout_ms: u64,

    /// Messages of the conversation (the new one included) the control plane returns as the
    /// model's context. Default: `20`.
    pub history_messages: u32,

    /// Upper bound on generated tokens per reply; `0` leaves the provider's default.
    /// Default: `0`.
    pub max_reply_tokens: u32,

    /// Seconds a connection may stay open once its access token has expired (or been revoked)
    /// without sending a fresh one in an `auth` event; then it is closed with code 4001. The
    /// token is checked at every heartbeat. A connection running a voice session is left to
    /// the session's own quota renewals. Default: `30`.
    pub auth_timeout_secs: u64,

    /// Seconds a request to the control plane (opening a turn, recording a reply) may take.
    /// Default: `10`.
    pub control_plane_timeout_secs: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_origins: Vec::new(),
            heartbeat_interval_secs: 15,
            max_message_bytes: protocol::MAX_EVENT_BYTES,
            max_concurrent_requests: 4,
            outbound_queue: 256,
            slow_consumer_timeout_ms: 10_000,
            history_messages: 20,
            max_reply_tokens: 0,
            auth_timeout_secs: 30,
            control_plane_timeout_secs: 10,
        }
    }
}

impl ChatConfig {
    /// Checks values serde cannot: returns the offending key (relative to `gateway.chat`) and
    /// the form it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.heartbeat_interval_secs == 0 {
            return Err(("heartbeat_interval_secs", "at least 1"));
        }
        if !(1024..=protocol::MAX_EVENT_BYTES).contains(&self.max_message_bytes) {
            return Err(("max_message_bytes", "1024 to 131072 bytes"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(("max_concurrent_requests", "at least 1"));
        }
        if self.outbound_queue < 8 {
            return Err(("outbound_queue", "at least 8 events"));
        }
        if self.slow_consumer_timeout_ms < 100 {
            return Err(("slow_consumer_timeout_ms", "at least 100"));
        }
        if !(1..=100).contains(&self.history_messages) {
            return Err(("history_messages", "1 to 100"));
        }
        if !(1..=3600).contains(&self.auth_timeout_secs) {
            return Err(("auth_timeout_secs", "1 to 3600 seconds"));
        }
        if self.control_plane_timeout_secs == 0 {
            return Err(("control_plane_timeout_secs", "at least 1"));
        }
        if self
            .allowed_origins
            .iter()
            .any(|o| o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err((
                "allowed_origins",
                "\"*\" or origins like https://app.example.com",
            ));
        }
        Ok(())
    }
}
