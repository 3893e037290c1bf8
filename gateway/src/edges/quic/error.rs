use std::net::SocketAddr;

/// Why the QUIC endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// `gateway.quic.listen` could not be bound.
    #[error("binding the QUIC UDP socket gateway.quic.listen = {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A configured certificate or key file could not be read.
    #[error("reading gateway.quic certificate file {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Generating the development certificate failed.
    #[error("generating the self-signed QUIC certificate: {0}")]
    SelfSigned(String),
    /// rustls refused the certificate, key or settings.
    #[error("building the QUIC TLS configuration: {0}")]
    Tls(String),
}
