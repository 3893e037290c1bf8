//! Sign-in with Google, Discord or any OAuth2 provider: authorization code + PKCE (S256).
//!
//! `GET /api/auth/oauth/{provider}/start` remembers a state and PKCE verifier and redirects the
//! browser to the provider. The provider sends it back to `/callback` with a code, which is
//! exchanged (with the verifier) for an access token, which fetches the user's identity. A
//! known identity signs in; otherwise an address the provider confirmed links to the existing
//! account with that address, but only if the account has verified it too (else anyone could
//! sign up with someone's address first and have their provider sign-in land in the
//! squatter's account: 409 `account_exists_unverified`); otherwise an account is created,
//! provided `/start` was given a birth year (13+) and terms consent.
//!
//! The state is bound to the browser that started the sign-in: `/start` sets an HttpOnly,
//! SameSite=Lax cookie holding a random nonce (Secure when the redirect URI is https), whose
//! hash is stored with the state; `/callback` refuses a state presented without that cookie.
//! So an attacker cannot have a victim's browser finish the attacker's sign-in (login CSRF),
//! nor finish a victim's sign-in with an intercepted code and state in another browser.

use aws_lc_rs::digest;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{Tokens, age_gate, normalise_email, pair, start_session};
use super::error::ApiError;
use crate::app::{App, unix_now};
use crate::config::OAuthProvider;
use crate::db::oauth::{self, PendingSignIn};
use crate::db::{hex, new_id, profiles, random_bytes};

/// How long a started sign-in may take, in seconds.
const STATE_TTL_SECS: i64 = 600;

/// The cookie binding a sign-in to the browser that started it.
const NONCE_COOKIE: &str = "cp_oauth_nonce";

fn nonce_hash(nonce: &str) -> String {
    hex(digest::digest(&digest::SHA256, nonce.as_bytes()).as_ref())
}

/// Path of the callback route, where the browser must send the cookie back.
fn callback_path(provider: &str) -> String {
    format!("/api/auth/oauth/{provider}/callback")
}

/// `Set-Cookie` for the nonce (`max_age` 0 clears it). Secure when the provider sends the
/// browser back over https: then this service is served over TLS.
fn nonce_cookie(p: &OAuthProvider, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    let secure = if p.redirect_uri.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{NONCE_COOKIE}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        callback_path(&p.name)
    );
    HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal("nonce cookie", e))
}

/// The nonce cookie the browser sent, if any.
fn nonce_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == NONCE_COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// Sign-up details, needed only when the provider's identity is new to us.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartQuery {
    /// Year of birth (accounts need age 13+).
    birth_year: Option<i64>,
    /// The terms of service were accepted.
    consent_terms: Option<bool>,
}

/// What the provider appends to the redirect. Providers add their own parameters, so unknown
/// ones are ignored here.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn provider(app: &App, name: &str) -> Result<OAuthProvider, ApiError> {
    app.config
        .oauth_providers
        .iter()
        .find(|p| p.name == name)
        .map(OAuthProvider::resolved)
        .ok_or_else(|| ApiError::not_found("sign-in provider"))
}

fn oauth_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Starts a sign-in: redirects to the provider.
#[utoipa::path(get, path = "/api/auth/oauth/{provider}/start", tag = "auth",
    params(("provider" = String, Path), StartQuery),
    responses((status = 303, description = "redirect to the provider's consent page; sets the `cp_oauth_nonce` cookie the callback requires"),
              (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn start(
    State(app): State<App>,
    Path(name): Path<String>,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let p = provider(&app, &name)?;
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let challenge =
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let pending = PendingSignIn {
        code_verifier: verifier,
        birth_year: q.birth_year,
        consent_terms: q.consent_terms.unwrap_or(false),
        browser_nonce_hash: nonce_hash(&nonce),
    };
    oauth::save_state(
        &app.db,
        &state,
        &p.name,
        &pending,
        unix_now(),
        STATE_TTL_SECS,
    )
    .await?;
    let scope = p.scopes.join(" ");
    let params = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", p.client_id.as_str()),
        ("redirect_uri", p.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .map_err(|e| ApiError::internal("encoding authorize URL", e))?;
    let sep = if p.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let cookie = nonce_cookie(&p, &nonce, STATE_TTL_SECS)?;
    let mut response = Redirect::to(&format!("{}{sep}{params}", p.authorize_url)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Finishes a sign-in: exchanges the code and answers with a session's tokens. Requires the
/// `cp_oauth_nonce` cookie `/start` set in this browser, and clears it.
#[utoipa::path(get, path = "/api/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path), CallbackQuery),
    responses((status = 200, body = super::auth::TokenPair), (status = 401, body = super::error::ErrorBody),
              (status = 403, body = super::error::ErrorBody),
              (status = 409, description = "an account with this address exists but has not verified it", body = super::error::ErrorBody),
              (status = 502, body = super::error::ErrorBody)))]
pub(crate) async fn callback(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let p = provider(&app, &name)?;
    let mut response = match finish(&app, &p, &headers, query).await {
        Ok(tokens) => tokens.into_response(),
        Err(e) => e.into_response(),
    };
    // The nonce has served (or failed) its one sign-in either way.
    response
        .headers_mut()
        .insert(header::SET_COOKIE, nonce_cookie(&p, "", 0)?);
    Ok(response)
}

async fn finish(
    app: &App,
    p: &OAuthProvider,
    headers: &HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Tokens, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    if let Some(error) = q.error {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "oauth_denied",
            format!("the provider said: {error}"),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "code and state are required",
        ));
    };
    let now = unix_now();
    // Taken (so it cannot be tried again) before the browser check: a state presented from
    // the wrong browser is spent.
    let pending = oauth::take_state(&app.db, &state, &p.name, now)
        .await?
        .ok_or_else(|| {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_oauth_state",
                "unknown, used or expired sign-in state",
            )
        })?;
    let same_browser =
        nonce_from(headers).is_some_and(|nonce| nonce_hash(&nonce) == pending.browser_nonce_hash);
    if !same_browser {
        tracing::warn!(
            provider = p.name,
            "OAuth callback without the starting browser's cookie"
        );
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "oauth_browser_mismatch",
            "this sign-in was started in another browser (or its cookie is gone); start again",
        ));
    }
    let identity = fetch_identity(app, p, &code, &pending.code_verifier).await?;

    let profile_id = match oauth::identity(&app.db, &p.name, &identity.subject).await? {
        Some(id) => id,
        None => link_or_create(app, &p.name, &identity, &pending, now).await?,
    };
    let issued = start_session(app, &profile_id).await?;
    tracing::info!(
        user_id = profile_id,
        provider = p.name,
        "signed in with OAuth"
    );
    Ok(Tokens(StatusCode::OK, pair(app, issued).await?))
}

struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
}

/// Code -> provider access token (with the PKCE verifier) -> user info.
async fn fetch_identity(
    app: &App,
    p: &OAuthProvider,
    code: &str,
    verifier: &str,
) -> Result<Identity, ApiError> {
    let upstream = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(provider = p.name, error = %e, "{what}");
        oauth_error(
            StatusCode::BAD_GATEWAY,
            "oauth_provider_error",
            format!("{what} at {} failed", p.name),
        )
    };
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", p.redirect_uri.as_str()),
        ("client_id", p.client_id.as_str()),
        ("client_secret", p.client_secret.expose()),
        ("code_verifier", verifier),
    ])
    .map_err(|e| ApiError::internal("encoding token request", e))?;
    let resp = app
        .http
        .post(&p.token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form)
        .send()
        .await
        .map_err(|e| upstream("token exchange", &e))?;
    if resp.status().is_client_error() {
        // The code was refused (wrong, reused, or the verifier did not match).
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "oauth_code_rejected",
            "the provider refused the sign-in code",
        ));
    }
    let token: Value = resp
        .error_for_status()
        .map_err(|e| upstream("token exchange", &e))?
        .json()
        .await
        .map_err(|e| upstream("token response", &e))?;
    let access = token["access_token"]
        .as_str()
        .ok_or_else(|| upstream("token response", &"no access_token"))?;
    let info: Value = app
        .http
        .get(&p.userinfo_url)
        .bearer_auth(access)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("user info", &e))?
        .json()
        .await
        .map_err(|e| upstream("user info", &e))?;
    // OIDC uses `sub` and `email_verified`; Discord uses `id` and `verified`.
    let subject = match (&info["sub"], &info["id"]) {
        (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
        (_, Value::Number(n)) => n.to_string(),
        _ => return Err(upstream("user info", &"no subject")),
    };
    let email_verified = info["email_verified"]
        .as_bool()
        .or_else(|| info["verified"].as_bool())
        .unwrap_or(false);
    Ok(Identity {
        subject,
        email: info["email"].as_str().map(str::to_owned),
        email_verified,
    })
}

async fn link_or_create(
    app: &App,
    provider: &str,
    identity: &Identity,
    pending: &PendingSignIn,
    now: i64,
) -> Result<String, ApiError> {
    let email = match (&identity.email, identity.email_verified) {
        (Some(email), true) => normalise_email(email)?,
        _ => {
            return Err(ApiError::forbidden(
                "email_unverified",
                "the provider did not confirm an e-mail address for this account",
            ));
        }
    };
    let existing = profiles::by_email(&app.db, &email).await?;
    let mut tx = app.db.begin().await?;
    let profile_id = if let Some(existing) = existing {
        // The provider vouches for the address, but the account holder never proved it: the
        // account may belong to someone who typed this address without owning it.
        if existing.email_verified_at.is_none() {
            tracing::warn!(
                user_id = existing.id,
                provider,
                "OAuth sign-in refused: existing account has not verified its address"
            );
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "account_exists_unverified",
                "an account with this e-mail address exists but has not confirmed it; sign in \
                 with its password and confirm the address (link in the mail) before signing \
                 in with this provider",
            ));
        }
        existing.id
    } else {
        let Some(birth_year) = pending.birth_year.filter(|_| pending.consent_terms) else {
            return Err(ApiError::forbidden(
                "signup_incomplete",
                "new accounts need birth_year and consent_terms=true at /start",
            ));
        };
        age_gate(birth_year, now)?;
        let id = new_id();
        let new = profiles::NewProfile {
            id: &id,
            email: &email,
            password_hash: None,
            display_name: "",
            birth_year: Some(birth_year),
            consent_terms: true,
            consent_marketing: false,
            consent_voice_data: false,
            // Only reached with an address the provider confirmed.
            email_verified_at: Some(now),
        };
        if !profiles::insert(&mut tx, &new, now).await? {
            return Err(ApiError::conflict(
                "an account with this e-mail address was just created; retry",
            ));
        }
        id
    };
    oauth::link(&mut tx, provider, &identity.subject, &profile_id, now).await?;
    tx.commit().await?;
    Ok(profile_id)
}
