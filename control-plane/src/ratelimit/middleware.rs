//! The axum layer: picks the rule for the path, identifies the caller, answers 429 or passes
//! the request on, and adds `RateLimit-Policy` / `RateLimit` headers either way.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::window::Decision;
use crate::api::error::ApiError;
use crate::app::App;
use crate::config::RateLimitRule;
use crate::tier::Tier;

/// Name of the per-e-mail sign-in rule (in `RateLimit` headers and `rate_limit_fail_closed`).
pub(crate) const LOGIN_EMAIL_RULE: &str = "login_email";

pub(crate) async fn enforce(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Stripe's webhook deliveries come from a few Stripe addresses, unauthenticated, and a
    // refused one is retried for days: the signature is their gate, not the `subscription`
    // rule (20 per hour per address), which would drop payments during a burst.
    if path == crate::api::subscription::WEBHOOK_PATH {
        return next.run(req).await;
    }
    let endpoint_rule = app.limiter.rule_for(path).cloned();
    let is_api = path.starts_with("/api/");
    if endpoint_rule.is_none() && !(is_api && app.config.tier_api_limits) {
        return next.run(req).await;
    }
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let token = crate::api::auth::bearer(req.headers()).map(str::to_owned);
    let claims = match token {
        Some(t) => app.verify_token(&t).await.ok(),
        None => None,
    };
    // Signed-in callers are limited per account, others per client address (as a trusted
    // proxy reports it; IPv6 per /64).
    let who = match (&claims, addr) {
        (Some(c), _) => format!("u:{}", c.sub),
        (None, Some(peer)) => {
            let forwarded = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            super::ip_key(app.limiter.proxies.client(peer, forwarded))
        }
        (None, None) => "ip:unknown".to_owned(),
    };
    // Every signed-in API request also counts against the tier's hourly allowance.
    let tier_rule = claims
        .as_ref()
        .filter(|_| is_api && app.config.tier_api_limits)
        .map(|c| {
            let tier = Tier::parse(&c.tier).unwrap_or(Tier::Free);
            RateLimitRule {
                name: "api".to_owned(),
                prefix: "/api/".to_owned(),
                limit: tier.limits().api_requests_per_hour,
                window_secs: 3600,
            }
        });
    let now_ms = crate::clock::unix_now_ms();
    // One deadline for all of this request's checks: a stalled Redis costs it at most this.
    let deadline = tokio::time::Instant::now() + app.limiter.deadline();
    let mut checked = Vec::with_capacity(2);
    for rule in [endpoint_rule, tier_rule].into_iter().flatten() {
        // `None`: Redis did not answer and the rule fails open (counted and logged there).
        if let Some(decision) = app
            .limiter
            .check(&rule, &who, now_ms, deadline)
            .await
            .decision()
        {
            let refused = !decision.allowed;
            checked.push((rule, decision));
            if refused {
                break;
            }
        }
    }
    let refused = checked.iter().find(|(_, d)| !d.allowed);
    let mut response = match refused {
        None => next.run(req).await,
        Some((rule, decision)) => refusal(rule, decision).into_response(),
    };
    add_headers(response.headers_mut(), &checked);
    response
}

fn refusal(rule: &RateLimitRule, decision: &Decision) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests ({} policy): {} per {} s; retry in {} s",
            rule.name, rule.limit, rule.window_secs, decision.reset_secs
        ),
    );
    err.retry_after = Some(decision.reset_secs);
    err
}

/// Counts one sign-in attempt against `email` (already normalised), from wherever it comes, so
/// one account cannot be guessed at from many addresses. The key is a hash, so e-mail addresses
/// are never written to Redis.
pub(crate) async fn login_email(app: &App, email: &str) -> Result<(), ApiError> {
    if app.config.login_email_limit == 0 {
        return Ok(());
    }
    let rule = RateLimitRule {
        name: LOGIN_EMAIL_RULE.to_owned(),
        prefix: "/api/auth/login".to_owned(),
        limit: app.config.login_email_limit,
        window_secs: app.config.login_email_window_secs,
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, email.as_bytes());
    let who: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let deadline = tokio::time::Instant::now() + app.limiter.deadline();
    let verdict = app
        .limiter
        .check(
            &rule,
            &format!("email:{who}"),
            crate::clock::unix_now_ms(),
            deadline,
        )
        .await;
    match verdict.decision() {
        Some(d) if !d.allowed => Err(refusal(&rule, &d)),
        _ => Ok(()),
    }
}

fn add_headers(headers: &mut HeaderMap, checked: &[(RateLimitRule, Decision)]) {
    if checked.is_empty() {
        return;
    }
    // draft-ietf-httpapi-ratelimit-headers: one structured-field list item per policy.
    let policy = checked
        .iter()
        .map(|(r, _)| format!("\"{}\";q={};w={}", r.name, r.limit, r.window_secs))
        .collect::<Vec<_>>()
        .join(", ");
    let state = checked
        .iter()
        .map(|(r, d)| format!("\"{}\";r={};t={}", r.name, d.remaining, d.reset_secs))
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert("ratelimit", v);
    }
}
