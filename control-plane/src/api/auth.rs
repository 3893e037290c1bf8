//! Sign-up, sign-in, refresh, sign-out and password change.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::Caller;
use super::error::ApiError;
use super::extract::Body;
use crate::app::{App, unix_now};
use crate::db::sessions::{self, Issued, RefreshRefused};
use crate::db::{new_id, profiles};
use crate::tier::Tier;
use crate::token::Claims;

/// Youngest age allowed to hold an account (COPPA).
const MIN_AGE: i64 = 13;

/// A new account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignupRequest {
    /// E-mail address; also the sign-in name.
    email: String,
    /// 10 to 128 characters.
    password: String,
    /// Name shown to companions.
    #[serde(default)]
    display_name: String,
    /// Year of birth; accounts for under-13s are refused.
    birth_year: i64,
    /// Must be true: the terms of service were accepted.
    consent_terms: bool,
    /// Product e-mail.
    #[serde(default)]
    consent_marketing: bool,
    /// Keeping voice recordings to improve the service.
    #[serde(default)]
    consent_voice_data: bool,
}

/// E-mail and password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

/// A refresh token to exchange or revoke.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Current and new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Tokens for a session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TokenPair {
    /// EdDSA JWT for `Authorization: Bearer`.
    access_token: String,
    /// Opaque; exchange at `/api/auth/refresh`. Single use.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Access-token lifetime in seconds.
    expires_in: u64,
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

pub(crate) fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid("email: expected an e-mail address"))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if (10..=128).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::invalid("password: expected 10 to 128 characters"))
    }
}

fn current_year(now: i64) -> i64 {
    // Days since 1970 / 365.2425 is exact enough for an age gate at year granularity.
    1970 + (now as f64 / 86_400.0 / 365.2425) as i64
}

/// Refuses birth years that are implausible or make the person possibly younger than 13.
pub(crate) fn age_gate(birth_year: i64, now: i64) -> Result<(), ApiError> {
    let year = current_year(now);
    if birth_year < 1900 || birth_year > year {
        return Err(ApiError::invalid(
            "birth_year: expected a year between 1900 and this year",
        ));
    }
    // Year-only birth dates: someone born in `year - 13` may still be 12, so they wait.
    if year - birth_year <= MIN_AGE {
        return Err(ApiError::forbidden(
            "age_restricted",
            "accounts require an age of at least 13",
        ));
    }
    Ok(())
}

