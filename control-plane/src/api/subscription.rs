//! `/api/subscription/*`: the caller's subscription, Checkout and portal sessions,
//! cancellation at period end, the billing history, and Stripe's signed webhook.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::Caller;
use super::error::ApiError;
use super::extract::Body;
use crate::app::{App, unix_now};
use crate::billing::webhook::{self, Outcome};
use crate::billing::{StripeError, signature};
use crate::db::billing as store;
use crate::db::profiles;
use crate::tier::Tier;

/// The webhook's path: signed by Stripe, no bearer token, and exempt from rate limits.
pub(crate) const WEBHOOK_PATH: &str = "/api/subscription/webhook";

/// Largest webhook body accepted (Stripe events with many invoice lines exceed the API's
/// general limit).
pub(crate) const WEBHOOK_MAX_BYTES: usize = 512 * 1024;

fn billing_on(app: &App) -> Result<&crate::billing::stripe::Stripe, ApiError> {
    match &app.stripe {
        Some(stripe) if !app.config.stripe.disabled => Ok(stripe),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "billing_disabled",
            "billing is not enabled on this service",
        )),
    }
}

fn stripe_failed(err: &StripeError) -> ApiError {
    tracing::warn!(error = %err, "Stripe call failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "stripe_unavailable",
        "the payment provider did not complete the request; try again",
    )
}

/// One subscription as the owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionView {
    /// The tier this subscription pays for.
    tier: Tier,
    /// Stripe's status (`active`, `past_due`, `canceled`, ...).
    status: String,
    /// When the paid period ends (unix seconds).
    current_period_end: Option<i64>,
    /// Whether it ends at `current_period_end` instead of renewing.
    cancel_at_period_end: bool,
    /// After a failed payment: the tier is kept until then (unix seconds).
    grace_until: Option<i64>,
}

/// The caller's tier and subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Current {
    /// The tier in force now (what quotas use; tokens carry it from their next refresh).
    tier: Tier,
    /// The newest subscription, if any.
    subscription: Option<SubscriptionView>,
}

/// The caller's tier and newest subscription.
#[utoipa::path(get, path = "/api/subscription/current", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = Current), (status = 401, body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn current(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Current>, ApiError> {
    billing_on(&app)?;
    let tier = super::usage::tier_of(&app, caller.id()).await?;
    let mut conn = app.db.pool.acquire().await?;
    let subs = store::of_profile(&mut conn, caller.id()).await?;
    let subscription = subs.into_iter().next().map(|s| SubscriptionView {
        tier: Tier::parse(&s.tier).unwrap_or(Tier::Free),
        status: s.status,
        current_period_end: s.current_period_end,
        cancel_at_period_end: s.cancel_at_period_end,
        grace_until: s.grace_until,
    });
    Ok(Json(Current { tier, subscription }))
}

/// The tier to pay for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutRequest {
    /// `plus` or `pro`.
    tier: Tier,
}

/// Where to send the browser.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionUrl {
    /// Stripe's session id.
    id: String,
    /// The page to open.
    url: String,
}

fn is_live(status: &str) -> bool {
    matches!(
        status,
        "active" | "trialing" | "past_due" | "unpaid" | "incomplete"
    )
}

