//! Shared state behind every handler.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::Db;
use crate::password::Hasher;
use crate::ratelimit::Limiter;
use crate::service_token::ServiceTokens;
use crate::token::{Claims, KeyRing, Verifier, VerifyError};

/// Shortest time between two reloads of the published keys.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Handlers' state: cheap to clone.
pub(crate) type App = Arc<Inner>;

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) db: Db,
    pub(crate) keys: KeyRing,
    pub(crate) hasher: Hasher,
    pub(crate) limiter: Limiter,
    pub(crate) http: reqwest::Client,
    /// Credentials the data plane presents on the routes only it may call.
    pub(crate) service_tokens: ServiceTokens,
    /// Verifier over the published keys, rebuilt when a token names a key it does not know
    /// (another node rotated).
    pub(crate) verifier: RwLock<Option<(Verifier, Instant)>>,
    /// A hash checked when an e-mail address is unknown, so a failed login takes as long
    /// whether or not the account exists.
    pub(crate) dummy_hash: String,
    /// Sends verification mail (by default into `email.outbox_dir`).
    pub(crate) mailer: Box<dyn crate::mail::Mailer>,
    /// Stripe's API, when billing is on (`stripe.disabled = false`).
    pub(crate) stripe: Option<crate::billing::stripe::Stripe>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("engine", &self.db.engine)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Drops the cached key set, so the next token verified reloads it (a key was rotated).
    pub(crate) fn forget_key_set(&self) {
        *self
            .verifier
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Verifies an access token against the published keys (signature, alg, iss, aud, exp).
    pub(crate) async fn verify_token(&self, token: &str) -> Result<Claims, VerifyError> {
        let cached = self
            .verifier
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((verifier, loaded)) = cached {
            match verifier.verify(token) {
                // Reload at most every few seconds, so tokens naming made-up keys cannot turn
                // into one database query each.
                Err(VerifyError::UnknownKey) if loaded.elapsed() < KEY_RELOAD_INTERVAL => {
                    return Err(VerifyError::UnknownKey);
                }
                Err(VerifyError::UnknownKey) => {}
                other => return other,
            }
        }
        let (issuer, audience) = (&self.config.issuer, &self.config.audience);
        let fresh = KeyRing::verifier(&self.db, unix_now(), issuer, audience)
            .await
            .map_err(VerifyError::BadKeySet)?;
        let result = fresh.verify(token);
        *self
            .verifier
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((fresh, Instant::now()));
        result
    }
}

pub(crate) use crate::clock::unix_now;
