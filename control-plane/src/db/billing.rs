//! Subscriptions, webhook events seen and the billing audit trail.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, new_id};

/// One Stripe subscription as stored.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) profile_id: String,
    pub(crate) tier: String,
    pub(crate) status: String,
    pub(crate) stripe_customer_id: Option<String>,
    pub(crate) stripe_subscription_id: String,
    pub(crate) current_period_end: Option<i64>,
    pub(crate) cancel_at_period_end: bool,
    pub(crate) grace_until: Option<i64>,
    pub(crate) snapshot_at: i64,
    pub(crate) snapshot_rank: i64,
    pub(crate) paid_at: i64,
    pub(crate) updated_at: i64,
}

const COLUMNS: &str = "profile_id, tier, status, stripe_customer_id, stripe_subscription_id, \
    current_period_end, cancel_at_period_end, grace_until, snapshot_at, snapshot_rank, paid_at, \
    updated_at";

fn from_row(row: &AnyRow) -> Subscription {
    Subscription {
        profile_id: row.get("profile_id"),
        tier: row.get("tier"),
        status: row.get("status"),
        stripe_customer_id: row.get("stripe_customer_id"),
        stripe_subscription_id: row
            .get::<Option<String>, _>("stripe_subscription_id")
            .unwrap_or_default(),
        current_period_end: row.get("current_period_end"),
        cancel_at_period_end: row.get::<i64, _>("cancel_at_period_end") != 0,
        grace_until: row.get("grace_until"),
        snapshot_at: row.get("snapshot_at"),
        snapshot_rank: row.get("snapshot_rank"),
        paid_at: row.get("paid_at"),
        updated_at: row.get("updated_at"),
    }
}

/// Records webhook event `id` unless it was seen before; `false` means a duplicate. Run first in
/// the event's transaction: on PostgreSQL a concurrent delivery of the same id waits here for
/// this transaction and then finds the row.
pub(crate) async fn claim_event(
    conn: &mut AnyConnection,
    id: &str,
    event_type: &str,
    created: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO stripe_events (id, type, created, received_at, outcome) \
         VALUES ($1, $2, $3, $4, 'received') ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(event_type)
    .bind(created)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What became of an event (`applied`, `stale`, `ignored`, `unmatched`).
pub(crate) async fn set_outcome(
    conn: &mut AnyConnection,
    id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stripe_events SET outcome = $1 WHERE id = $2")
        .bind(outcome)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn by_stripe_id(
    conn: &mut AnyConnection,
    subscription_id: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE stripe_subscription_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(subscription_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Every subscription of an account, newest first.
pub(crate) async fn of_profile(
    conn: &mut AnyConnection,
    profile_id: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE profile_id = $1 \
         ORDER BY created_at DESC, id DESC"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(profile_id)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The account a Stripe customer belongs to, from a subscription it paid for.
pub(crate) async fn profile_of_customer(
    conn: &mut AnyConnection,
    customer: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row =
        sqlx::query("SELECT profile_id FROM subscriptions WHERE stripe_customer_id = $1 LIMIT 1")
            .bind(customer)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.get("profile_id")))
}

/// Inserts the subscription, or replaces every stored field of the row with the same Stripe id.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    s: &Subscription,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriptions (id, profile_id, tier, status, stripe_customer_id, \
         stripe_subscription_id, current_period_end, cancel_at_period_end, grace_until, \
         snapshot_at, snapshot_rank, paid_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET tier = $3, status = $4, \
         stripe_customer_id = $5, current_period_end = $7, cancel_at_period_end = $8, \
         grace_until = $9, snapshot_at = $10, snapshot_rank = $11, paid_at = $12, updated_at = $13",
    )
    .bind(new_id())
    .bind(&s.profile_id)
    .bind(&s.tier)
    .bind(&s.status)
    .bind(s.stripe_customer_id.as_deref())
    .bind(&s.stripe_subscription_id)
    .bind(s.current_period_end)
    .bind(i64::from(s.cancel_at_period_end))
    .bind(s.grace_until)
    .bind(s.snapshot_at)
    .bind(s.snapshot_rank)
    .bind(s.paid_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the account's row lock (and on SQLite the write lock) before its subscriptions are
/// read, so two events of one account are applied one after the other; returns its tier, or
/// `None` when there is no such account.
pub(crate) async fn lock_profile(
    conn: &mut AnyConnection,
    profile_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("UPDATE profiles SET tier = tier WHERE id = $1")
        .bind(profile_id)
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query("SELECT tier FROM profiles WHERE id = $1")
        .bind(profile_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.get("tier")))
}

/// Sets the account's tier unless it already is `tier`; returns whether it changed.
pub(crate) async fn set_tier_if_changed(
    conn: &mut AnyConnection,
    profile_id: &str,
    tier: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE profiles SET tier = $1 WHERE id = $2 AND tier <> $1")
        .bind(tier)
        .bind(profile_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One row of the billing audit trail.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    pub(crate) event_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) from_tier: String,
    pub(crate) to_tier: String,
    pub(crate) amount_cents: Option<i64>,
    pub(crate) currency: Option<String>,
    pub(crate) created_at: i64,
}

pub(crate) async fn audit(
    conn: &mut AnyConnection,
    profile_id: &str,
    e: &AuditEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO billing_audit (id, profile_id, event_id, kind, from_tier, to_tier, \
         amount_cents, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ordered_id())
    .bind(profile_id)
    .bind(e.event_id.as_deref())
    .bind(&e.kind)
    .bind(&e.from_tier)
    .bind(&e.to_tier)
    .bind(e.amount_cents)
    .bind(e.currency.as_deref())
    .bind(e.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A fresh id that sorts by creation time (microseconds first), so the history lists rows of
/// one second in the order they were written.
fn ordered_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{micros:020}-{}", new_id())
}

/// The account's audit trail, newest first.
pub(crate) async fn history(
    db: &Db,
    profile_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT event_id, kind, from_tier, to_tier, amount_cents, currency, created_at \
         FROM billing_audit WHERE profile_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(profile_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            event_id: r.get("event_id"),
            kind: r.get("kind"),
            from_tier: r.get("from_tier"),
            to_tier: r.get("to_tier"),
            amount_cents: r.get("amount_cents"),
            currency: r.get("currency"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// Accounts on a paid tier holding a subscription whose grace or cancelled period has ended
/// by `now`: the sweep re-checks them.
pub(crate) async fn due_for_sweep(db: &Db, now: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT s.profile_id FROM subscriptions s JOIN profiles p ON p.id = s.profile_id \
         WHERE p.tier <> 'free' AND ((s.grace_until IS NOT NULL AND s.grace_until <= $1) \
         OR (s.cancel_at_period_end = 1 AND s.current_period_end <= $1))",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(|r| r.get("profile_id")).collect())
}
