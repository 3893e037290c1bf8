//! The control plane: accounts and auth, tiers and quotas, rate limits, conversations, health.
//!
//! It is an HTTP service. The gateway reaches it only through this public API and the JWKS it
//! publishes, never through its tables; it verifies access tokens with [`token::Verifier`].
//!
//! Storage is SQLite (embedded) or PostgreSQL, chosen by `database_url`; rate limits are in
//! process or in Redis, chosen by `redis_url`. Both configurations pass the same tests.
#![forbid(unsafe_code)]

pub(crate) mod api;
mod app;
pub mod billing;
mod clock;
mod config;
mod db;
mod error;
mod health;
mod mail;
pub mod moderation;
pub mod openapi;
mod password;
pub mod quota;
pub mod ratelimit;
mod service_token;
pub mod tier;
pub mod token;

pub use api::data_plane::SERVICE_TOKEN_HEADER;
pub use api::error::ApiError;
pub use config::{Argon2Config, Config, EmailConfig, OAuthProvider, RateLimitRule, StripeConfig};
pub use error::Error;
pub use health::CheckStatus;
pub use service_token::new_service_token;

use std::sync::{Arc, RwLock};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::app::{App, Inner, unix_now};

/// A running control plane: its storage and limits, ready to serve requests.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    app: App,
}

impl ControlPlane {
    /// Opens storage, runs migrations, loads (or creates) the signing key and prepares limits
    /// as `config` says.
    pub async fn start(config: Config) -> Result<Self, Error> {
        config
            .validate()
            .map_err(|(key, expected)| Error::Config { key, expected })?;
        let connect_timeout = std::time::Duration::from_secs(config.database_connect_timeout_secs);
        let db = db::Db::open(&config.database_url, connect_timeout).await?;
        let policy = token::KeyPolicy {
            rotation_secs: config.signing_key_rotation_secs as i64,
            reload_secs: config.signing_key_reload_secs as i64,
            access_ttl_secs: config.access_token_ttl_secs as i64,
        };
        let cipher = token::KeyCipher::new(&config.signing_key_secret)?;
        let keys = token::KeyRing::load(&db, unix_now(), policy, cipher).await?;
        let gate = password::Gate::new(
            config.password_hash_concurrency,
            std::time::Duration::from_millis(config.password_hash_queue_ms),
        );
        let hasher = password::Hasher::new(&config.argon2, gate).map_err(|_| Error::Config {
            key: "argon2",
            expected: "valid argon2 parameters",
        })?;
        // Random, so no one can know a password that matches it (it once was a constant, and
        // passwordless accounts were checked against it).
        let dummy_hash = hasher
            .hash(URL_SAFE_NO_PAD.encode(db::random_bytes::<24>()))
            .await
            .map_err(|_| Error::Config {
                key: "argon2",
                expected: "valid argon2 parameters",
            })?;
        let limiter = ratelimit::Limiter::new(&config).await?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|_| Error::Config {
                key: "llm_url",
                expected: "an HTTP client could be built",
            })?;
        let service_tokens = service_token::ServiceTokens::new(&config.service_tokens);
        let config_outbox = config.email.outbox_dir.clone();
        let stripe = billing_client(&config.stripe)?;
        let app = Arc::new(Inner {
            config,
            db,
            keys,
            hasher,
            limiter,
            http,
            service_tokens,
            verifier: RwLock::new(None),
            dummy_hash,
            mailer: Box::new(mail::Outbox::new(&config_outbox)),
            stripe,
        });
        tokio::spawn(keep_keys_current(Arc::downgrade(&app)));
        if app.stripe.is_some() {
            tokio::spawn(billing::keep_tiers_current(Arc::downgrade(&app)));
        }
        Ok(Self { app })
    }

    /// The HTTP API this control plane serves. `/healthz` and `/readyz` are added by the
    /// process that hosts it, which may host the gateway too.
    ///
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that callers who
    /// have not signed in are rate-limited per address.
    pub fn router(&self) -> Router {
        // The document describes the API, so it sits beside it rather than inside it.
        api::router(self.app.clone()).route("/openapi.json", axum::routing::get(openapi::serve))
    }

    /// Readiness checks for `/readyz`: one `(name, result)` per dependency (database, Redis,
    /// providers, billing); an `Err` says what is wrong and makes the process not ready. Redis
    /// is never an `Err` here (the limiter carries on without it); [`ControlPlane::health`]
    /// reports it as degraded.
    pub async fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        health::readiness(&self.app)
            .await
            .into_iter()
            .map(|(name, status)| (name, status.into_readiness()))
            .collect()
    }

    /// The same checks as [`ControlPlane::readiness`], with dependencies the service can run
    /// without (Redis) reported as [`CheckStatus::Degraded`] instead of failing.
    pub async fn health(&self) -> Vec<(&'static str, CheckStatus)> {
        health::readiness(&self.app).await
    }

    /// Rate-limit checks Redis could not answer since start-up (fallbacks and fail-opens).
    pub fn rate_limit_fallbacks(&self) -> ratelimit::FallbackCounts {
        self.app.limiter.fallback_counts()
    }

    /// The configuration this control plane runs with.
    pub fn config(&self) -> &Config {
        &self.app.config
    }

    /// A development access token for `email` (for the demo and tests): creates the account on
    /// the free tier if needed, starts a real session and signs a token exactly as sign-in
    /// would. Anyone who can call this can act as any user: keep it out of public endpoints.
    pub async fn dev_token(&self, email: &str) -> Result<String, ApiError> {
        api::auth::dev_token(&self.app, email).await
    }

    /// Replaces the signing key now (the old one stays in the JWKS until its tokens expire) and
    /// returns the new key id. Start-up also rotates a key older than
    /// `signing_key_rotation_secs`.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let kid = self.app.keys.rotate(&self.app.db, unix_now()).await?;
        self.app.forget_key_set();
        Ok(kid)
    }

    /// The id of the key this node signs new tokens with.
    pub fn signing_key_id(&self) -> String {
        self.app.keys.kid()
    }

    /// Moves an account to `tier` (what a billing webhook does once payment succeeds). New
    /// limits apply at once; tokens carry the new tier from their next refresh. Returns whether
    /// the account exists.
    pub async fn set_tier(&self, user_id: &str, tier: tier::Tier) -> Result<bool, ApiError> {
        Ok(db::profiles::set_tier(&self.app.db, user_id, tier.as_str()).await?)
    }

    /// Runs the billing sweep as of `now` (unix seconds) instead of waiting for the periodic one
    /// (`stripe.sweep_secs`): accounts whose grace after a failed payment, or whose cancelled
    /// period, ended by then move to the tier their subscriptions still give. Returns how many
    /// changed. Tests pass a time days ahead rather than sleeping.
    pub async fn billing_sweep(&self, now: i64) -> Result<usize, ApiError> {
        Ok(billing::webhook::sweep(&self.app.db, now).await?)
    }

    /// A verifier over this control plane's currently published keys, as a gateway would build
    /// from `/.well-known/jwks.json`.
    pub async fn verifier(&self) -> Result<token::Verifier, String> {
        token::KeyRing::verifier(
            &self.app.db,
            unix_now(),
            &self.app.config.issuer,
            &self.app.config.audience,
        )
        .await
    }
}

