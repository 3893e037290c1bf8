//! One process serving the companion service: the gateway, the control plane, or both.
//!
//! The binary in `main.rs` only parses flags and calls [`run`]; everything here is testable
//! in-process.
#![forbid(unsafe_code)]

pub mod config;
mod health;
mod shutdown;

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

pub use config::{Config, Mode};
pub use shutdown::signal as shutdown_signal;

/// Builds every plane `config.server.mode` asks for, binds the listener, calls `on_listening`
/// with the URL people should open, and serves until `shutdown` completes. Connections still
/// open then get `server.shutdown_grace_secs` to finish.
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(&str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mode = config.server.mode;
    let mut app = Router::new();
    let mut checks = health::Checks::default();
    if mode.runs_control_plane() {
        let control_plane = control_plane::ControlPlane::start(config.control_plane.clone())
            .await
            .context("starting the control plane")?;
        app = app.merge(control_plane.router());
        checks.control_plane = Some(control_plane);
    }
    if mode.runs_gateway() {
        let gateway = gateway::Gateway::new(config.gateway.clone());
        app = app.merge(gateway.router());
        checks.gateway = Some(gateway);
    }
    let app = app.merge(health::router(checks));

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen = {}", config.server.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let url = match config.server.public_url.as_str() {
        "" => format!("http://{bound}/"),
        url => url.to_owned(),
    };
    tracing::info!(%bound, ?mode, "serving");
    on_listening(&url);

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections"
        );
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let server = tokio::spawn(async move { server.await });
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("server task")?.context("serving HTTP")?,
        _ = stopping_rx => {
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.context("server task")?.context("serving HTTP")?,
                Err(_) => tracing::warn!("grace period over: closing remaining connections"),
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}
