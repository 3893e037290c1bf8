//! Readiness: one named check per dependency.

use crate::app::App;

/// The state of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckStatus {
    /// Working.
    Ok,
    /// Not working, but the service carries on with weaker guarantees (the reason says how);
    /// the process stays ready.
    Degraded(String),
    /// Not working; the process is not ready. The reason says what is wrong.
    Failing(String),
}

impl CheckStatus {
    /// Readiness as a plain result: only [`CheckStatus::Failing`] is an error.
    pub fn into_readiness(self) -> Result<(), String> {
        match self {
            Self::Ok | Self::Degraded(_) => Ok(()),
            Self::Failing(reason) => Err(reason),
        }
    }
}

fn hard(result: Result<(), String>) -> CheckStatus {
    result.map_or_else(CheckStatus::Failing, |()| CheckStatus::Ok)
}

pub(crate) async fn readiness(app: &App) -> Vec<(&'static str, CheckStatus)> {
    let mut checks = vec![("database", hard(app.db.ping().await))];
    // A Redis outage degrades rate limiting (see `ratelimit`); failing readiness for it would
    // pull every node at once.
    if let Some(redis) = app.limiter.redis_ping().await {
        checks.push((
            "redis",
            redis.map_or_else(CheckStatus::Degraded, |()| CheckStatus::Ok),
        ));
    }
    if !app.config.llm_url.is_empty() {
        // Any HTTP answer means the provider is reachable; only a transport failure is not.
        let probe = app.http.get(&app.config.llm_url).send().await;
        checks.push((
            "llm_provider",
            hard(
                probe
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", app.config.llm_url)),
            ),
        ));
    }
    let stripe = &app.config.stripe;
    let key = stripe.secret_key.expose();
    let billing = match &app.stripe {
        None => Ok(()),
        Some(_) if !(key.starts_with("sk_") || key.starts_with("rk_")) => Err(
            "stripe.secret_key is missing (expected sk_... or rk_...) and stripe.disabled is false"
                .to_owned(),
        ),
        // Any HTTP answer means Stripe is reachable; only a transport failure is not.
        Some(client) => client.reachable().await,
    };
    checks.push(("stripe", hard(billing)));
    checks
}
