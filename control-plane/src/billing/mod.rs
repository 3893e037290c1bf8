//! Billing with Stripe: Checkout and the billing portal for paying, signed webhooks for what
//! Stripe says happened, and the rules that turn subscriptions into tiers.
//!
//! Every change of money reaches the tier exactly once: each webhook event is applied in one
//! transaction that first records its id (`stripe_events`, insert-if-absent), so retries and
//! the same event at two nodes do nothing the second time; the subscription's own timestamps,
//! not arrival order, decide which snapshot wins.

pub(crate) mod rules;
pub mod signature;
pub(crate) mod stripe;
pub(crate) mod webhook;

pub use stripe::StripeError;

/// Runs the billing sweep every `stripe.sweep_secs` for as long as the control plane exists:
/// accounts whose grace after a failed payment, or whose cancelled period, ended without a
/// later event go back to what their subscriptions still give.
pub(crate) async fn keep_tiers_current(app: std::sync::Weak<crate::app::Inner>) {
    let Some(interval) = app
        .upgrade()
        .map(|app| std::time::Duration::from_secs(app.config.stripe.sweep_secs))
    else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(app) = app.upgrade() else { return };
        if let Err(e) = webhook::sweep(&app.db, crate::app::unix_now()).await {
            tracing::warn!(error = %e, "billing sweep failed; retried at the next interval");
        }
    }
}
