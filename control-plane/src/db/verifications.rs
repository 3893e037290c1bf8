//! E-mail verification links. A link carries a random 256-bit token; only its SHA-256 is
//! stored, with the address it was sent to. Consuming it marks that address verified if it is
//! still the account's address: changing the address makes every earlier link worthless.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{AnyConnection, Row};

use super::{Db, hex, random_bytes};

/// What presenting a verification token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The address is verified (now, or already by this same token: links are idempotent).
    Verified {
        /// The account.
        profile_id: String,
        /// The verified address.
        email: String,
    },
    /// Unknown, expired, or for an address the account no longer has.
    Invalid,
}

fn hash(raw: &str) -> String {
    hex(digest::digest(&digest::SHA256, raw.as_bytes()).as_ref())
}

/// Stores a new token for (`profile_id`, `email`) and returns its raw value for the link.
pub(crate) async fn create(
    conn: &mut AnyConnection,
    profile_id: &str,
    email: &str,
    now: i64,
    ttl: i64,
) -> Result<String, sqlx::Error> {
    let raw = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, profile_id, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash(&raw))
    .bind(profile_id)
    .bind(email)
    .bind(now)
    .bind(now + ttl)
    .execute(conn)
    .await?;
    Ok(raw)
}

/// When the newest link for `profile_id` was sent, if any (for the resend interval).
pub(crate) async fn last_sent(db: &Db, profile_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MAX(created_at) AS last FROM email_verifications WHERE profile_id = $1",
    )
    .bind(profile_id)
    .fetch_one(&db.pool)
    .await?;
    row.try_get::<Option<i64>, _>("last")
}

/// Consumes `raw`: marks the address it was sent to verified, provided the link has not
/// expired and the account still has that address. A used link answers `Verified` again while
/// the address stays verified, so a mail scanner that opened it first does no harm.
pub(crate) async fn consume(db: &Db, raw: &str, now: i64) -> Result<Outcome, sqlx::Error> {
    let token_hash = hash(raw);
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        "SELECT profile_id, email, expires_at, used_at FROM email_verifications \
         WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Outcome::Invalid);
    };
    let profile_id: String = row.get("profile_id");
    let email: String = row.get("email");
    let used = row.get::<Option<i64>, _>("used_at").is_some();
    if !used && row.get::<i64, _>("expires_at") <= now {
        return Ok(Outcome::Invalid);
    }
    if !used {
        sqlx::query(
            "UPDATE email_verifications SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&token_hash)
        .execute(&mut *tx)
        .await?;
    }
    // Bound to the address: if the account's address changed since the mail went out, this
    // matches no row and nothing is verified.
    let verified = if used {
        sqlx::query(
            "SELECT 1 AS ok FROM profiles WHERE id = $1 AND email = $2 \
             AND email_verified_at IS NOT NULL",
        )
        .bind(&profile_id)
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    } else {
        super::profiles::mark_email_verified(&mut tx, &profile_id, &email, now).await?
    };
    tx.commit().await?;
    Ok(if verified {
        Outcome::Verified { profile_id, email }
    } else {
        Outcome::Invalid
    })
}
