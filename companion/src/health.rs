//! `/healthz` (the process answers), `/readyz` (every dependency of every plane it hosts
//! answers) and `/metrics` (Prometheus), shared by whichever planes run in this process.
//!
//! `/readyz` is public (load balancers call it), so it must be cheap and say little: the
//! control plane's probes (database, Redis, LLM provider) run at most once per
//! [`PROBE_CACHE`], however many callers ask at once, and the reason a check is not `ok` is
//! shown only to callers on this machine (loopback) or bearing `server.ops_token`; others see
//! just the status of each dependency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use control_plane::CheckStatus;
use serde_json::{Value, json};

/// How long one round of control-plane probes answers `/readyz`.
pub(crate) const PROBE_CACHE: Duration = Duration::from_secs(1);

/// The control plane's last probe results and when they were taken.
type Probed = Option<(Instant, Arc<Vec<(&'static str, CheckStatus)>>)>;

/// The planes whose readiness `/readyz` reports.
#[derive(Default)]
pub(crate) struct Checks {
    pub(crate) gateway: Option<gateway::Gateway>,
    pub(crate) control_plane: Option<control_plane::ControlPlane>,
    /// Turn-latency histograms of the voice sessions, when a gateway runs here.
    pub(crate) metrics: Option<prometheus_client::registry::Registry>,
    /// `server.ops_token`: a bearer token that sees the reasons behind `/readyz` statuses from
    /// anywhere. Empty: only loopback callers see them.
    pub(crate) ops_token: protocol::Secret,
    /// Held while probing, so concurrent callers wait for one probe instead of each starting
    /// their own.
    probed: tokio::sync::Mutex<Probed>,
}

/// `/healthz` and `/readyz`, plus `/metrics` when `with_metrics` (else it is served on its own
/// listener, see [`metrics_router`]).
pub(crate) fn router(checks: Arc<Checks>, with_metrics: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let router = if with_metrics {
        router.route("/metrics", get(metrics))
    } else {
        router
    };
    router.with_state(checks)
}

/// `/metrics` alone, for `server.metrics_listen`.
pub(crate) fn metrics_router(checks: Arc<Checks>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(checks)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn metrics(State(checks): State<Arc<Checks>>) -> impl IntoResponse {
    let mut body = checks
        .metrics
        .as_ref()
        .map(pipeline::latency::encode_text)
        .unwrap_or_default();
    if let Some(control_plane) = &checks.control_plane {
        // One exposition: the first registry's end marker goes, the second's closes both.
        if let Some(stripped) = body.strip_suffix("# EOF\n") {
            body.truncate(stripped.len());
        }
        body.push_str(&control_plane_metrics(control_plane));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// The control plane's rate-limit fallback counters (see `control_plane::ratelimit`).
fn control_plane_metrics(control_plane: &control_plane::ControlPlane) -> String {
    use prometheus_client::metrics::counter::Counter;
    let counts = control_plane.rate_limit_fallbacks();
    let mut registry = prometheus_client::registry::Registry::default();
    for (name, help, value) in [
        (
            "rate_limit_store_failures",
            "Rate-limit checks Redis did not answer in time",
            counts.store_failures,
        ),
        (
            "rate_limit_fallback_checks",
            "Checks of fail-closed rules decided by this node's in-process window",
            counts.fallback_checks,
        ),
        (
            "rate_limit_failed_open",
            "Requests admitted unchecked because Redis did not answer (fail-open rules)",
            counts.failed_open,
        ),
    ] {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        registry.register(format!("control_plane_{name}"), help, counter);
    }
    pipeline::latency::encode_text(&registry)
}

/// Whether the caller may see why a check is not `ok`: it is on this machine, or it presents
/// `server.ops_token`.
fn privileged(checks: &Checks, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    if peer.is_some_and(|p| p.ip().is_loopback() || is_mapped_loopback(p)) {
        return true;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if !checks.ops_token.is_empty() => {
            constant_time_eq(token.as_bytes(), checks.ops_token.expose().as_bytes())
        }
        _ => false,
    }
}

fn is_mapped_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The control plane's checks, probed at most once per [`PROBE_CACHE`].
async fn control_plane_checks(
    checks: &Checks,
    control_plane: &control_plane::ControlPlane,
) -> Arc<Vec<(&'static str, CheckStatus)>> {
    let mut probed = checks.probed.lock().await;
    if let Some((at, results)) = probed.as_ref()
        && at.elapsed() < PROBE_CACHE
    {
        return results.clone();
    }
    let results = Arc::new(control_plane.health().await);
    *probed = Some((Instant::now(), results.clone()));
    results
}

async fn readyz(State(checks): State<Arc<Checks>>, req: Request) -> (StatusCode, Json<Value>) {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let details = privileged(&checks, peer, req.headers());
    let mut results: Vec<(&'static str, CheckStatus)> = Vec::new();
    // The gateway's checks are in-process state (draining, bound sockets): always current.
    if let Some(gateway) = &checks.gateway {
        results.extend(gateway.readiness().await.into_iter().map(|(name, result)| {
            (
                name,
                result.map_or_else(CheckStatus::Failing, |()| CheckStatus::Ok),
            )
        }));
    }
    if let Some(control_plane) = &checks.control_plane {
        results.extend(
            control_plane_checks(&checks, control_plane)
                .await
                .iter()
                .cloned(),
        );
    }
    let ready = !results
        .iter()
        .any(|(_, s)| matches!(s, CheckStatus::Failing(_)));
    let checks: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|(name, status)| {
            let (status, reason) = match status {
                CheckStatus::Ok => ("ok", None),
                // Working without it (Redis: limits per node): still ready.
                CheckStatus::Degraded(reason) => ("degraded", Some(reason)),
                CheckStatus::Failing(reason) => ("failing", Some(reason)),
                _ => ("unknown", None),
            };
            let check = match reason.filter(|_| details) {
                Some(reason) => json!({ "status": status, "reason": reason }),
                None => json!({ "status": status }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_callers_and_the_ops_token_are_privileged() {
        let checks = Checks {
            ops_token: protocol::Secret::new("s3cret"),
            ..Checks::default()
        };
        let none = HeaderMap::new();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.5:5000".parse().unwrap();
        assert!(privileged(&checks, Some(local), &none));
        assert!(privileged(&checks, Some(mapped), &none));
        assert!(!privileged(&checks, Some(remote), &none));
        assert!(!privileged(&checks, None, &none));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(privileged(&checks, Some(remote), &bearer));
        let mut wrong = HeaderMap::new();
        wrong.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!privileged(&checks, Some(remote), &wrong));
        // No token configured: no bearer is privileged, not even an empty one.
        let open = Checks::default();
        let mut empty = HeaderMap::new();
        empty.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(!privileged(&open, Some(remote), &empty));
    }
}
