//! Requests the data plane makes on a user's behalf.
//!
//! Some writes belong to the server alone: how a chat turn ended (its reply, its token counts,
//! whether the message is refunded) and what a quota reservation really used. The gateway
//! makes them with the user's access token, which names the account, but a user holds that
//! token too. So these routes also require the gateway's own credential in
//! [`SERVICE_TOKEN_HEADER`], one of `service_tokens` in the configuration; a request with only
//! a user's token is refused with 403 `service_credential_required`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::Caller;
use super::error::ApiError;
use crate::app::App;

/// The header that carries the data plane's credential.
pub const SERVICE_TOKEN_HEADER: &str = "x-service-token";

/// A signed-in user, reached through a request the data plane made for them.
#[derive(Debug, Clone)]
pub(crate) struct OnBehalf(pub(crate) Caller);

impl FromRequestParts<App> for OnBehalf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        // The user first: a bad or expired user token is the 401 a client can act on.
        let caller = Caller::from_request_parts(parts, app).await?;
        require_service(app, &parts.headers)?;
        Ok(Self(caller))
    }
}

/// Refuses a request that does not carry a configured data-plane credential.
pub(crate) fn require_service(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(SERVICE_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() || !app.service_tokens.accepts(presented) {
        return Err(ApiError::forbidden(
            "service_credential_required",
            "only the gateway may make this request",
        ));
    }
    Ok(())
}
