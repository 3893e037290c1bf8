//! The `[gateway.quic]` configuration section.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The `[gateway.quic]` section: chat over raw QUIC (ALPN `companion/1`) and WebTransport
/// (HTTP/3, ALPN `h3`) on one UDP socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// Serve QUIC and WebTransport. Default: `true` (the hosting process logs the bound
    /// address and where to fetch the certificate hash; `/readyz` reports the endpoint as
    /// `quic`).
    pub enabled: bool,

    /// UDP address of the QUIC endpoint. Port 0 picks a free port at start-up (the log line
    /// and `GET /v1/webtransport/cert-hash` say which); production nodes use a fixed port
    /// opened in the firewall, e.g. `0.0.0.0:443`. Default: `127.0.0.1:0`.
    pub listen: SocketAddr,

    /// PEM certificate chain (leaf first). Empty means a self-signed ECDSA P-256 certificate
    /// generated at start-up, valid 13 days and replaced daily, for development: browsers
    /// accept it only through `serverCertificateHashes`. Set together with `key_path`.
    /// Default: empty.
    pub cert_path: String,

    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of `cert_path`. Default: empty.
    pub key_path: String,

    /// Also accept WebTransport sessions (ALPN `h3`) at `webtransport_path`. Default: `true`.
    pub webtransport: bool,

    /// Path of the WebTransport session URL (`https://host:port/v1/chat/wt`); other paths
    /// get 404. Default: `/v1/chat/wt`.
    pub webtransport_path: String,

    /// QUIC connections this node holds at once; more are refused during the handshake.
    /// Default: `10000`.
    pub max_connections: usize,

    /// Connections one client address (IPv6: one /64) may hold at once, handshakes included;
    /// more are refused during the handshake. `0`: no limit. Default: `64`.
    pub max_connections_per_ip: usize,

    /// Request streams one connection may have open at once (QUIC flow control: a client
    /// opening more waits until one ends). Default: `16`.
    pub max_streams_per_connection: u32,

    /// Seconds without any packet after which a connection is closed (QUIC idle timeout,
    /// also bounding the handshake). Default: `30`.
    pub idle_timeout_secs: u64,

    /// Seconds between keep-alive packets the server sends on an otherwise silent connection,
    /// keeping NAT bindings and the idle timer alive; `0` sends none. Default: `10`.
    pub keep_alive_secs: u64,

    /// Seconds a new stream gets to deliver its `auth` and `send_message` frames. Default: `10`.
    pub request_start_timeout_secs: u64,

    /// Seconds a new connection gets to start its first authenticated request (a stream whose
    /// `auth` and `send_message` were accepted); one that has not is closed with `timeout`.
    /// The server's keep-alives would otherwise hold a connection that never opens a stream
    /// forever. Default: `30` (the idle timeout).
    pub auth_timeout_secs: u64,

    /// Reply events buffered per request between the chat service and the stream; a client
    /// that reads slower than the reply is written holds the reply back (QUIC flow control),
    /// it does not grow server memory. Default: `64`.
    pub event_queue: usize,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert_path: String::new(),
            key_path: String::new(),
            webtransport: true,
            webtransport_path: "/v1/chat/wt".to_owned(),
            max_connections: 10_000,
            max_connections_per_ip: 64,
            max_streams_per_connection: 16,
            idle_timeout_secs: 30,
            keep_alive_secs: 10,
            request_start_timeout_secs: 10,
            auth_timeout_secs: 30,
            event_queue: 64,
        }
    }
}

impl QuicConfig {
    /// Checks values serde cannot: the offending key (relative to `[gateway]`) and the form
    /// it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.cert_path.is_empty() != self.key_path.is_empty() {
            return Err((
                "quic.cert_path",
                "cert_path and key_path both set (PEM files) or both empty (self-signed)",
            ));
        }
        if !self.webtransport_path.starts_with('/') {
            return Err(("quic.webtransport_path", "a path starting with `/`"));
        }
        if self.max_connections == 0 {
            return Err(("quic.max_connections", "at least 1"));
        }
        if !(1..=1024).contains(&self.max_streams_per_connection) {
            return Err(("quic.max_streams_per_connection", "1 to 1024"));
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err(("quic.idle_timeout_secs", "1 to 3600 seconds"));
        }
        if self.keep_alive_secs >= self.idle_timeout_secs {
            return Err((
                "quic.keep_alive_secs",
                "0 (off) or less than quic.idle_timeout_secs",
            ));
        }
        if self.request_start_timeout_secs == 0 {
            return Err(("quic.request_start_timeout_secs", "at least 1"));
        }
        if !(1..=3600).contains(&self.auth_timeout_secs) {
            return Err(("quic.auth_timeout_secs", "1 to 3600 seconds"));
        }
        if self.event_queue == 0 {
            return Err(("quic.event_queue", "at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(QuicConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let config = QuicConfig {
            cert_path: "cert.pem".to_owned(),
            ..QuicConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "quic.cert_path");
    }

    #[test]
    fn keep_alive_must_beat_the_idle_timeout() {
        let config = QuicConfig {
            keep_alive_secs: 30,
            ..QuicConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "quic.keep_alive_secs");
    }
}