/// Stripe's client when billing is on; says at start-up whether it is and what is missing.
fn billing_client(stripe: &StripeConfig) -> Result<Option<billing::stripe::Stripe>, Error> {
    if stripe.disabled {
        tracing::info!(
            "billing is off (control_plane.stripe.disabled): everyone keeps their stored tier and \
             /api/subscription/* answers 503 billing_disabled"
        );
        return Ok(None);
    }
    let timeout = std::time::Duration::from_millis(stripe.request_timeout_ms);
    let client = billing::stripe::Stripe::new(&stripe.api_base, stripe.secret_key.clone(), timeout)
        .map_err(|_| Error::Config {
            key: "stripe.api_base",
            expected: "a URL an HTTP client can be built for",
        })?;
    let mut missing = Vec::new();
    if stripe.secret_key.is_empty() {
        missing.push("secret_key");
    }
    if stripe.webhook_secrets.is_empty() {
        missing.push("webhook_secrets");
    }
    if stripe.price_plus.is_empty() || stripe.price_pro.is_empty() {
        missing.push("price_plus/price_pro");
    }
    if missing.is_empty() {
        tracing::info!(api_base = %stripe.api_base, "billing is on (Stripe)");
    } else {
        tracing::warn!(
            ?missing,
            "billing is on but control_plane.stripe lacks some keys"
        );
    }
    Ok(Some(client))
}

/// Re-reads the newest signing key every `signing_key_reload_secs` (rotating it when it is too
/// old), for as long as the control plane exists: a key another node rotated is signed with
/// here within one interval, and a key that ages out is replaced without a restart.
async fn keep_keys_current(app: std::sync::Weak<Inner>) {
    let Some(interval) = app
        .upgrade()
        .map(|app| std::time::Duration::from_secs(app.config.signing_key_reload_secs))
    else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(app) = app.upgrade() else { return };
        match app.keys.reload(&app.db, unix_now()).await {
            Ok(Some(_)) => app.forget_key_set(),
            Ok(None) => {}
            // The database may be briefly away; the current key stays valid for a while yet.
            Err(e) => tracing::warn!(error = %e, "reloading the signing key failed"),
        }
    }
}
