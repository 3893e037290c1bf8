//! The HTTP listener's accept loop, in place of `axum::serve`, which gives hyper no timer (so
//! no header-read timeout) and takes every connection it is offered.
//!
//! Here each TCP connection is:
//! - refused at once (closed before any byte is read) when its peer address already holds
//!   `server.max_connections_per_ip` connections;
//! - served as HTTP/1.1 with hyper's timer, so a request head must arrive whole within
//!   `server.header_read_timeout_secs` (the slowloris defence) and a keep-alive connection
//!   waiting for its next request is closed after the same time;
//! - closed when no byte moves either way for `server.idle_timeout_secs` while it is still
//!   HTTP (a stalled body upload, a client that never reads its answer). Upgraded connections
//!   (WebSockets) leave this loop and keep their own heartbeat.
//!
//! Graceful shutdown, the peer address (`ConnectInfo<SocketAddr>`, which feeds the per-IP rate
//! limits) and WebSocket upgrades work as they did with `axum::serve`.
//!
//! HTTP/1 only: hyper-util's `auto` builder cannot pin the version once upgrades are enabled,
//! so it would also take h2c (HTTP/2 without TLS, which no browser speaks) and that path has
//! no header-read timeout.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo};
use gateway::{ConnectionSlot, PerIp};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};
use tower::ServiceExt as _;

/// The limits every connection is held to (from `[server]`).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// The timeouts of each connection.
    pub(crate) timeouts: Timeouts,
    /// Connections one peer address (IPv6: one /64) may hold at once; 0 means no limit.
    pub(crate) max_connections_per_ip: usize,
    /// Peer addresses the cap does not apply to.
    pub(crate) exempt: Vec<IpAddr>,
}

/// How long a connection may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// A request head must arrive whole within this; also the keep-alive idle limit.
    pub(crate) header_read: Duration,
    /// No byte either way for this long closes a connection that is still HTTP.
    pub(crate) idle: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every
/// HTTP connection to finish its request and close, and returns once they all have.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let per_ip = PerIp::new(limits.max_connections_per_ip, limits.exempt);
    // Every connection task holds a receiver: `closed()` on the sender completes once all
    // are gone. A send asks them to shut down gracefully.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = PerIp::acquire(&per_ip, peer.ip()) else {
            // Dropping the stream closes it: no read, no task, no TLS or HTTP state.
            tracing::debug!(%peer, "connection refused: too many from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits.timeouts,
            slot,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Timeouts,
    slot: ConnectionSlot,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        _slot: slot,
    });
    let service = app.map_request(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let idle_until = activity.last() + limits.idle;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "HTTP connection ended with an error");
                }
                break;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(idle_until) => {
                if activity.last() + limits.idle <= Instant::now() {
                    tracing::debug!(%peer, "HTTP connection idle: closing");
                    break;
                }
            }
        }
    }
}

/// When bytes last moved on a connection, as milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A TCP stream that records when bytes last moved through it. It holds the connection's
/// per-IP slot, so an upgraded connection (a WebSocket, which outlives the HTTP task) still
/// counts until it closes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: ConnectionSlot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
