//! Readiness: one named check per dependency.

use crate::app::App;

pub(crate) async fn readiness(app: &App) -> Vec<(&'static str, Result<(), String>)> {
    let mut checks = vec![("database", app.db.ping().await)];
    if let Some(redis) = app.limiter.redis_ping().await {
        checks.push(("redis", redis));
    }
    if !app.config.llm_url.is_empty() {
        // Any HTTP answer means the provider is reachable; only a transport failure is not.
        let probe = app.http.get(&app.config.llm_url).send().await;
        checks.push((
            "llm_provider",
            probe
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", app.config.llm_url)),
        ));
    }
    let stripe = &app.config.stripe;
    let billing = if stripe.disabled || stripe.secret_key.expose().starts_with("sk_") {
        Ok(())
    } else {
        Err(
            "stripe.secret_key is missing (expected sk_...) and stripe.disabled is false"
                .to_owned(),
        )
    };
    checks.push(("stripe", billing));
    checks
}
