use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use serde::{Deserialize, Serialize};

pub use self::{chat::ChatConfig, openai::OpenAiConfig, quic::QuicConfig};

pub(crate) mod chat;
pub(crate) mod openai;
pub(crate) mod quic;

/// The `[gateway]` section of the service configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL of the control plane this gateway verifies tokens against and reports usage to,
    /// e.g. `https://control.example.com`. Empty means the control plane runs in this same
    /// process (`server.mode = "all"`). Default: empty.
    pub control_plane_url: String,

    /// This gateway's credential for the control plane's data-plane routes (recording chat
    /// replies, reserving and settling quota), sent as `X-Service-Token` next to the user's
    /// bearer token; it must be one of the control plane's `service_tokens`. Required when
    /// `control_plane_url` points at another process; `companion --mode all` generates one.
    /// Set it from the environment (`COMPANION__GATEWAY__CONTROL_PLANE_SERVICE_TOKEN`).
    /// Default: empty.
    pub control_plane_service_token: protocol::Secret,

    /// The `iss` claim access tokens must carry (the control plane's `issuer`).
    /// Default: `companion-control-plane`.
    pub token_issuer: String,

    /// The `aud` claim access tokens must carry (the control plane's `audience`).
    /// Default: `companion`.
    pub token_audience: String,

    /// Seconds between reloads of the control plane's key set; a token signed by an unknown
    /// key triggers a reload sooner. Default: `300`.
    pub jwks_refresh_secs: u64,

    /// Calls one caller may hold at once, by the `tier` claim of their token; tiers not
    /// listed get one. Default: `{ free = 1, plus = 2, pro = 3 }`.
    pub calls_per_tier: BTreeMap<String, u32>,

    /// UDP addresses the WebRTC media sockets bind to; one socket per entry serves every call.
    /// Each socket is advertised to callers as an ICE host candidate at its bound address (or
    /// at `public_ip`, when set). Port 0 picks a free port at start-up; production nodes use a
    /// fixed port opened in the firewall. A wildcard address (`0.0.0.0:…`) needs `public_ip`,
    /// since a caller cannot be told to send to "any" address.
    /// Default: `["127.0.0.1:0"]` (callers on this machine only).
    pub udp_listen: Vec<SocketAddr>,

    /// Kernel receive and send buffer asked for each media socket, in bytes. One socket
    /// carries every call (50 pps each way per call), so the Linux default (~208 KiB) filled
    /// and dropped caller packets whenever the endpoint task was briefly not scheduled: 8,417
    /// kernel drops in a 50-call run. The kernel caps the value at `net.core.rmem_max` /
    /// `wmem_max`; start-up logs a warning when it got less; `0` keeps the kernel default.
    /// Default: `4194304` (4 MiB).
    pub udp_socket_buffer_bytes: usize,

    /// The address callers reach this node at when it sits behind a 1:1 NAT (cloud VMs with an
    /// elastic IP): advertised as the host candidate instead of the bound address, with the
    /// same port. Default: unset (advertise the bound address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,

    /// STUN/TURN servers handed to callers (in `Link` headers of the call answer and at
    /// `GET /v1/ice-servers`). Default: none.
    pub ice_servers: Vec<IceServer>,

    /// Accept development bearer tokens of the form `dev:<user id>` (tier `dev`, at most
    /// `dev_max_concurrent_calls` calls) when no token verifier is installed. Never enable
    /// this on a node reachable from the internet: anyone can claim any user id.
    /// Default: `false` (no verifier installed means every call is refused with 401).
    pub dev_tokens: bool,

    /// Concurrent calls one development user may hold when `dev_tokens` is on. Default: `2`.
    pub dev_max_concurrent_calls: u32,

    /// Largest accepted signaling body (SDP offer or trickle-ICE fragment) in bytes; larger
    /// bodies get 413. Browsers' audio + data channel offers are 3–7 KiB. Default: `32768`.
    pub max_sdp_bytes: usize,

    /// Calls this node holds at once across all callers, WebSocket voice sessions included;
    /// more get 503 (a WebSocket `start_session`: `rate_limited`). Default: `2000`.
    pub max_calls: usize,

    /// Seconds a new call may take to complete ICE + DTLS before it is dropped. Default: `15`.
    pub connect_timeout_secs: u64,

    /// Seconds a connected call may stay ICE-disconnected (no consent from the caller) before
    /// it is hung up. Default: `10`.
    pub disconnect_timeout_secs: u64,

    /// Inbound Opus packets buffered per call for the voice session (50 = 1 s of 20 ms
    /// frames); when the session falls behind, newer packets are dropped and counted.
    /// Default: `50`.
    pub inbound_audio_queue: usize,

    /// Data-channel text messages buffered per call in each direction. Default: `64`.
    pub event_queue: usize,

    /// Largest data-channel text message accepted from or sent to a caller, in bytes; larger
    /// inbound messages are dropped. Default: `16384`.
    pub max_event_bytes: usize,

    /// Seconds live calls may go on after the node is told to stop (SIGTERM): new calls get
    /// 503 `draining` and `/readyz` fails at once; callers get `goodbye` with this deadline,
    /// and at the deadline (or when the last call ends, if sooner) `session_ended` and a
    /// hang-up. `0` ends every call at once. Default: `30`.
    pub drain_deadline_secs: u64,

    /// Text chat (`/v1/chat/ws`): origins, heartbeats, limits. See [`ChatConfig`].
    pub chat: ChatConfig,

    /// OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/audio/*`): body limits.
    /// See [`OpenAiConfig`].
    pub openai: OpenAiConfig,

    /// Chat over QUIC and WebTransport (`gateway.quic.*`): address, certificate, limits.
    /// See [`QuicConfig`].
    pub quic: QuicConfig,
}

