//! The OpenAI-compatible endpoints' quota rule: a request reserves all it may need up
//! front (one message, or an upper bound of voice seconds), all or nothing, and settles with
//! what it really used once it is over. The reserve call passes the control plane's rate
//! limiter like any other `/api/` request, so the tier's hourly API allowance applies here
//! too.

use super::error::OpenAiError;
use crate::core::control_plane::quota::{
    GrantError, QuotaClient, QuotaKind, Reservation, random_hex,
};

/// Reserves `amount` of `kind` for the caller holding `token`. A partial or empty grant is
/// released at once and refused with 429 `insufficient_quota`: an API answer is all or
/// nothing.
pub(crate) async fn reserve(
    quota: &QuotaClient,
    token: &str,
    kind: QuotaKind,
    amount: u64,
) -> Result<Reservation, OpenAiError> {
    if !quota.is_configured() {
        return Err(OpenAiError::unavailable(
            "quota_unavailable",
            "this gateway has no control plane to check quotas with \
                 (gateway.control_plane_url is empty), so it serves no OpenAI-compatible requests",
        ));
    }
    let key = format!("openai-{}-{}", kind.as_str(), random_hex());
    let grant = quota
        .grant(token, kind, &key, amount)
        .await
        .map_err(into_openai)?;
    if grant.granted < amount {
        let reservation = Reservation {
            key,
            granted: grant.granted,
        };
        quota.settle(token, &reservation, 0).await;
        let left = grant.remaining.unwrap_or(grant.granted);
        return Err(OpenAiError::insufficient_quota(
            format!(
                "You exceeded your daily quota of {}: {left} left, this request needs {amount}; \
                     it resets in {} s",
                kind.as_str().replace('_', " "),
                grant.resets_in_secs
            ),
            grant.resets_in_secs,
        ));
    }
    Ok(Reservation {
        key,
        granted: grant.granted,
    })
}

/// The OpenAI error a client of the compatible endpoints expects.
fn into_openai(e: GrantError) -> OpenAiError {
    match e {
        GrantError::Unreachable => OpenAiError::unavailable(
            "quota_unavailable",
            "the quota service is unreachable; try again shortly",
        ),
        GrantError::Malformed => {
            OpenAiError::internal("quota reserve", "the control plane's answer has no grant")
        }
        GrantError::RateLimited {
            message,
            retry_after,
        } => OpenAiError::rate_limited(message, retry_after),
        GrantError::Unauthorized(message) => OpenAiError::invalid_api_key(message),
        GrantError::Forbidden(message) => OpenAiError::forbidden(message),
        GrantError::Failed(_) => OpenAiError::unavailable(
            "quota_unavailable",
            "the quota service could not be asked; try again shortly",
        ),
    }
}
