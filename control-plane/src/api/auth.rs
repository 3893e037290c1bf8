//! Sign-up, sign-in, refresh, sign-out and password change.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Caller;
use super::error::ApiError;
use super::extract::Body;
use crate::app::{App, unix_now};
use crate::db::sessions::{self, Issued, RefreshPolicy, RefreshRefused};
use crate::db::verifications::{self, Outcome};
use crate::db::{new_id, profiles};
use crate::mail::Mail;
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
    /// Required when the account has a password. An account without one (signed up through
    /// a provider) leaves it out and must have signed in within `reauth_window_secs`.
    #[serde(default)]
    current_password: Option<String>,
    new_password: String,
}

/// A verification token from the link in the mail.
#[derive(Debug, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyEmailRequest {
    /// The `token` parameter of the link.
    token: String,
}

/// The result of a verification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmailVerified {
    /// The address now verified.
    email: String,
    /// Always true.
    email_verified: bool,
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

/// A response carrying tokens: never stored by browsers or proxies (RFC 6749 section 5.1).
#[derive(Debug)]
pub(crate) struct Tokens(pub(crate) StatusCode, pub(crate) TokenPair);

impl IntoResponse for Tokens {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (for HTTP/1.0 caches).
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
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

/// Lifetime of a new session's first refresh token: the idle limit, capped by the absolute one.
fn first_refresh_ttl(app: &App) -> i64 {
    app.config
        .refresh_token_ttl_secs
        .min(app.config.session_max_age_secs) as i64
}

pub(crate) async fn start_session(app: &App, profile_id: &str) -> Result<Issued, ApiError> {
    let mut tx = app.db.begin().await?;
    let issued = sessions::start(
        &mut tx,
        profile_id,
        unix_now(),
        first_refresh_ttl(app),
        app.config.max_sessions,
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Creates an account (its e-mail address unverified), signs it in and mails a verification
/// link.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = TokenPair), (status = 409, body = super::error::ErrorBody),
              (status = 403, description = "under the minimum age", body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub(crate) async fn signup(
    State(app): State<App>,
    Body(req): Body<SignupRequest>,
) -> Result<Tokens, ApiError> {
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
    let hash = app.hasher.hash(req.password).await?;
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
        // Anyone can type any address: it is proven by the link mailed below.
        email_verified_at: None,
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
        first_refresh_ttl(&app),
        app.config.max_sessions,
    )
    .await?;
    let ttl = app.config.email.verification_ttl_secs as i64;
    let token = verifications::create(&mut tx, &id, &email, now, ttl).await?;
    tx.commit().await?;
    tracing::info!(user_id = id, "account created");
    // A mail that fails to go out does not undo the account: the user can ask for another.
    send_verification(&app, &id, &email, &token).await;
    Ok(Tokens(StatusCode::CREATED, pair(&app, issued).await?))
}

/// Mails the verification link for `token`; failures are logged, not returned.
async fn send_verification(app: &App, user_id: &str, email: &str, token: &str) {
    let base = app.config.email.link_base_url.trim_end_matches('/');
    let link = format!("{base}/api/auth/verify-email?token={token}");
    let mail = Mail {
        to: email.to_owned(),
        subject: "Confirm your e-mail address".to_owned(),
        body: format!(
            "Open this link to confirm that this address is yours:\r\n\r\n{link}\r\n\r\n\
             It works for {} hours. If you did not sign up, ignore this mail.",
            app.config.email.verification_ttl_secs / 3600
        ),
    };
    match app.mailer.send(&mail).await {
        Ok(()) => tracing::info!(user_id, "verification mail sent"),
        Err(e) => tracing::error!(user_id, error = %e, "verification mail not sent"),
    }
}

/// Signs in with e-mail and password. Starting a fourth session ends the oldest.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn login(
    State(app): State<App>,
    Body(req): Body<LoginRequest>,
) -> Result<Tokens, ApiError> {
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
        .await?;
    let Some(profile) = profile.filter(|_| ok && known) else {
        return Err(refused());
    };
    let issued = start_session(&app, &profile.id).await?;
    Ok(Tokens(StatusCode::OK, pair(&app, issued).await?))
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a used
/// one again ends the whole session, except for the immediately previous token within
/// `refresh_reuse_grace_secs` (two tabs refreshing at once), which gets a further pair.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn refresh(
    State(app): State<App>,
    Body(req): Body<RefreshRequest>,
) -> Result<Tokens, ApiError> {
    let policy = RefreshPolicy {
        ttl: app.config.refresh_token_ttl_secs as i64,
        grace: app.config.refresh_reuse_grace_secs as i64,
        max_age: app.config.session_max_age_secs as i64,
    };
    match sessions::rotate(&app.db, &req.refresh_token, unix_now(), policy).await? {
        Ok(issued) => Ok(Tokens(StatusCode::OK, pair(&app, issued).await?)),
        Err(RefreshRefused::Expired) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_expired",
            "this session reached its maximum age; sign in again",
        )),
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

/// Changes (or, for an account without one, sets) the password and ends every session of the
/// account, this one included.
///
/// An account with a password must give it. An account without one (signed up through a
/// provider) has nothing to give, so possession of an access token is not enough: the session
/// must have been signed into within `reauth_window_secs`, or the change is refused with 403
/// `reauthentication_required`. Otherwise a stolen token could set a password and keep the
/// account forever.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = PasswordChange,
    security(("bearer" = [])),
    responses((status = 204, description = "changed; sign in again"), (status = 401, body = super::error::ErrorBody),
              (status = 403, description = "no password and no recent sign-in", body = super::error::ErrorBody)))]
