//! Daily usage counters and quota reservations.

use sqlx::{AnyConnection, Row};

use crate::quota::{QuotaKind, Usage};

/// Reads today's counters for update: the upsert comes first so the row is locked (PostgreSQL)
/// or the write lock is held (SQLite) before the read, and concurrent reservations serialise.
pub(crate) async fn lock(
    conn: &mut AnyConnection,
    profile_id: &str,
    day: i64,
    kind: QuotaKind,
) -> Result<Usage, sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_records (profile_id, day, kind, used, reserved) VALUES ($1, $2, $3, 0, 0) \
         ON CONFLICT (profile_id, day, kind) DO UPDATE SET used = usage_records.used",
    )
    .bind(profile_id)
    .bind(day)
    .bind(kind.as_str())
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT used, reserved FROM usage_records WHERE profile_id = $1 AND day = $2 AND kind = $3",
    )
    .bind(profile_id)
    .bind(day)
    .bind(kind.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(Usage {
        used: row.get::<i64, _>("used").max(0) as u64,
        reserved: row.get::<i64, _>("reserved").max(0) as u64,
    })
}

pub(crate) async fn store(
    conn: &mut AnyConnection,
    profile_id: &str,
    day: i64,
    kind: QuotaKind,
    usage: Usage,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE usage_records SET used = $1, reserved = $2 WHERE profile_id = $3 AND day = $4 AND kind = $5",
    )
    .bind(usage.used as i64)
    .bind(usage.reserved as i64)
    .bind(profile_id)
    .bind(day)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Today's counters without locking (for display).
pub(crate) async fn today(
    conn: &mut AnyConnection,
    profile_id: &str,
    day: i64,
    kind: QuotaKind,
) -> Result<Usage, sqlx::Error> {
    let row = sqlx::query(
        "SELECT used, reserved FROM usage_records WHERE profile_id = $1 AND day = $2 AND kind = $3",
    )
    .bind(profile_id)
    .bind(day)
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(
        Usage {
            used: 0,
            reserved: 0,
        },
        |r| Usage {
            used: r.get::<i64, _>("used").max(0) as u64,
            reserved: r.get::<i64, _>("reserved").max(0) as u64,
        },
    ))
}

/// A stored reservation.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub(crate) kind: String,
    pub(crate) day: i64,
    pub(crate) requested: i64,
    pub(crate) granted: i64,
    pub(crate) settled: Option<i64>,
}

pub(crate) async fn reservation(
    conn: &mut AnyConnection,
    profile_id: &str,
    key: &str,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kind, day, requested, granted, settled FROM quota_reservations \
         WHERE profile_id = $1 AND idem_key = $2",
    )
    .bind(profile_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Reservation {
        kind: r.get("kind"),
        day: r.get("day"),
        requested: r.get("requested"),
        granted: r.get("granted"),
        settled: r.get("settled"),
    }))
}

pub(crate) async fn insert_reservation(
    conn: &mut AnyConnection,
    profile_id: &str,
    key: &str,
    r: &Reservation,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO quota_reservations (profile_id, idem_key, kind, day, requested, granted, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(profile_id)
    .bind(key)
    .bind(&r.kind)
    .bind(r.day)
    .bind(r.requested)
    .bind(r.granted)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what a reservation used, unless it is already settled; true when this call did it.
pub(crate) async fn mark_settled(
    conn: &mut AnyConnection,
    profile_id: &str,
    key: &str,
    settled: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE quota_reservations SET settled = $1 \
         WHERE profile_id = $2 AND idem_key = $3 AND settled IS NULL",
    )
    .bind(settled)
    .bind(profile_id)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
