//! `/healthz` (the process answers), `/readyz` (every dependency of every plane it hosts
//! answers) and `/metrics` (Prometheus), shared by whichever planes run in this process.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};

/// The planes whose readiness `/readyz` reports.
#[derive(Default)]
pub(crate) struct Checks {
    pub(crate) gateway: Option<gateway::Gateway>,
    pub(crate) control_plane: Option<control_plane::ControlPlane>,
    /// Turn-latency histograms of the voice sessions, when a gateway runs here.
    pub(crate) metrics: Option<prometheus_client::registry::Registry>,
}

pub(crate) fn router(checks: Checks) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(checks))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn metrics(State(checks): State<Arc<Checks>>) -> impl IntoResponse {
    let body = checks
        .metrics
        .as_ref()
        .map(pipeline::latency::encode_text)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn readyz(State(checks): State<Arc<Checks>>) -> (StatusCode, Json<Value>) {
    let mut results = Vec::new();
    if let Some(gateway) = &checks.gateway {
        results.extend(gateway.readiness().await);
    }
    if let Some(control_plane) = &checks.control_plane {
        results.extend(control_plane.readiness().await);
    }
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|(name, result)| {
            let check = match result {
                Ok(()) => json!({ "status": "ok" }),
                Err(reason) => json!({ "status": "failing", "reason": reason }),
            };
            (name.to_owned(), check)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body))
}
