//! Security headers on every response of both planes.
//!
//! - `X-Content-Type-Options: nosniff`: a browser renders a response only as the type it is
//!   labelled with, so a JSON answer echoing user text can never be sniffed into HTML or
//!   script.
//! - `Strict-Transport-Security: max-age=…` when `server.public_url` is `https://`. This
//!   listener speaks plain HTTP; an https public URL means a TLS-terminating proxy in front,
//!   and browsers only honour the header on responses they got over TLS. With an `http://`
//!   (or empty) public URL it is not sent: it would be ignored, and a node reached over plain
//!   HTTP has no HTTPS to pin. Handlers that set either header themselves keep theirs.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::Response,
};

use crate::config::ServerConfig;

/// `app` with the security headers added to every response.
pub(crate) fn security_headers(app: Router, server: &ServerConfig) -> Router {
    let hsts = (server.public_url.starts_with("https://") && server.hsts_max_age_secs > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={}", server.hsts_max_age_secs)).ok())
        .flatten();
    app.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let hsts = hsts.clone();
            async move {
                let headers = response.headers_mut();
                headers
                    .entry(header::X_CONTENT_TYPE_OPTIONS)
                    .or_insert(HeaderValue::from_static("nosniff"));
                if let Some(hsts) = hsts {
                    headers
                        .entry(header::STRICT_TRANSPORT_SECURITY)
                        .or_insert(hsts);
                }
                response
            }
        },
    ))
}