pub(crate) async fn change_password(
    State(app): State<App>,
    caller: Caller,
    Body(req): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    check_password(&req.new_password)?;
    let profile = profiles::by_id(&app.db, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let now = unix_now();
    if let Some(stored) = profile.password_hash {
        let given = req.current_password.unwrap_or_default();
        if !app.hasher.verify(given, stored).await? {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "current password is wrong",
            ));
        }
    } else {
        let started = sessions::started_at(&app.db, &caller.claims.sid).await?;
        let window = app.config.reauth_window_secs as i64;
        if started.is_none_or(|t| now - t > window) {
            return Err(ApiError::forbidden(
                "reauthentication_required",
                "this account has no password yet; sign in again (with your provider) and set \
                 one within a few minutes",
            ));
        }
    }
    let hash = app.hasher.hash(req.new_password).await?;
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

/// The page the link in the mail opens. It does not verify anything by itself: mail scanners
/// open links, and one opening a link mailed to a victim for an account an attacker created
/// would verify the attacker's claim to the victim's address. The page asks the person to
/// confirm, which posts the token.
#[utoipa::path(get, path = "/api/auth/verify-email", tag = "auth", params(VerifyEmailRequest),
    responses((status = 200, description = "an HTML page with a button that posts the token", content_type = "text/html"),
              (status = 400, body = super::error::ErrorBody)))]
pub(crate) async fn verify_email_page(
    query: Result<Query<VerifyEmailRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(req) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    // Tokens are URL-safe base64; anything else is not ours and is never echoed into HTML.
    let well_formed = !req.token.is_empty()
        && req.token.len() <= 128
        && req
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(invalid_verification_token());
    }
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Confirm your e-mail address</title>\
         <p>Confirm that this e-mail address is yours and belongs to the account that was \
         created with it. If you did not sign up, close this page.</p>\
         <form method=post action=verify-email><input type=hidden name=token value=\"{}\">\
         <button type=submit>Confirm my address</button></form>",
        req.token
    );
    Ok(html(StatusCode::OK, page))
}

/// An HTML answer that is not cached, framed, or leaks its URL (the token) in `Referer`.
fn html(status: StatusCode, page: String) -> Response {
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(headers);
    response
}

fn invalid_verification_token() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_verification_token",
        "this link is unknown, expired, or for an address the account no longer has; \
         ask for a new one",
    )
}

/// Marks the address the token was mailed to verified. Takes JSON (`{"token"}`, answered with
/// JSON) or the form of the page the link opens (answered with a page).
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses((status = 200, body = EmailVerified), (status = 400, body = super::error::ErrorBody)))]
pub(crate) async fn verify_email(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let parsed = if form {
        serde_urlencoded::from_bytes::<VerifyEmailRequest>(&body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<VerifyEmailRequest>(&body).map_err(|e| e.to_string())
    };
    let req = parsed.map_err(|e| ApiError::invalid(format!("expected a token: {e}")))?;
    let verified = verify_email_token(&app, &req.token).await;
    Ok(match (form, verified) {
        (false, Ok(done)) => done.into_response(),
        (true, Ok(_)) => html(
            StatusCode::OK,
            "<!doctype html><meta charset=utf-8><title>Address confirmed</title>\
             <p>Thank you: your e-mail address is confirmed.</p>"
                .to_owned(),
        ),
        (true, Err(e)) if e.code == "invalid_verification_token" => html(
            StatusCode::BAD_REQUEST,
            "<!doctype html><meta charset=utf-8><title>Link not valid</title>\
             <p>This link is unknown, expired, or for an address the account no longer has. \
             Sign in and ask for a new one.</p>"
                .to_owned(),
        ),
        (_, Err(e)) => return Err(e),
    })
}

async fn verify_email_token(app: &App, token: &str) -> Result<Json<EmailVerified>, ApiError> {
    match verifications::consume(&app.db, token, unix_now()).await? {
        Outcome::Verified { profile_id, email } => {
            tracing::info!(user_id = profile_id, "e-mail address verified");
            Ok(Json(EmailVerified {
                email,
                email_verified: true,
            }))
        }
        Outcome::Invalid => Err(invalid_verification_token()),
    }
}

/// Mails a new verification link to the caller's address, at most once per
/// `email.resend_interval_secs`.
#[utoipa::path(post, path = "/api/auth/verify-email/resend", tag = "auth",
    security(("bearer" = [])),
    responses((status = 202, description = "a new link was mailed"),
              (status = 409, description = "already verified", body = super::error::ErrorBody),
              (status = 429, body = super::error::ErrorBody)))]
pub(crate) async fn resend_verification(
    State(app): State<App>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let profile = profiles::by_id(&app.db, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    if profile.email_verified_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_verified",
            "this address is already verified",
        ));
    }
    let now = unix_now();
    let interval = app.config.email.resend_interval_secs as i64;
    if let Some(last) = verifications::last_sent(&app.db, &profile.id).await? {
        let wait = last + interval - now;
        if wait > 0 {
            return Err(ApiError {
                retry_after: Some(wait as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "a verification mail was sent moments ago; check your inbox",
                )
            });
        }
    }
    let ttl = app.config.email.verification_ttl_secs as i64;
    let mut tx = app.db.begin().await?;
    let token = verifications::create(&mut tx, &profile.id, &profile.email, now, ttl).await?;
    tx.commit().await?;
    send_verification(&app, &profile.id, &profile.email, &token).await;
    Ok(StatusCode::ACCEPTED)
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
                email_verified_at: None,
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
