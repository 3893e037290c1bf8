//! The few calls made to Stripe's API: form-encoded POSTs with the secret key as a bearer
//! token and an `Idempotency-Key`, so a retried request never creates a second object.
//!
//! Plain `reqwest` rather than `async-stripe`: three calls do not justify its generated crates
//! and a second HTTP/TLS stack (see the README's billing section).

use std::time::Duration;

use protocol::Secret;
use serde_json::Value;

/// Why a call to Stripe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StripeError {
    /// Stripe could not be reached or did not answer in time; a retry may help.
    #[error("Stripe unreachable: {0}")]
    Transport(String),
    /// Stripe answered with an error (its message, which never holds the key).
    #[error("Stripe answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stripe's `error.message`.
        message: String,
    },
}

/// A client for Stripe's API at a configurable base URL.
#[derive(Debug, Clone)]
pub(crate) struct Stripe {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl Stripe {
    pub(crate) fn new(base: &str, key: Secret, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// POSTs `form` to `path` (`/v1/...`) with `idempotency_key`; returns Stripe's JSON object.
    pub(crate) async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let body =
            serde_urlencoded::to_string(form).map_err(|e| StripeError::Transport(e.to_string()))?;
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header("Idempotency-Key", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| StripeError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|e| StripeError::Transport(e.without_url().to_string()))?;
        if status.is_success() {
            Ok(value)
        } else {
            let message = value["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned();
            Err(StripeError::Api {
                status: status.as_u16(),
                message,
            })
        }
    }

    /// Whether Stripe's API answers at all (any HTTP status): the readiness probe.
    pub(crate) async fn reachable(&self) -> Result<(), String> {
        self.http
            .get(format!("{}/v1/", self.base))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {}", self.base, e.without_url()))
    }
}