/// Signs an access token for `profile_id` in session `family_id`.
async fn access_token(app: &App, profile_id: &str, family_id: &str) -> Result<String, ApiError> {
    let profile = profiles::by_id(&app.db, profile_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    let tier = Tier::parse(&profile.tier).unwrap_or(Tier::Free);
    let now = unix_now() as u64;
    let claims = Claims {
        sub: profile.id,
        email: profile.email,
        tier: tier.as_str().to_owned(),
        permissions: tier.permissions(),
        iss: app.config.issuer.clone(),
        aud: app.config.audience.clone(),
        exp: now + app.config.access_token_ttl_secs,
        iat: now,
        jti: new_id(),
        sid: family_id.to_owned(),
    };
    app.keys
        .sign(&claims)
        .map_err(|e| ApiError::internal("signing access token", e))
}

pub(crate) async fn pair(app: &App, issued: Issued) -> Result<TokenPair, ApiError> {
    Ok(TokenPair {
        access_token: access_token(app, &issued.profile_id, &issued.family_id).await?,
        refresh_token: issued.raw,
        token_type: "Bearer",
        expires_in: app.config.access_token_ttl_secs,
    })
}

pub(crate) async fn start_session(app: &App, profile_id: &str) -> Result<Issued, ApiError> {
    let mut tx = app.db.begin().await?;
    let issued = sessions::start(
        &mut tx,
        profile_id,
        unix_now(),
        app.config.refresh_token_ttl_secs as i64,
        app.config.max_sessions,
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = TokenPair), (status = 409, body = super::error::ErrorBody),
              (status = 403, description = "under the minimum age", body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub(crate) async fn signup(
    State(app): State<App>,
    Body(req): Body<SignupRequest>,
) -> Result<(StatusCode, Json<TokenPair>), ApiError> {
    let email = normalise_email(&req.email)?;
    check_password(&req.password)?;
    if !req.consent_terms {
        return Err(ApiError::invalid(
            "consent_terms: the terms must be accepted",
        ));
    }
    let now = unix_now();
    age_gate(req.birth_year, now)?;
    if req.display_name.chars().count() > 64 {
        return Err(ApiError::invalid("display_name: at most 64 characters"));
    }
    let hash = app
        .hasher
        .hash(req.password)
        .await
        .map_err(|e| ApiError::internal("hashing", e))?;
    let id = new_id();
    // Account and first session commit together or not at all.
    let mut tx = app.db.begin().await?;
    let new = profiles::NewProfile {
        id: &id,
        email: &email,
        password_hash: Some(&hash),
        display_name: req.display_name.trim(),
        birth_year: Some(req.birth_year),
        consent_terms: req.consent_terms,
        consent_marketing: req.consent_marketing,
        consent_voice_data: req.consent_voice_data,
    };
    if !profiles::insert(&mut tx, &new, now).await? {
        return Err(ApiError::conflict(
            "an account with this e-mail address exists",
        ));
    }
    let issued = sessions::start(
        &mut tx,
        &id,
        now,
        app.config.refresh_token_ttl_secs as i64,
        app.config.max_sessions,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = id, "account created");
    Ok((StatusCode::CREATED, Json(pair(&app, issued).await?)))
}

/// Signs in with e-mail and password. Starting a fourth session ends the oldest.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn login(
    State(app): State<App>,
    Body(req): Body<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong e-mail or password",
        )
    };
    let email = req.email.trim().to_lowercase();
    // Per account as well as per address: many addresses must not multiply the guesses.
    crate::ratelimit::login_email(&app, &email).await?;
    let profile = profiles::by_email(&app.db, &email).await?;
    let stored = profile.as_ref().and_then(|p| p.password_hash.clone());
    let known = stored.is_some();
    let ok = app
        .hasher
        .verify(
            req.password,
            stored.unwrap_or_else(|| app.dummy_hash.clone()),
        )
        .await;
    let Some(profile) = profile.filter(|_| ok && known) else {
        return Err(refused());
    };
    let issued = start_session(&app, &profile.id).await?;
    Ok(Json(pair(&app, issued).await?))
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a used
/// one again ends the whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn refresh(
    State(app): State<App>,
    Body(req): Body<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let ttl = app.config.refresh_token_ttl_secs as i64;
    match sessions::rotate(&app.db, &req.refresh_token, unix_now(), ttl).await? {
        Ok(issued) => Ok(Json(pair(&app, issued).await?)),
        Err(RefreshRefused::Reused) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "this refresh token was already used; the session has been ended",
        )),
        Err(RefreshRefused::Invalid) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "refresh token unknown, expired or revoked",
        )),
    }
}

/// Ends the session the refresh token belongs to.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "signed out (also when the token was unknown)")))]
pub(crate) async fn logout(
    State(app): State<App>,
    Body(req): Body<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    if let Some((family, _)) = sessions::family_of(&app.db, &req.refresh_token).await? {
        let mut conn = app.db.pool.acquire().await?;
        sessions::revoke_family(&mut conn, &family, unix_now()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password and ends every session of the account, this one included.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = PasswordChange,
    security(("bearer" = [])),
    responses((status = 204, description = "changed; sign in again"), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn change_password(
    State(app): State<App>,
    caller: Caller,
    Body(req): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    check_password(&req.new_password)?;
    let profile = profiles::by_id(&app.db, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let stored = profile
        .password_hash
        .unwrap_or_else(|| app.dummy_hash.clone());
    if !app.hasher.verify(req.current_password, stored).await {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "current password is wrong",
        ));
    }
    let hash = app
        .hasher
        .hash(req.new_password)
        .await
        .map_err(|e| ApiError::internal("hashing", e))?;
    let now = unix_now();
    let mut tx = app.db.begin().await?;
    profiles::set_password(&mut tx, caller.id(), &hash, now).await?;
    sessions::revoke_all(&mut tx, caller.id(), now).await?;
    tx.commit().await?;
    tracing::info!(
        user_id = caller.id(),
        "password changed; every session revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// See [`crate::ControlPlane::dev_token`].
pub(crate) async fn dev_token(app: &App, email: &str) -> Result<String, ApiError> {
    let email = normalise_email(email)?;
    let profile = match profiles::by_email(&app.db, &email).await? {
        Some(p) => p,
        None => {
            let id = new_id();
            let mut tx = app.db.begin().await?;
            let new = profiles::NewProfile {
                id: &id,
                email: &email,
                // No password: this account signs in only through dev tokens.
                password_hash: None,
                display_name: "",
                birth_year: None,
                consent_terms: true,
                consent_marketing: false,
                consent_voice_data: false,
            };
            profiles::insert(&mut tx, &new, unix_now()).await?;
            tx.commit().await?;
            profiles::by_email(&app.db, &email)
                .await?
                .ok_or_else(|| ApiError::not_found("account"))?
        }
    };
    let issued = start_session(app, &profile.id).await?;
    access_token(app, &issued.profile_id, &issued.family_id).await
}
