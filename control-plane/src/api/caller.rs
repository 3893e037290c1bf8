//! Who is calling: a verified access token whose session is still live.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::app::{App, unix_now};
use crate::token::Claims;

/// A signed-in caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) claims: Claims,
}

impl Caller {
    pub(crate) fn id(&self) -> &str {
        &self.claims.sub
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = super::auth::bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let claims = app
            .verify_token(token)
            .await
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        // Tokens are stateless, but our own API also honours revocation at once: a token whose
        // session was signed out, replaced or revoked is refused here (the gateway relies on
        // the short token lifetime instead).
        if !crate::db::sessions::is_live(&app.db, &claims.sid, unix_now()).await? {
            return Err(ApiError::unauthorized("session has ended; sign in again"));
        }
        Ok(Self { claims })
    }
}
