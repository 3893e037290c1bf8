use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use crate::app::{App, unix_now};
use crate::token::{Jwks, KeyRing};

/// Public keys for verifying access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "Published Ed25519 keys, newest first", body = Jwks)))]
pub(crate) async fn jwks(State(app): State<App>) -> Result<Json<Jwks>, ApiError> {
    Ok(Json(KeyRing::published(&app.db, unix_now()).await?))
}
