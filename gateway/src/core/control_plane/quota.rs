//! Spending the caller's daily allowance through the control plane's quota API
//! (`POST /api/quota/reserve`, `/api/quota/settle`), called over HTTP with the caller's own
//! bearer token and the node's service credential: the gateway never reads the control
//! plane's tables (see DESIGN.md).
//!
//! [`QuotaClient::grant`] returns the control plane's grant as it is, partial and empty ones
//! included: voice sessions run on exactly what they were granted (`voice/quota.rs`); the
//! OpenAI-compatible edge turns a short grant into a refusal. Every user settles with what it
//! really used once it is over, also when its client went away midway.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// What a reservation counts (the control plane's `QuotaKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    /// One chat completion is one message.
    Messages,
    /// Seconds of synthesised or transcribed audio.
    VoiceSeconds,
}

impl QuotaKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::VoiceSeconds => "voice_seconds",
        }
    }
}

/// A granted reservation, to be settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) key: String,
    pub(crate) granted: u64,
}

/// The control plane's quota API, as seen from this gateway.
#[derive(Debug, Clone)]
pub(crate) struct QuotaClient {
    http: reqwest::Client,
    /// Base URL without a trailing slash; empty when none is configured.
    base: String,
}

#[derive(Deserialize)]
struct ReserveResponse {
    results: Vec<GrantBody>,
}

#[derive(Deserialize)]
struct GrantBody {
    granted: u64,
    remaining: Option<u64>,
    resets_in_secs: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl QuotaClient {
    /// A client for the control plane `config` names, with this gateway's credential.
    pub(crate) fn new(config: &crate::core::config::Config) -> Self {
        Self {
            http: crate::core::control_plane::http_client(config, TIMEOUT),
            base: config.control_plane_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Whether a control plane is configured to ask.
    pub(crate) fn is_configured(&self) -> bool {
        !self.base.is_empty()
    }

    /// Reserves up to `amount` of `kind` under the idempotency `key`: the control plane's
    /// answer as it is, partial and empty grants included (a voice session runs on exactly
    /// what it was granted). Asking again with the same key and amount repeats the first
    /// answer, so a request whose answer was lost can be retried without counting twice.
    pub(crate) async fn grant(
        &self,
        token: &str,
        kind: QuotaKind,
        key: &str,
        amount: u64,
    ) -> Result<Grant, GrantError> {
        if self.base.is_empty() {
            return Err(GrantError::Unreachable);
        }
        let body =
            json!({ "reservations": [{ "key": key, "kind": kind.as_str(), "amount": amount }] });
        let response = self
            .http
            .post(format!("{}/api/quota/reserve", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "quota reserve: control plane unreachable");
                GrantError::Unreachable
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(status, response).await);
        }
        let grant = response
            .json::<ReserveResponse>()
            .await
            .ok()
            .and_then(|r| r.results.into_iter().next())
            .ok_or(GrantError::Malformed)?;
        Ok(Grant {
            granted: grant.granted,
            remaining: grant.remaining,
            resets_in_secs: grant.resets_in_secs,
        })
    }

    /// Settles `reservation` with what was used; the rest returns to the day's quota.
    /// Failures are logged, not returned: the answer has already been given, and an unsettled
    /// reservation stays counted (the caller is never under-charged by our failure).
    pub(crate) async fn settle(&self, token: &str, reservation: &Reservation, used: u64) {
        self.settle_all(token, &[(reservation.key.as_str(), used)])
            .await;
    }

    /// Settles several reservations in one request; `true` once the control plane has
    /// answered (settling is idempotent by key, so a retry after `false` is safe). Failures
    /// are logged.
    pub(crate) async fn settle_all(&self, token: &str, settlements: &[(&str, u64)]) -> bool {
        let items: Vec<_> = settlements
            .iter()
            .map(|(key, used)| json!({ "key": key, "used": used }))
            .collect();
        let body = json!({ "settlements": items });
        let first_key = settlements.first().map_or("", |(key, _)| key);
        let result = self
            .http
            .post(format!("{}/api/quota/settle", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), key = %first_key, "quota settle refused");
                // A refusal (an expired token, a malformed batch) will not change on retry.
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, key = %first_key, "quota settle failed");
                false
            }
        }
    }
}

/// What the control plane granted one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Granted now: the amount asked for, or less (even 0) when the day's quota runs out.
    pub(crate) granted: u64,
    /// Left today after this grant; `None` when unlimited.
    pub(crate) remaining: Option<u64>,
    /// Seconds until the daily quota resets (UTC midnight).
    pub(crate) resets_in_secs: u64,
}

/// Why a reservation got no answer with a grant in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrantError {
    /// The control plane could not be reached (or none is configured): retrying may help.
    Unreachable,
    /// The control plane answered, but not with a grant it understood.
    Malformed,
    /// 429 from the control plane's rate limiter.
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// 401: the token is not (or no longer) accepted.
    Unauthorized(String),
    /// 403: the account may not use this.
    Forbidden(String),
    /// Any other status: the control plane failed.
    Failed(String),
}

impl GrantError {
    /// Whether asking again later may succeed.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable | Self::Malformed | Self::RateLimited { .. } | Self::Failed(_)
        )
    }
}

/// Classifies a control-plane refusal.
async fn refusal(status: StatusCode, response: reqwest::Response) -> GrantError {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let message = response
        .json::<ErrorBody>()
        .await
        .map(|b| b.error.message)
        .unwrap_or_else(|_| format!("the control plane answered {status}"));
    match status {
        StatusCode::TOO_MANY_REQUESTS => GrantError::RateLimited {
            message,
            retry_after,
        },
        StatusCode::UNAUTHORIZED => GrantError::Unauthorized(message),
        StatusCode::FORBIDDEN => GrantError::Forbidden(message),
        _ => {
            tracing::warn!(%status, %message, "quota reserve refused");
            GrantError::Failed(message)
        }
    }
}

pub(crate) fn random_hex() -> String {
    let mut b = [0u8; 12];
    // A failing OS random source leaves zeros; the time part still keeps keys apart.
    let _ = getrandom::fill(&mut b);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut s = format!("{nanos:x}-");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}