/// `gateway.chat` keys as `chat.<key>` (the section's validation names keys relative to it).
fn chat_key(key: &'static str) -> &'static str {
    match key {
        "heartbeat_interval_secs" => "chat.heartbeat_interval_secs",
        "max_message_bytes" => "chat.max_message_bytes",
        "max_concurrent_requests" => "chat.max_concurrent_requests",
        "outbound_queue" => "chat.outbound_queue",
        "slow_consumer_timeout_ms" => "chat.slow_consumer_timeout_ms",
        "history_messages" => "chat.history_messages",
        "control_plane_timeout_secs" => "chat.control_plane_timeout_secs",
        "allowed_origins" => "chat.allowed_origins",
        _ => "chat",
    }
}

/// One STUN or TURN server, in the shape of the browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
    /// Fixed TURN user name. Ignored when `secret` is set. Default: empty.
    #[serde(default)]
    pub username: String,
    /// Fixed TURN password. Ignored when `secret` is set. Default: empty.
    #[serde(default)]
    pub credential: protocol::Secret,
    /// Shared secret of a TURN server using time-limited credentials (coturn
    /// `use-auth-secret` / `static-auth-secret`): each caller gets a user name
    /// `<expiry unix time>:<user id>` and the password `base64(HMAC-SHA1(secret, user name))`.
    /// Default: empty (use `username` / `credential` as given).
    #[serde(default)]
    pub secret: protocol::Secret,
    /// Lifetime of credentials minted from `secret`, in seconds. The browser refreshes its
    /// relay allocation with the same credential, so it must outlive the longest call; a
    /// leaked one is good for no longer than this. Default: `14400` (4 hours).
    #[serde(default = "default_credential_ttl")]
    pub credential_ttl_secs: u64,
}

fn default_credential_ttl() -> u64 {
    4 * 3600
}

impl Default for Config {
    fn default() -> Self {
        Self {
            control_plane_url: String::new(),
            control_plane_service_token: protocol::Secret::default(),
            token_issuer: "companion-control-plane".to_owned(),
            token_audience: "companion".to_owned(),
            jwks_refresh_secs: 300,
            calls_per_tier: [("free", 1), ("plus", 2), ("pro", 3)]
                .into_iter()
                .map(|(tier, calls)| (tier.to_owned(), calls))
                .collect(),
            udp_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_socket_buffer_bytes: 4 * 1024 * 1024,
            public_ip: None,
            ice_servers: Vec::new(),
            dev_tokens: false,
            dev_max_concurrent_calls: 2,
            max_sdp_bytes: 32 * 1024,
            max_calls: 2000,
            connect_timeout_secs: 15,
            disconnect_timeout_secs: 10,
            inbound_audio_queue: 50,
            event_queue: 64,
            max_event_bytes: 16 * 1024,
            drain_deadline_secs: 30,
            chat: ChatConfig::default(),
            openai: OpenAiConfig::default(),
            quic: QuicConfig::default(),
        }
    }
}

impl Config {
    /// Checks values serde cannot: returns the offending key (relative to this section) and
    /// the form it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let url = &self.control_plane_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("control_plane_url", "empty, or an http:// or https:// URL"));
        }
        if self.jwks_refresh_secs < 5 {
            return Err(("jwks_refresh_secs", "at least 5 seconds"));
        }
        if self.udp_listen.is_empty() {
            return Err(("udp_listen", "at least one UDP socket address"));
        }
        if let Some(ip) = self.public_ip
            && ip.is_unspecified()
        {
            return Err(("public_ip", "a concrete IP address callers can reach"));
        }
        if self.public_ip.is_none() && self.udp_listen.iter().any(|a| a.ip().is_unspecified()) {
            return Err((
                "udp_listen",
                "concrete IP addresses, or set gateway.public_ip to advertise a wildcard bind",
            ));
        }
        for server in &self.ice_servers {
            let known = |u: &String| {
                u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")
            };
            if server.urls.is_empty() || !server.urls.iter().all(known) {
                return Err(("ice_servers.urls", "stun:, turn: or turns: URLs"));
            }
        }
        if self.max_sdp_bytes < 1024 {
            return Err(("max_sdp_bytes", "at least 1024"));
        }
        if self.max_calls == 0 {
            return Err(("max_calls", "at least 1"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(("connect_timeout_secs", "at least 1"));
        }
        if self.inbound_audio_queue == 0 || self.event_queue == 0 {
            return Err(("inbound_audio_queue", "queue sizes of at least 1"));
        }
        if self.drain_deadline_secs > 3600 {
            return Err(("drain_deadline_secs", "0 to 3600 seconds"));
        }
        self.chat
            .validate()
            .map_err(|(key, expected)| (chat_key(key), expected))?;
        self.quic.validate()?;
        self.openai.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_refuse_development_tokens() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        assert!(!config.dev_tokens);
    }

    #[test]
    fn a_wildcard_bind_needs_a_public_address_to_advertise() {
        let mut config = Config {
            udp_listen: vec!["0.0.0.0:3479".parse().unwrap()],
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "udp_listen");
        config.public_ip = Some("203.0.113.10".parse().unwrap());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn ice_servers_must_be_stun_or_turn_urls() {
        let config = Config {
            ice_servers: vec![IceServer {
                urls: vec!["https://turn.example".to_owned()],
                username: String::new(),
                credential: Default::default(),
                secret: Default::default(),
                credential_ttl_secs: 60,
            }],
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "ice_servers.urls");
    }
}
