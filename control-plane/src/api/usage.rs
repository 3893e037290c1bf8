//! `GET /api/me` and `GET /api/usage`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::Caller;
use super::error::ApiError;
use crate::app::{App, unix_now};
use crate::db::{profiles, usage};
use crate::quota::{self, QuotaKind};
use crate::tier::{Tier, TierLimits};

/// The caller's tier as stored now (a token's `tier` claim may be minutes old).
pub(crate) async fn tier_of(app: &App, profile_id: &str) -> Result<Tier, ApiError> {
    let profile = profiles::by_id(&app.db, profile_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Tier::parse(&profile.tier).unwrap_or(Tier::Free))
}

/// The signed-in account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    id: String,
    email: String,
    display_name: String,
    tier: Tier,
    birth_year: Option<i64>,
    consent_terms: bool,
    consent_marketing: bool,
    consent_voice_data: bool,
    created_at: i64,
    limits: TierLimits,
    /// Whether the holder proved they own `email` (the link mailed at sign-up, or a provider
    /// that confirmed it). Until then no provider sign-in is linked to this account.
    email_verified: bool,
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn me(State(app): State<App>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let p = profiles::by_id(&app.db, caller.id())
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let tier = Tier::parse(&p.tier).unwrap_or(Tier::Free);
    Ok(Json(Me {
        id: p.id,
        email: p.email,
        display_name: p.display_name,
        tier,
        birth_year: p.birth_year,
        consent_terms: p.consent_terms,
        consent_marketing: p.consent_marketing,
        consent_voice_data: p.consent_voice_data,
        created_at: p.created_at,
        limits: tier.limits(),
        email_verified: p.email_verified_at.is_some(),
    }))
}

/// Today's use of one quota.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QuotaUse {
    kind: QuotaKind,
    used: u64,
    reserved: u64,
    /// Null when unlimited.
    limit: Option<u64>,
}

/// Today's usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageReport {
    tier: Tier,
    /// UTC day number (days since 1970-01-01).
    day: i64,
    resets_in_secs: u64,
    quotas: Vec<QuotaUse>,
}

/// Today's usage against the tier's quotas.
#[utoipa::path(get, path = "/api/usage", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = UsageReport), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn usage(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<UsageReport>, ApiError> {
    let tier = tier_of(&app, caller.id()).await?;
    let now = unix_now();
    let day = quota::day_of(now);
    let mut conn = app.db.pool.acquire().await?;
    let mut quotas = Vec::new();
    for kind in [
        QuotaKind::Messages,
        QuotaKind::VoiceSeconds,
        QuotaKind::GameSeconds,
    ] {
        let u = usage::today(&mut conn, caller.id(), day, kind).await?;
        quotas.push(QuotaUse {
            kind,
            used: u.used,
            reserved: u.reserved,
            limit: kind.daily_limit(tier),
        });
    }
    Ok(Json(UsageReport {
        tier,
        day,
        resets_in_secs: quota::secs_until_reset(now),
        quotas,
    }))
}