/// Starts a Stripe Checkout session (subscription mode) for the tier's price; returns its URL.
/// The same request within five minutes gets the same session (idempotency key).
#[utoipa::path(post, path = "/api/subscription/create-checkout", tag = "billing",
    security(("bearer" = [])), request_body = CheckoutRequest,
    responses((status = 200, body = SessionUrl),
              (status = 409, description = "already_subscribed: change plans in the portal", body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody),
              (status = 502, description = "stripe_unavailable", body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn create_checkout(
    State(app): State<App>,
    caller: Caller,
    Body(req): Body<CheckoutRequest>,
) -> Result<Json<SessionUrl>, ApiError> {
    let stripe = billing_on(&app)?;
    let cfg = &app.config.stripe;
    let price = match req.tier {
        Tier::Plus => &cfg.price_plus,
        Tier::Pro => &cfg.price_pro,
        Tier::Free => return Err(ApiError::invalid("tier: expected plus or pro")),
    };
    if price.is_empty() {
        return Err(ApiError::invalid("tier: no price is configured for it"));
    }
    let profile = profiles::by_id(&app.db, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let mut conn = app.db.pool.acquire().await?;
    let subs = store::of_profile(&mut conn, caller.id()).await?;
    drop(conn);
    if subs.iter().any(|s| is_live(&s.status)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_subscribed",
            "a subscription is already running; change plans in the billing portal",
        ));
    }
    let customer = subs.iter().find_map(|s| s.stripe_customer_id.clone());
    let tier = req.tier.as_str();
    let mut form = vec![
        ("mode", "subscription"),
        ("line_items[0][price]", price.as_str()),
        ("line_items[0][quantity]", "1"),
        ("success_url", cfg.success_url.as_str()),
        ("cancel_url", cfg.cancel_url.as_str()),
        ("client_reference_id", profile.id.as_str()),
        ("metadata[profile_id]", profile.id.as_str()),
        ("metadata[tier]", tier),
        // Copied onto the subscription, so its own events name the account even when they
        // arrive before the checkout's.
        (
            "subscription_data[metadata][profile_id]",
            profile.id.as_str(),
        ),
        ("subscription_data[metadata][tier]", tier),
    ];
    match &customer {
        Some(c) => form.push(("customer", c.as_str())),
        None => form.push(("customer_email", profile.email.as_str())),
    }
    // A double click (or a retried request) within five minutes gets the same session.
    let key = format!("checkout-{}-{tier}-{}", profile.id, unix_now() / 300);
    let session = stripe
        .post("/v1/checkout/sessions", &form, &key)
        .await
        .map_err(|e| stripe_failed(&e))?;
    session_url(&session)
}

fn session_url(session: &serde_json::Value) -> Result<Json<SessionUrl>, ApiError> {
    match (session["id"].as_str(), session["url"].as_str()) {
        (Some(id), Some(url)) => Ok(Json(SessionUrl {
            id: id.to_owned(),
            url: url.to_owned(),
        })),
        _ => Err(stripe_failed(&StripeError::Api {
            status: 200,
            message: "session without id or url".to_owned(),
        })),
    }
}

/// Opens a Stripe billing-portal session (change plan, payment method, invoices).
#[utoipa::path(post, path = "/api/subscription/portal", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = SessionUrl),
              (status = 409, description = "no_subscription: nothing to manage yet", body = super::error::ErrorBody),
              (status = 502, description = "stripe_unavailable", body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn portal(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<SessionUrl>, ApiError> {
    let stripe = billing_on(&app)?;
    let mut conn = app.db.pool.acquire().await?;
    let subs = store::of_profile(&mut conn, caller.id()).await?;
    drop(conn);
    let Some(customer) = subs.iter().find_map(|s| s.stripe_customer_id.clone()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_subscription",
            "there is no subscription to manage yet",
        ));
    };
    let form = [
        ("customer", customer.as_str()),
        ("return_url", app.config.stripe.portal_return_url.as_str()),
    ];
    let key = format!("portal-{}-{}", caller.id(), unix_now() / 60);
    let session = stripe
        .post("/v1/billing_portal/sessions", &form, &key)
        .await
        .map_err(|e| stripe_failed(&e))?;
    session_url(&session)
}

/// Cancels the running subscription at the end of its paid period (the tier stays until then).
#[utoipa::path(post, path = "/api/subscription/cancel", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = Current),
              (status = 409, description = "no_subscription", body = super::error::ErrorBody),
              (status = 502, description = "stripe_unavailable", body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn cancel(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Current>, ApiError> {
    let stripe = billing_on(&app)?;
    let mut conn = app.db.pool.acquire().await?;
    let subs = store::of_profile(&mut conn, caller.id()).await?;
    drop(conn);
    let Some(sub) = subs.into_iter().find(|s| is_live(&s.status)) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_subscription",
            "there is no running subscription to cancel",
        ));
    };
    let path = format!("/v1/subscriptions/{}", sub.stripe_subscription_id);
    let key = format!("cancel-{}", sub.stripe_subscription_id);
    let answer = stripe
        .post(&path, &[("cancel_at_period_end", "true")], &key)
        .await
        .map_err(|e| stripe_failed(&e))?;
    let now = unix_now();
    let mut tx = app.db.begin().await?;
    let tier = store::lock_profile(&mut tx, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    // Stripe's `updated` event confirms this later; until then the answer shows it already.
    if let Some(mut s) = store::by_stripe_id(&mut tx, &sub.stripe_subscription_id).await? {
        s.cancel_at_period_end = true;
        s.current_period_end = answer["current_period_end"]
            .as_i64()
            .or(s.current_period_end);
        store::upsert(&mut tx, &s, now).await?;
    }
    let entry = store::AuditEntry {
        event_id: None,
        kind: "cancel_requested".to_owned(),
        from_tier: tier.clone(),
        to_tier: tier,
        amount_cents: None,
        currency: None,
        created_at: now,
    };
    store::audit(&mut tx, caller.id(), &entry).await?;
    tx.commit().await?;
    current(State(app), caller).await
}

/// One entry of the billing history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryEntry {
    /// What happened: a Stripe event type (`invoice.payment_succeeded`, ...),
    /// `cancel_requested`, or `period_or_grace_ended`.
    kind: String,
    /// The Stripe event, when one caused it.
    event_id: Option<String>,
    /// Tier before.
    from_tier: String,
    /// Tier after.
    to_tier: String,
    /// Amount in the currency's smallest unit, for money events.
    amount_cents: Option<i64>,
    /// ISO currency code, for money events.
    currency: Option<String>,
    /// When it was recorded (unix seconds).
    created_at: i64,
}

