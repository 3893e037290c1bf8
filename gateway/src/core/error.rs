use std::net::SocketAddr;

/// What can go wrong running a gateway node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `gateway.udp_listen` socket could not be bound.
    #[error("binding the WebRTC UDP socket gateway.udp_listen = {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The media endpoint stopped (its task ended).
    #[error("the WebRTC media endpoint has stopped")]
    EndpointStopped,
}
