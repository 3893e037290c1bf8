//! One process serving the companion service: the gateway, the control plane, or both.
//!
//! The binary in `main.rs` only parses flags and calls [`run`]; everything here is testable
//! in-process.
#![forbid(unsafe_code)]

pub mod config;
mod headers;
mod health;
mod serve;
mod shutdown;
mod voice;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use access_token::Verifier;
use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

pub use config::{Config, Mode};
pub use shutdown::Signals;

/// Builds every plane `config.server.mode` asks for, binds the listener, calls `on_listening`
/// with the URL people should open, and serves until `shutdown` completes. A gateway then
/// drains first (`gateway.drain_deadline_secs`: no new calls, live calls go on, then each is
/// said goodbye to and hung up) while HTTP still serves; connections still open after that
/// get `server.shutdown_grace_secs` to finish.
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(&str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mode = config.server.mode;
    let mut app = Router::new();
    let mut checks = health::Checks::default();
    let mut control_plane = None;
    let mut config = config;
    if mode == Mode::All {
        share_service_token(&mut config);
    }
    if mode.runs_control_plane() {
        let mut cp_config = config.control_plane.clone();
        // Links in verification mail point where clients are sent, unless set on their own.
        let default_link_base = control_plane::EmailConfig::default().link_base_url;
        if cp_config.email.link_base_url == default_link_base
            && !config.server.public_url.is_empty()
        {
            cp_config.email.link_base_url = config.server.public_url.clone();
        }
        let node = control_plane::ControlPlane::start(cp_config)
            .await
            .context("starting the control plane")?;
        app = app.merge(node.router());
        checks.control_plane = Some(node.clone());
        control_plane = Some(node);
    }
    // Bound before the gateway is built: in mode `all` the gateway reaches this process's
    // control plane over HTTP at this address, as it would another node's (chat turns, quota).
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen = {}", config.server.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let mut gateway_config = config.gateway.clone();
    if control_plane.is_some() && gateway_config.control_plane_url.is_empty() {
        gateway_config.control_plane_url = format!("http://{}", loopback(bound));
    }
    let mut gateway = None;
    // Dropped (and so stopped) when `run` returns.
    let mut _key_refresh = None;
    let mut _mock_llm = None;
    let mut quic = None;
    if mode.runs_gateway() {
        let voice = voice::Voice::start(&config.media, &config.pipeline, &config.voice).await?;
        let mut node = gateway::Gateway::new(gateway_config).with_call_handler(voice.sessions);
        // The same provider chains answer the OpenAI-compatible endpoints.
        node = node.with_providers(voice.providers);
        checks.metrics = Some(voice.metrics);
        _mock_llm = voice.mock_llm;
        if !config.gateway.dev_tokens {
            let (verifier, refresh) = token_verifier(&config.gateway, control_plane.as_ref()).await;
            node = node.with_verifier(verifier);
            _key_refresh = Some(AbortOnDrop(tokio::spawn(refresh)));
        }
        // Bind the media sockets now: a taken UDP port should stop start-up, not the first call.
        let media = node
            .start()
            .await
            .context("starting the gateway's WebRTC endpoint")?;
        tracing::info!(?media, "WebRTC media sockets bound");
        // QUIC + WebTransport chat on its own UDP port (gateway.quic, on by default).
        quic = node
            .start_quic()
            .await
            .context("starting the gateway's QUIC endpoint")?;
        if let Some(quic) = &quic {
            tracing::info!(
                udp = %quic.local_addr(),
                "QUIC (ALPN companion/1) and WebTransport chat enabled (gateway.quic.enabled); \
                 certificate hash at /v1/webtransport/cert-hash"
            );
        }
        app = app.merge(node.router());
        checks.gateway = Some(node.clone());
        gateway = Some(node);
    }
    checks.ops_token = config.server.ops_token.clone();
    let checks = Arc::new(checks);
    let metrics_listen = config.server.metrics_listen;
    let app = app.merge(health::router(checks.clone(), metrics_listen.is_none()));
    // `/metrics` on its own listener when asked; the task stops when `run` returns.
    let mut _metrics_server = None;
    if let Some(addr) = metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding server.metrics_listen = {addr}"))?;
        let bound = listener
            .local_addr()
            .context("reading the metrics address")?;
        tracing::info!(%bound, "serving /metrics");
        let router = health::metrics_router(checks.clone());
        _metrics_server = Some(AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        })));
    }

    let url = match config.server.public_url.as_str() {
        "" => format!("http://{bound}/"),
        url => url.to_owned(),
    };
    tracing::info!(%bound, ?mode, "serving");
    on_listening(&url);

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let drain_deadline = Duration::from_secs(config.gateway.drain_deadline_secs);
    let draining = gateway.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        // QUIC chat drains alongside the calls, to the same deadline.
        let quic = quic.map(|quic| tokio::spawn(async move { quic.drain(drain_deadline).await }));
        // Drain while HTTP still serves: callers hang up and trickle over it, new calls get
        // 503 `draining` and `/readyz` tells the load balancer to stop sending traffic.
        if let Some(gateway) = draining {
            let report = gateway.drain(drain_deadline).await;
            tracing::info!(?report, "gateway drained");
        }
        if let Some(quic) = quic {
            let connections = quic.await.unwrap_or(0);
            tracing::info!(connections, "QUIC endpoint drained");
        }
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections"
        );
        let _ = stopping_tx.send(());
    };
    let app = headers::security_headers(app, &config.server);
    // Peer addresses (`ConnectInfo<SocketAddr>`) feed the per-IP rate limits of signed-out
    // requests; the loop adds them to every request.
    let limits = serve::Limits {
        timeouts: serve::Timeouts {
            header_read: Duration::from_secs(config.server.header_read_timeout_secs),
            idle: Duration::from_secs(config.server.idle_timeout_secs),
        },
        max_connections_per_ip: config.server.max_connections_per_ip,
        exempt: config.server.max_connections_per_ip_exempt.clone(),
    };
    let server = tokio::spawn(serve::serve(listener, app, limits, shutdown));
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("server task")?,
        _ = stopping_rx => {
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.context("server task")?,
                Err(_) => tracing::warn!("grace period over: closing remaining connections"),
            }
        }
    }
    if let Some(gateway) = gateway {
        let calls = gateway.hang_up_all().await;
        tracing::info!(calls, "hung up the remaining calls");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Loads the control plane's current key set as a verifier.
type KeyLoader =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<Verifier, String>> + Send>> + Send>;

/// The gateway's access-token verifier, with its first key set loaded, and the task that
/// keeps that key set fresh. Keys are read in process when the control plane runs here, else
/// fetched from `gateway.control_plane_url` like any other client would.
async fn token_verifier(
    config: &gateway::Config,
    control_plane: Option<&control_plane::ControlPlane>,
) -> (
    Arc<gateway::JwksVerifier>,
    impl Future<Output = ()> + Send + 'static,
) {
    let mut load: KeyLoader = match control_plane {
        Some(control_plane) => {
            let control_plane = control_plane.clone();
            Box::new(move || {
                let control_plane = control_plane.clone();
                Box::pin(async move { control_plane.verifier().await })
            })
        }
        None => {
            let client = reqwest::Client::new();
            let url = config.control_plane_url.clone();
            let (iss, aud) = (config.token_issuer.clone(), config.token_audience.clone());
            Box::new(move || {
                let (client, url) = (client.clone(), url.clone());
                let (iss, aud) = (iss.clone(), aud.clone());
                Box::pin(async move { gateway::fetch_jwks(&client, &url, &iss, &aud).await })
            })
        }
    };
    let verifier = gateway::JwksVerifier::new(config.calls_per_tier.clone());
    match load().await {
        Ok(keys) => verifier.install(keys),
        // A control plane on another node may still be starting: the refresh task retries.
        Err(reason) => {
            tracing::warn!(%reason, "no token keys yet; calls are refused until they load");
        }
    }
    let interval = Duration::from_secs(config.jwks_refresh_secs);
    let refresh = verifier
        .clone()
        .keep_fresh(load, interval, Duration::from_secs(2));
    (verifier, refresh)
}

/// In one process hosting both planes, the gateway presents a credential the control plane
/// accepts: the configured one, or a fresh random one that lives as long as the process.
fn share_service_token(config: &mut Config) {
    let gateway = &mut config.gateway.control_plane_service_token;
    if gateway.is_empty() {
        *gateway = config
            .control_plane
            .service_tokens
            .first()
            .cloned()
            .unwrap_or_else(control_plane::new_service_token);
    }
    if !config.control_plane.service_tokens.contains(gateway) {
        config.control_plane.service_tokens.push(gateway.clone());
    }
}

/// Where this process can reach its own listener: a wildcard bind is reached on loopback.
fn loopback(bound: std::net::SocketAddr) -> std::net::SocketAddr {
    match bound.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            (std::net::Ipv4Addr::LOCALHOST, bound.port()).into()
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, bound.port()).into()
        }
        _ => bound,
    }
}

/// Aborts a background task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
