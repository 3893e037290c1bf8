//! The data plane: terminates live streams (browser voice calls, token streams) and runs the
//! voice pipeline per call.
//!
//! The gateway holds no signing secret and no tables: it learns who a caller is from access
//! tokens it verifies against the control plane's published keys.
#![forbid(unsafe_code)]

mod config;
mod status_page;

pub use config::Config;

use axum::{Router, routing::get};

/// A gateway node, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    config: Config,
}

impl Gateway {
    /// Builds a gateway from its configuration section.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// The HTTP routes this gateway serves. `/healthz` and `/readyz` are added by the hosting
    /// process, which may host the control plane too.
    pub fn router(&self) -> Router {
        Router::new().route("/", get(status_page::page))
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        Vec::new()
    }

    /// The configuration this gateway runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
