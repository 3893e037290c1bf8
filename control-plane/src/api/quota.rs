//! The quota API the gateway calls: reserve before spending (a voice call reserves its next
//! minute, a chat turn one message), settle with what was really used. Batched; each item is
//! idempotent by its key, so a retried call is answered, never counted twice.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::data_plane::OnBehalf;
use super::error::ApiError;
use super::extract::Body;
use super::usage::tier_of;
use crate::app::{App, unix_now};
use crate::db::usage::{self, Reservation};
use crate::quota::{self, QuotaKind};

const MAX_BATCH: usize = 100;

/// A batch of reservations.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReserveRequest {
    /// At most 100.
    reservations: Vec<ReserveItem>,
}

/// One reservation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReserveItem {
    /// Idempotency key chosen by the caller (1 to 128 characters), e.g. `call-42-minute-3`.
    key: String,
    /// What to reserve.
    kind: QuotaKind,
    /// How much: messages, or seconds.
    amount: u64,
}

/// What each reservation was granted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ReserveResponse {
    results: Vec<Grant>,
}

/// One grant. `granted` may be less than requested (even 0): the caller must stop when it is
/// spent; that is how a call is cut cleanly when the day's minutes run out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Grant {
    key: String,
    kind: QuotaKind,
    requested: u64,
    granted: u64,
    /// Left today after this grant; null when unlimited.
    remaining: Option<u64>,
    /// Seconds until the daily quota resets (UTC midnight).
    resets_in_secs: u64,
}

/// A batch of settlements.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettleRequest {
    /// At most 100.
    settlements: Vec<SettleItem>,
}

/// What a reservation really used.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettleItem {
    key: String,
    used: u64,
}

/// Results of a settle batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SettleResponse {
    results: Vec<Settled>,
}

/// One settlement: `settled` (used, clamped to the grant), `already_settled` (a retry: the
/// first answer is repeated) or `unknown_key`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Settled {
    key: String,
    status: &'static str,
    used: u64,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 128 {
        return Err(ApiError::invalid("key: expected 1 to 128 characters"));
    }
    Ok(())
}

/// Reserves quota.
#[utoipa::path(post, path = "/api/quota/reserve", tag = "quota", request_body = ReserveRequest,
    security(("bearer" = [], "service" = [])),
    responses((status = 200, body = ReserveResponse), (status = 409, body = super::error::ErrorBody)))]
pub(crate) async fn reserve(
    State(app): State<App>,
    OnBehalf(caller): OnBehalf,
    Body(req): Body<ReserveRequest>,
) -> Result<Json<ReserveResponse>, ApiError> {
    if req.reservations.is_empty() || req.reservations.len() > MAX_BATCH {
        return Err(ApiError::invalid("reservations: expected 1 to 100 items"));
    }
    for item in &req.reservations {
        check_key(&item.key)?;
        if item.amount > i64::MAX as u64 / 4 {
            return Err(ApiError::invalid("amount: too large"));
        }
    }
    let tier = tier_of(&app, caller.id()).await?;
    let now = unix_now();
    let day = quota::day_of(now);
    let mut results = Vec::with_capacity(req.reservations.len());
    // One transaction for the batch: all grants are recorded, or none.
    let mut tx = app.db.begin().await?;
    for item in req.reservations {
        let limit = item.kind.daily_limit(tier);
        // The day's counters are locked before the key is looked up: a second request with the
        // same key waits here (PostgreSQL row lock, SQLite write gate) and then finds the first
        // one's reservation instead of granting again.
        let mut today = usage::lock(&mut tx, caller.id(), day, item.kind).await?;
        if let Some(existing) = usage::reservation(&mut tx, caller.id(), &item.key).await? {
            if existing.kind != item.kind.as_str() || existing.requested != item.amount as i64 {
                return Err(ApiError::conflict(format!(
                    "key {} was already used for a different reservation",
                    item.key
                )));
            }
            if existing.day != day {
                today = usage::today(&mut tx, caller.id(), existing.day, item.kind).await?;
            }
            results.push(Grant {
                key: item.key,
                kind: item.kind,
                requested: item.amount,
                granted: existing.granted as u64,
                remaining: today.remaining(limit),
                resets_in_secs: quota::secs_until_reset(now),
            });
            continue;
        }
        let granted = today.grant(limit, item.amount);
        today.reserved += granted;
        usage::store(&mut tx, caller.id(), day, item.kind, today).await?;
        let reservation = Reservation {
            kind: item.kind.as_str().to_owned(),
            day,
            requested: item.amount as i64,
            granted: granted as i64,
            settled: None,
        };
        usage::insert_reservation(&mut tx, caller.id(), &item.key, &reservation, now).await?;
        results.push(Grant {
            key: item.key,
            kind: item.kind,
            requested: item.amount,
            granted,
            remaining: today.remaining(limit),
            resets_in_secs: quota::secs_until_reset(now),
        });
    }
    tx.commit().await?;
    Ok(Json(ReserveResponse { results }))
}

/// Settles reservations with what was used; the unused rest returns to the day's quota.
#[utoipa::path(post, path = "/api/quota/settle", tag = "quota", request_body = SettleRequest,
    security(("bearer" = [], "service" = [])),
    responses((status = 200, body = SettleResponse)))]
pub(crate) async fn settle(
    State(app): State<App>,
    OnBehalf(caller): OnBehalf,
    Body(req): Body<SettleRequest>,
) -> Result<Json<SettleResponse>, ApiError> {
    if req.settlements.is_empty() || req.settlements.len() > MAX_BATCH {
        return Err(ApiError::invalid("settlements: expected 1 to 100 items"));
    }
    for item in &req.settlements {
        check_key(&item.key)?;
    }
    let mut results = Vec::with_capacity(req.settlements.len());
    let mut tx = app.db.begin().await?;
    for item in req.settlements {
        let Some(r) = usage::reservation(&mut tx, caller.id(), &item.key).await? else {
            results.push(Settled {
                key: item.key,
                status: "unknown_key",
                used: 0,
            });
            continue;
        };
        if let Some(done) = r.settled {
            results.push(Settled {
                key: item.key,
                status: "already_settled",
                used: done as u64,
            });
            continue;
        }
        let kind = match r.kind.as_str() {
            "messages" => QuotaKind::Messages,
            "voice_seconds" => QuotaKind::VoiceSeconds,
            _ => QuotaKind::GameSeconds,
        };
        let used = quota::settle(r.granted as u64, item.used);
        // Marked settled by a conditional update first: of two settles racing on PostgreSQL
        // only one changes the row, so the grant leaves `reserved` once.
        if !usage::mark_settled(&mut tx, caller.id(), &item.key, used as i64).await? {
            let done = usage::reservation(&mut tx, caller.id(), &item.key)
                .await?
                .and_then(|r| r.settled)
                .unwrap_or(0);
            results.push(Settled {
                key: item.key,
                status: "already_settled",
                used: done as u64,
            });
            continue;
        }
        let mut today = usage::lock(&mut tx, caller.id(), r.day, kind).await?;
        today.reserved = today.reserved.saturating_sub(r.granted as u64);
        today.used += used;
        usage::store(&mut tx, caller.id(), r.day, kind, today).await?;
        results.push(Settled {
            key: item.key,
            status: "settled",
            used,
        });
    }
    tx.commit().await?;
    Ok(Json(SettleResponse { results }))
}
