//! The UDP endpoint: binds, accepts connections, tells raw QUIC from WebTransport by ALPN,
//! rotates the development certificate, and drains on shutdown.

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use protocol::{MAX_FRAME_LEN, QUIC_ALPN};
use quinn::{IdleTimeout, TransportConfig, VarInt, crypto::rustls::QuicServerConfig};
use tokio::{sync::watch, time::Instant};
use web_transport_quinn::{Session, http::StatusCode};

use super::{
    QuicInfo, ReplyService,
    codes::AppCode,
    connection,
    error::QuicError,
    identity::{CertHash, Identity, SELF_SIGNED_ROTATION},
    stream::StreamContext,
};
use crate::core::{
    auth::CallerVerifier,
    config::QuicConfig,
    origin::webtransport_origin_allowed,
    per_ip::{ConnectionSlot, PerIp},
};

/// ALPN of WebTransport (HTTP/3).
const H3_ALPN: &[u8] = b"h3";

/// How long a refused WebTransport CONNECT keeps its connection for the answer to arrive (a
/// client closes as soon as it reads it).
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Unidirectional streams a client may open: HTTP/3 needs three (control, QPACK encoder and
/// decoder); raw QUIC clients need none (theirs are refused).
const CLIENT_UNI_STREAMS: u32 = 8;

/// A running QUIC + WebTransport endpoint. Cheap to clone; the endpoint closes when the last
/// clone is dropped.
#[derive(Clone)]
pub struct QuicEndpoint {
    shared: Arc<Shared>,
    _accept: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for QuicEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicEndpoint")
            .field("local_addr", &self.shared.local_addr)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

struct Shared {
    endpoint: quinn::Endpoint,
    config: QuicConfig,
    local_addr: SocketAddr,
    alpn: Vec<&'static [u8]>,
    transport: Arc<TransportConfig>,
    /// Shared with the [`QuicInfo`] the HTTP side reads.
    cert: Arc<RwLock<CertHash>>,
    drain: watch::Sender<Option<Instant>>,
    /// Connections being served (handshake done), for the drain to wait on.
    live: watch::Sender<usize>,
    next_connection: AtomicU64,
    ctx: Arc<StreamContext>,
    /// Browser origins allowed besides same-host and localhost pages
    /// (`gateway.chat.allowed_origins`, the WebSocket chat's list).
    allowed_origins: Vec<String>,
    /// Shared with the [`QuicInfo`], for `/readyz`.
    status: Arc<Status>,
    /// Connections per client address (`gateway.quic.max_connections_per_ip`).
    per_ip: Arc<PerIp>,
}

/// Whether the endpoint takes new connections, as `/readyz` reports it.
#[derive(Debug, Default)]
pub(crate) struct Status {
    draining: AtomicBool,
    closed: AtomicBool,
}

impl Status {
    /// `Ok` while bound and accepting; why not once drained or closed.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.closed.load(Relaxed) {
            Err("the QUIC endpoint is closed".to_owned())
        } else if self.draining.load(Relaxed) {
            Err("the QUIC endpoint is draining for shutdown".to_owned())
        } else {
            Ok(())
        }
    }
}

