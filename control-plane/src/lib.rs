//! The control plane: accounts and auth, tiers and quotas, rate limits, conversations, health.
//!
//! It is an HTTP service. The gateway reaches it only through this public API and the JWKS it
//! publishes, never through its tables.
#![forbid(unsafe_code)]

mod config;
mod error;

pub use config::Config;
pub use error::Error;

use axum::Router;

/// A running control plane: its storage and limits, ready to serve requests.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    config: Config,
}

impl ControlPlane {
    /// Opens storage, runs migrations and prepares limits as `config` says.
    pub async fn start(config: Config) -> Result<Self, Error> {
        Ok(Self { config })
    }

    /// The HTTP API this control plane serves. `/healthz` and `/readyz` are added by the
    /// process that hosts it, which may host the gateway too.
    pub fn router(&self) -> Router {
        Router::new()
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency (database, Redis,
    /// providers, billing); an `Err` says what is wrong and makes the process not ready.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        Vec::new()
    }

    /// The configuration this control plane runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
