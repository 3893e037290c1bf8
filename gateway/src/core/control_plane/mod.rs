//! How this gateway reaches its control plane: one HTTP client shape for every call it makes
//! there (chat turns, quota), carrying the gateway's own credential.
//!
//! The user's bearer token says whose account a request is for; the `X-Service-Token` header
//! says the gateway made it. The control plane accepts the writes only the server may make
//! (replies, refunds, settlements) when both are present, so a user holding their own token
//! cannot make them.

pub(crate) mod chat;
pub(crate) mod quota;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use crate::core::config::Config;

/// The header the control plane reads the data plane's credential from (its
/// `SERVICE_TOKEN_HEADER`).
pub(crate) const SERVICE_TOKEN_HEADER: &str = "x-service-token";

/// An HTTP client for the control plane at `config.control_plane_url`: every request carries
/// `config.control_plane_service_token` (when set) and times out after `timeout`.
pub(crate) fn http_client(config: &Config, timeout: Duration) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    let token = config.control_plane_service_token.expose();
    if !token.is_empty() {
        match HeaderValue::from_str(token) {
            Ok(mut value) => {
                // Kept out of reqwest's and hyper's debug output.
                value.set_sensitive(true);
                headers.insert(SERVICE_TOKEN_HEADER, value);
            }
            Err(_) => tracing::error!(
                "gateway.control_plane_service_token is not a valid header value; \
                 the control plane will refuse chat and quota requests"
            ),
        }
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}