impl QuicEndpoint {
    /// Binds `config.listen` and starts accepting. Every request stream is authenticated
    /// with `verifier` and answered by `service`. WebTransport sessions from browser pages
    /// are refused (HTTP 403) unless the page is same-host, `localhost`, or in
    /// `allowed_origins` (the WebSocket chat's `gateway.chat.allowed_origins`).
    pub async fn start(
        config: &QuicConfig,
        verifier: Arc<dyn CallerVerifier>,
        service: Arc<dyn ReplyService>,
        allowed_origins: Vec<String>,
    ) -> Result<Self, QuicError> {
        // This module passes its provider explicitly; the process default is for libraries
        // that ask rustls for one (ambiguous when two backends are compiled in).
        super::install_crypto_provider();
        let identity = if config.cert_path.is_empty() {
            Identity::self_signed(time::OffsetDateTime::now_utc())?
        } else {
            Identity::load(&config.cert_path, &config.key_path)?
        };
        let mut alpn: Vec<&'static [u8]> = vec![QUIC_ALPN];
        if config.webtransport {
            alpn.push(H3_ALPN);
        }
        let transport = Arc::new(transport(config));
        let server_config = server_config(&identity, &alpn, transport.clone())?;
        let bind = |source| QuicError::Bind {
            addr: config.listen,
            source,
        };
        let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(bind)?;
        let local_addr = endpoint.local_addr().map_err(bind)?;
        let shared = Arc::new(Shared {
            endpoint,
            config: config.clone(),
            local_addr,
            alpn,
            transport,
            cert: Arc::new(RwLock::new(identity.hash)),
            drain: watch::Sender::new(None),
            live: watch::Sender::new(0),
            next_connection: AtomicU64::new(1),
            ctx: Arc::new(StreamContext {
                verifier,
                service,
                start_timeout: Duration::from_secs(config.request_start_timeout_secs),
                event_queue: config.event_queue,
            }),
            allowed_origins,
            status: Arc::default(),
            per_ip: PerIp::new(config.max_connections_per_ip, Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(shared.clone()));
        let closer = CloseOnDrop {
            accept,
            endpoint: shared.endpoint.clone(),
            status: shared.status.clone(),
        };
        Ok(Self {
            shared,
            _accept: Arc::new(closer),
        })
    }

    /// What `GET /v1/webtransport/cert-hash` reports.
    pub(crate) fn info(&self) -> QuicInfo {
        QuicInfo {
            local_addr: self.shared.local_addr,
            webtransport_path: self.webtransport_path().map(str::to_owned),
            cert: self.shared.cert.clone(),
            status: self.shared.status.clone(),
        }
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The hash of the certificate new connections get.
    pub fn cert_hash(&self) -> CertHash {
        self.shared
            .cert
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configured WebTransport path, or `None` when WebTransport is off.
    pub fn webtransport_path(&self) -> Option<&str> {
        let config = &self.shared.config;
        config
            .webtransport
            .then_some(config.webtransport_path.as_str())
    }

    /// Connections open now (including ones still in their handshake).
    pub fn connections(&self) -> usize {
        self.shared.endpoint.open_connections()
    }

    /// Graceful shutdown: refuses new connections and streams, sends `goodbye` on every
    /// connection's control stream, lets live replies run for up to `grace`, closes each
    /// connection once it has none (or at the deadline, with `server_draining`), then closes
    /// the endpoint. Returns how many connections were still open when the drain began.
    pub async fn drain(&self, grace: Duration) -> usize {
        let open = *self.shared.live.borrow();
        self.shared.status.draining.store(true, Relaxed);
        let deadline = Instant::now() + grace;
        self.shared.drain.send_replace(Some(deadline));
        let mut live = self.shared.live.subscribe();
        // Connections close themselves by the deadline; the extra second covers the close.
        let all_closed = live.wait_for(|n| *n == 0);
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), all_closed).await;
        let endpoint = &self.shared.endpoint;
        endpoint.close(AppCode::SERVER_DRAINING.varint(), b"server stopped");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        open
    }
}

/// Builds the transport limits from the configuration.
fn transport(config: &QuicConfig) -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(VarInt::from_u32(config.max_streams_per_connection));
    transport.max_concurrent_uni_streams(VarInt::from_u32(CLIENT_UNI_STREAMS));
    // validate() keeps the timeout within 1..=3600 s, far inside QUIC's range.
    let idle = Duration::from_secs(config.idle_timeout_secs);
    transport.max_idle_timeout(IdleTimeout::try_from(idle).ok());
    transport.keep_alive_interval(
        (config.keep_alive_secs > 0).then(|| Duration::from_secs(config.keep_alive_secs)),
    );
    // Two whole frames in flight per stream: enough to stream, and it bounds what a client
    // can make the server buffer to streams x 256 KiB per connection.
    let per_stream = 2 * MAX_FRAME_LEN as u64;
    let streams = u64::from(config.max_streams_per_connection + CLIENT_UNI_STREAMS);
    transport.stream_receive_window(VarInt::from_u64(per_stream).unwrap_or(VarInt::MAX));
    transport.receive_window(VarInt::from_u64(per_stream * streams).unwrap_or(VarInt::MAX));
    transport.send_window(per_stream * 8);
    // WebTransport clients expect datagram support to be offered; nothing reads them, so
    // keep the buffer (which drops the oldest when full) small.
    transport.datagram_receive_buffer_size(Some(16 * 1024));
    transport
}

fn server_config(
    identity: &Identity,
    alpn: &[&[u8]],
    transport: Arc<TransportConfig>,
) -> Result<quinn::ServerConfig, QuicError> {
    let tls = identity.tls_config(alpn)?;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

async fn accept_loop(shared: Arc<Shared>) {
    let self_signed = shared.config.cert_path.is_empty();
    let mut rotate =
        tokio::time::interval_at(Instant::now() + SELF_SIGNED_ROTATION, SELF_SIGNED_ROTATION);
    loop {
        tokio::select! {
            incoming = shared.endpoint.accept() => {
                let Some(incoming) = incoming else {
                    // The endpoint was closed.
                    shared.status.closed.store(true, Relaxed);
                    return;
                };
                let full = shared.endpoint.open_connections() >= shared.config.max_connections;
                if full || shared.drain.borrow().is_some() {
                    incoming.refuse();
                    continue;
                }
                let Some(slot) = PerIp::acquire(&shared.per_ip, incoming.remote_address().ip())
                else {
                    tracing::debug!(remote = %incoming.remote_address(), "QUIC connection refused: too many from this address");
                    incoming.refuse();
                    continue;
                };
                tokio::spawn(handle(shared.clone(), incoming, slot));
            }
            _ = rotate.tick(), if self_signed => rotate_certificate(&shared),
        }
    }
}

/// Replaces the development certificate before it expires; live connections keep theirs.
fn rotate_certificate(shared: &Shared) {
    let rotated = Identity::self_signed(time::OffsetDateTime::now_utc()).and_then(|identity| {
        let config = server_config(&identity, &shared.alpn, shared.transport.clone())?;
        Ok((identity.hash, config))
    });
    match rotated {
        Ok((hash, config)) => {
            shared.endpoint.set_server_config(Some(config));
            *shared.cert.write().unwrap_or_else(|e| e.into_inner()) = hash;
            tracing::info!("rotated the self-signed QUIC certificate");
        }
        Err(error) => tracing::error!(%error, "cannot rotate the self-signed QUIC certificate"),
    }
}

/// Completes the handshake and serves the connection by its ALPN.
async fn handle(shared: Arc<Shared>, incoming: quinn::Incoming, _slot: ConnectionSlot) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::debug!(%error, "QUIC handshake failed");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let id = format!("quic_{}", shared.next_connection.fetch_add(1, Relaxed));
    let session = match alpn.as_deref() {
        Some(QUIC_ALPN) => Session::raw(conn),
        Some(H3_ALPN) => match webtransport_session(&shared, conn).await {
            Some(session) => session,
            None => return,
        },
        // TLS only completes with an ALPN we offered.
        _ => {
            conn.close(AppCode::BAD_REQUEST.varint(), b"unknown ALPN");
            return;
        }
    };
    let raw = alpn.as_deref() == Some(QUIC_ALPN);
    tracing::debug!(connection = %id, raw, remote = %session.remote_address(), "QUIC connection");
    shared.live.send_modify(|n| *n += 1);
    let keep_alive = Duration::from_secs(shared.config.keep_alive_secs);
    let auth_timeout = Duration::from_secs(shared.config.auth_timeout_secs);
    let drain = shared.drain.subscribe();
    let ctx = shared.ctx.clone();
    connection::serve(session, id, ctx, drain, keep_alive, auth_timeout, raw).await;
    shared.live.send_modify(|n| *n -= 1);
}

/// The HTTP/3 handshake and CONNECT of a WebTransport session at the configured path.
async fn webtransport_session(shared: &Shared, conn: quinn::Connection) -> Option<Session> {
    let accept = web_transport_quinn::Request::accept(conn.clone());
    let timeout = Duration::from_secs(shared.config.request_start_timeout_secs);
    let request = match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            tracing::debug!(%error, "WebTransport handshake failed");
            conn.close(AppCode::BAD_REQUEST.varint(), b"bad WebTransport handshake");
            return None;
        }
        Err(_) => {
            conn.close(
                AppCode::TIMEOUT.varint(),
                b"no WebTransport CONNECT in time",
            );
            return None;
        }
    };
    if request.url.path() != shared.config.webtransport_path {
        tracing::debug!(url = %request.url, "WebTransport CONNECT to an unknown path");
        refuse(&conn, request, StatusCode::NOT_FOUND).await;
        return None;
    }
    // Browsers let any page open a session anywhere and always send `Origin`: without this
    // another site's page could chat as the visitor, as with WebSocket hijacking.
    let origin = request
        .headers
        .get(web_transport_quinn::http::header::ORIGIN);
    let origin = match origin.map(|o| o.to_str()) {
        None => None,
        Some(Ok(origin)) => Some(origin),
        // Not text: no allowed origin looks like that.
        Some(Err(_)) => Some("null"),
    };
    let url = &request.url;
    let authority = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (host, None) => host.unwrap_or_default().to_owned(),
        (None, Some(_)) => String::new(),
    };
    if !webtransport_origin_allowed(origin, &authority, &shared.allowed_origins) {
        tracing::info!(
            origin,
            "WebTransport CONNECT from a page of another site refused"
        );
        refuse(&conn, request, StatusCode::FORBIDDEN).await;
        return None;
    }
    match request.ok().await {
        Ok(session) => Some(session),
        Err(error) => {
            tracing::debug!(%error, "WebTransport CONNECT response failed");
            None
        }
    }
}

/// Answers a CONNECT with `status`, then waits (up to [`REFUSAL_LINGER`]) for the client to
/// close: dropping the last handle of a connection closes it at once, which could discard the
/// answer before it is delivered.
async fn refuse(
    conn: &quinn::Connection,
    request: web_transport_quinn::Request,
    status: StatusCode,
) {
    if request.reject(status).await.is_ok() {
        let _ = tokio::time::timeout(REFUSAL_LINGER, conn.closed()).await;
    }
}

/// Stops the accept loop and closes every connection when the last handle goes away.
struct CloseOnDrop {
    accept: tokio::task::JoinHandle<()>,
    endpoint: quinn::Endpoint,
    status: Arc<Status>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.status.closed.store(true, Relaxed);
        self.accept.abort();
        self.endpoint
            .close(AppCode::SERVER_DRAINING.varint(), b"server stopped");
    }
}
