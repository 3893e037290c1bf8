//! The production [`CallerVerifier`]: the control plane's access tokens checked against the
//! key set it publishes, cached here and refreshed in the background.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use access_token::{Verifier, VerifyError};

use super::{AuthError, Caller, CallerVerifier};

/// Verifies access tokens locally against a cached copy of the control plane's key set.
///
/// Verification never waits on the network: a token signed by a key not yet in the cache is
/// refused and a refresh is requested, so the caller's retry after a key rotation succeeds.
pub struct JwksVerifier {
    keys: RwLock<Option<Verifier>>,
    calls_per_tier: BTreeMap<String, u32>,
    refresh: tokio::sync::Notify,
}

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("calls_per_tier", &self.calls_per_tier)
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// A verifier with no keys yet (every token is refused until [`install`](Self::install)).
    /// `calls_per_tier` maps a token's `tier` claim to the calls its holder may keep open at
    /// once; a tier not listed gets one.
    pub fn new(calls_per_tier: BTreeMap<String, u32>) -> Arc<Self> {
        Arc::new(Self {
            keys: RwLock::new(None),
            calls_per_tier,
            refresh: tokio::sync::Notify::new(),
        })
    }

    /// Replaces the cached key set.
    pub fn install(&self, verifier: Verifier) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(verifier);
    }

    /// Keeps the key set fresh with `load`: every `interval`, and soon after a token names an
    /// unknown key (at most once per `min_gap`). Load the first key set before serving (with
    /// the same `load`), so no caller meets an empty cache. Runs until the task is dropped.
    pub async fn keep_fresh<F, Fut>(
        self: Arc<Self>,
        mut load: F,
        interval: Duration,
        min_gap: Duration,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verifier, String>>,
    {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.refresh.notified() => {}
            }
            match load().await {
                Ok(verifier) => self.install(verifier),
                Err(reason) => tracing::warn!(%reason, "cannot load the token key set"),
            }
            tokio::time::sleep(min_gap).await;
        }
    }
}

impl CallerVerifier for JwksVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let Some(verifier) = keys.as_ref() else {
            return Err(AuthError::Invalid(
                "the gateway has not loaded the control plane's keys yet; retry shortly".to_owned(),
            ));
        };
        let claims = verifier.verify(token).map_err(|e| {
            if e == VerifyError::UnknownKey {
                self.refresh.notify_one();
            }
            AuthError::Invalid(e.to_string())
        })?;
        if !claims.permissions.iter().any(|p| p == "voice") {
            return Err(AuthError::Forbidden(
                "the token does not carry the `voice` permission".to_owned(),
            ));
        }
        let max_concurrent_calls = self.calls_per_tier.get(&claims.tier).copied().unwrap_or(1);
        Ok(Caller {
            user_id: claims.sub,
            tier: claims.tier,
            max_concurrent_calls,
        })
    }
}

/// Fetches `{control_plane_url}/.well-known/jwks.json` and builds a verifier accepting tokens
/// with this issuer and audience.
pub async fn fetch_jwks(
    client: &reqwest::Client,
    control_plane_url: &str,
    issuer: &str,
    audience: &str,
) -> Result<Verifier, String> {
    let url = format!(
        "{}/.well-known/jwks.json",
        control_plane_url.trim_end_matches('/')
    );
    let response = client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    Verifier::from_jwks_json(&body, issuer, audience).map_err(|e| format!("{url}: {e}"))
}
