//! Sessions as refresh-token families. A sign-in starts a family; each refresh marks the
//! presented token used and issues its successor. Presenting a used token again means it was
//! stolen (or replayed), so the whole family is revoked.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{AnyConnection, Row};

use super::{Db, hex, new_id, random_bytes};

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshRefused {
    /// Unknown, expired or revoked.
    Invalid,
    /// Already used once: the family has now been revoked.
    Reused,
    /// The session is older than its absolute lifetime: sign in again.
    Expired,
}

/// How refresh treats tokens, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshPolicy {
    /// Lifetime of each refresh token, in seconds (the idle limit).
    pub(crate) ttl: i64,
    /// Seconds after its use during which a token may be presented again for a sibling pair.
    pub(crate) grace: i64,
    /// Absolute lifetime of a family from its sign-in, in seconds.
    pub(crate) max_age: i64,
}

/// A freshly issued refresh token (the raw value is only ever shown to the client).
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) raw: String,
    pub(crate) family_id: String,
    pub(crate) profile_id: String,
}

fn hash(raw: &str) -> String {
    hex(digest::digest(&digest::SHA256, raw.as_bytes()).as_ref())
}

async fn insert(
    conn: &mut AnyConnection,
    profile_id: &str,
    family_id: &str,
    family_started_us: i64,
    now: i64,
    expires_at: i64,
) -> Result<String, sqlx::Error> {
    let raw = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, profile_id, family_started_us, \
         issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash(&raw))
    .bind(family_id)
    .bind(profile_id)
    .bind(family_started_us)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(raw)
}

/// Starts a session for `profile_id`, first revoking the oldest live sessions so that at most
/// `max_sessions` remain (counting the new one).
pub(crate) async fn start(
    conn: &mut AnyConnection,
    profile_id: &str,
    now: i64,
    ttl: i64,
    max_sessions: u32,
) -> Result<Issued, sqlx::Error> {
    let started_us = unix_now_us();
    // Write first: on SQLite this takes the write lock before reading, so two concurrent
    // sign-ins of one account serialise instead of both counting the same sessions.
    sqlx::query("UPDATE profiles SET id = id WHERE id = $1")
        .bind(profile_id)
        .execute(&mut *conn)
        .await?;
    let live = sqlx::query(
        "SELECT family_id, MIN(family_started_us) AS started FROM refresh_tokens \
         WHERE profile_id = $1 AND revoked_at IS NULL AND used_at IS NULL AND expires_at > $2 \
         GROUP BY family_id ORDER BY started ASC, family_id ASC",
    )
    .bind(profile_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let excess = (live.len() + 1).saturating_sub(max_sessions as usize);
    for row in live.iter().take(excess) {
        let family: String = row.get("family_id");
        revoke_family(&mut *conn, &family, now).await?;
        tracing::info!(
            profile_id,
            family,
            "session limit reached: oldest session revoked"
        );
    }
    let family_id = new_id();
    let raw = insert(conn, profile_id, &family_id, started_us, now, now + ttl).await?;
    Ok(Issued {
        raw,
        family_id,
        profile_id: profile_id.to_owned(),
    })
}

/// Session start in microseconds, so sign-ins within one second still have an order.
fn unix_now_us() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Exchanges `raw` for its successor.
///
/// A token is used once. Presenting it again normally means it was copied, and ends the whole
/// family; but two tabs of one session refreshing at the same moment present the same token
/// too. So within `policy.grace` seconds of its use, and only while its successor is itself
/// still unused (it is the immediately previous token), a used token gets a further pair of
/// the same family instead. Past the family's absolute lifetime nothing is issued.
pub(crate) async fn rotate(
    db: &Db,
    raw: &str,
    now: i64,
    policy: RefreshPolicy,
) -> Result<Result<Issued, RefreshRefused>, sqlx::Error> {
    let token_hash = hash(raw);
    let mut tx = db.begin().await?;
    // The conditional update is the atomic step: of two concurrent uses exactly one wins.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(&token_hash)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT family_id, profile_id, family_started_us, used_at, revoked_at, replaced_by \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Err(RefreshRefused::Invalid));
    };
    let family_id: String = row.get("family_id");
    let profile_id: String = row.get("profile_id");
    let started_us: i64 = row.get("family_started_us");
    let family_ends = started_us / 1_000_000 + policy.max_age;
    let used_at = row.get::<Option<i64>, _>("used_at");
    let revoked = row.get::<Option<i64>, _>("revoked_at").is_some();
    if revoked {
        return Ok(Err(if used_at.is_some() {
            RefreshRefused::Reused
        } else {
            RefreshRefused::Invalid
        }));
    }
    if family_ends <= now && (claimed.rows_affected() == 1 || used_at.is_some()) {
        revoke_family(&mut tx, &family_id, now).await?;
        tx.commit().await?;
        return Ok(Err(RefreshRefused::Expired));
    }
    let expires_at = (now + policy.ttl).min(family_ends);
    if claimed.rows_affected() == 1 {
        let raw = insert(
            &mut tx,
            &profile_id,
            &family_id,
            started_us,
            now,
            expires_at,
        )
        .await?;
        sqlx::query("UPDATE refresh_tokens SET replaced_by = $1 WHERE token_hash = $2")
            .bind(hash(&raw))
            .bind(&token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Ok(Issued {
            raw,
            family_id,
            profile_id,
        }));
    }
    let Some(used_at) = used_at else {
        // Neither used nor revoked, yet not claimable: expired.
        return Ok(Err(RefreshRefused::Invalid));
    };
    if policy.grace > 0 && now <= used_at + policy.grace {
        let successor: Option<String> = row.get("replaced_by");
        let successor_unused = match successor {
            Some(successor) => sqlx::query(
                "SELECT 1 AS fresh FROM refresh_tokens WHERE token_hash = $1 \
                 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(successor)
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
            None => false,
        };
        if successor_unused {
            let raw = insert(
                &mut tx,
                &profile_id,
                &family_id,
                started_us,
                now,
                expires_at,
            )
            .await?;
            tx.commit().await?;
            tracing::info!(
                profile_id,
                family_id,
                "refresh token presented again within the grace: sibling pair issued"
            );
            return Ok(Ok(Issued {
                raw,
                family_id,
                profile_id,
            }));
        }
    }
    revoke_family(&mut tx, &family_id, now).await?;
    tx.commit().await?;
    tracing::warn!(
        profile_id,
        family_id,
        "refresh token reused: session revoked"
    );
    Ok(Err(RefreshRefused::Reused))
}

/// Looks up the family a refresh token belongs to (for logout).
pub(crate) async fn family_of(db: &Db, raw: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT family_id, profile_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash(raw))
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| (r.get("family_id"), r.get("profile_id"))))
}

pub(crate) async fn revoke_family(
    conn: &mut AnyConnection,
    family_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn revoke_all(
    conn: &mut AnyConnection,
    profile_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE profile_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(profile_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// True while the session has an unrevoked, unexpired token.
pub(crate) async fn is_live(db: &Db, family_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 AS live FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL \
         AND expires_at > $2 LIMIT 1",
    )
    .bind(family_id)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.is_some())
}

/// When the session `family_id` was signed into, in unix seconds.
pub(crate) async fn started_at(db: &Db, family_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MIN(family_started_us) AS started FROM refresh_tokens WHERE family_id = $1",
    )
    .bind(family_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(row
        .try_get::<Option<i64>, _>("started")?
        .map(|us| us / 1_000_000))
}
