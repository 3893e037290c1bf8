//! `GET /v1/webtransport/cert-hash`: what a browser needs to open a WebTransport session to
//! this node, above all the SHA-256 hash of the certificate for `serverCertificateHashes`.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use std::sync::{Arc, OnceLock};

use serde_json::json;

use super::QuicInfo;

/// Where the route finds the endpoint once it has started.
type Started = Arc<OnceLock<QuicInfo>>;

/// The route, answering 404 `quic_disabled` until the gateway's endpoint has started.
pub(crate) fn routes(started: Started) -> Router {
    Router::new()
        .route("/v1/webtransport/cert-hash", get(cert_hash))
        .with_state(started)
}

async fn cert_hash(State(started): State<Started>, headers: HeaderMap) -> Response {
    let Some(info) = started.get() else {
        let body = json!({"error": {
            "code": "quic_disabled",
            "message": "this node serves no QUIC or WebTransport (gateway.quic.enabled)",
        }});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let hash = info.cert.read().unwrap_or_else(|e| e.into_inner()).clone();
    let port = info.local_addr.port();
    // A concrete bind is the address to dial; behind a wildcard bind, the browser reaches the
    // QUIC port on the host it loaded the page from.
    let ip = info.local_addr.ip();
    let host = if ip.is_unspecified() {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(host_name)
            .map_or_else(|| "localhost".to_owned(), str::to_owned)
    } else {
        match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        }
    };
    let url = info
        .webtransport_path
        .as_ref()
        .map(|path| format!("https://{host}:{port}{path}"));
    let mut body = json!({
        "algorithm": "sha-256",
        "hex": hash.hex(),
        "base64": hash.base64(),
        "selfSigned": hash.self_signed,
        "port": port,
        "alpn": ["companion/1", "h3"],
    });
    if let Some(url) = url {
        body["url"] = json!(url);
    } else {
        body["alpn"] = json!(["companion/1"]);
    }
    if let Some(not_after) = hash.not_after_ms {
        body["notAfter"] = json!(not_after);
    }
    let mut response = Json(body).into_response();
    // The development certificate is replaced daily: never serve a stale hash.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The host part of a `Host` header (`localhost:8080` -> `localhost`, `[::1]:80` -> `[::1]`),
/// if it is a plausible host name.
fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let plausible = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    plausible.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("localhost:8080"), Some("localhost"));
        assert_eq!(host_name("example.com"), Some("example.com"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("evil\"host"), None);
        assert_eq!(host_name(""), None);
    }
}