/// The caller's billing history: money events and tier changes, newest first (at most 100).
#[utoipa::path(get, path = "/api/subscription/history", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = Vec<HistoryEntry>), (status = 401, body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn history(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    billing_on(&app)?;
    let rows = store::history(&app.db, caller.id(), 100).await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| HistoryEntry {
                kind: e.kind,
                event_id: e.event_id,
                from_tier: e.from_tier,
                to_tier: e.to_tier,
                amount_cents: e.amount_cents,
                currency: e.currency,
                created_at: e.created_at,
            })
            .collect(),
    ))
}

/// What the webhook did with a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAnswer {
    /// `applied`, `duplicate`, `stale`, `ignored` or `unmatched`.
    outcome: &'static str,
}

/// Stripe's webhook: no bearer token; the `Stripe-Signature` header must verify with one of
/// `stripe.webhook_secrets` within `stripe.webhook_tolerance_secs`. Answers 200 only once the
/// event is committed (or was already), so Stripe retries anything else.
#[utoipa::path(post, path = "/api/subscription/webhook", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=...,v1=...")),
    request_body(content = String, description = "a Stripe event, verbatim", content_type = "application/json"),
    responses((status = 200, body = WebhookAnswer),
              (status = 400, description = "bad_signature or not an event", body = super::error::ErrorBody),
              (status = 500, description = "not committed; Stripe retries", body = super::error::ErrorBody),
              (status = 503, description = "billing_disabled", body = super::error::ErrorBody)))]
pub(crate) async fn webhook(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    billing_on(&app)?;
    let cfg = &app.config.stripe;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = unix_now();
    signature::verify(
        header,
        &body,
        &cfg.webhook_secrets,
        now,
        cfg.webhook_tolerance_secs as i64,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "Stripe webhook refused");
        ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", e.to_string())
    })?;
    let event: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "not JSON"))?;
    let prices = webhook::Prices {
        plus: cfg.price_plus.clone(),
        pro: cfg.price_pro.clone(),
        grace_secs: cfg.payment_grace_secs as i64,
    };
    let outcome = webhook::apply(&app.db, &prices, &event, now)
        .await
        .map_err(|e| match e {
            webhook::ApplyError::Malformed(what) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                format!("not a Stripe event: {what}"),
            ),
            webhook::ApplyError::Database(e) => ApiError::internal("applying a Stripe event", e),
        })?;
    Ok(Json(WebhookAnswer {
        outcome: match outcome {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
            Outcome::Unmatched => "unmatched",
        },
    }))
}
