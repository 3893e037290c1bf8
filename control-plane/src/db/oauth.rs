//! Pending OAuth sign-ins and linked provider identities.

use sqlx::{AnyConnection, Row};

use super::Db;

/// What `/start` remembered for the callback.
#[derive(Debug, Clone)]
pub(crate) struct PendingSignIn {
    pub(crate) code_verifier: String,
    pub(crate) birth_year: Option<i64>,
    pub(crate) consent_terms: bool,
    /// SHA-256 (hex) of the nonce in the cookie `/start` gave the browser.
    pub(crate) browser_nonce_hash: String,
}

pub(crate) async fn save_state(
    db: &Db,
    state: &str,
    provider: &str,
    pending: &PendingSignIn,
    now: i64,
    ttl: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO oauth_states (state, provider, code_verifier, birth_year, consent_terms, \
         created_at, expires_at, browser_nonce_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(state)
    .bind(provider)
    .bind(&pending.code_verifier)
    .bind(pending.birth_year)
    .bind(i64::from(pending.consent_terms))
    .bind(now)
    .bind(now + ttl)
    .bind(&pending.browser_nonce_hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Takes (reads and deletes) a pending sign-in; a state works once, for its provider, until it
/// expires.
pub(crate) async fn take_state(
    db: &Db,
    state: &str,
    provider: &str,
    now: i64,
) -> Result<Option<PendingSignIn>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        "SELECT code_verifier, birth_year, consent_terms, expires_at, browser_nonce_hash \
         FROM oauth_states \
         WHERE state = $1 AND provider = $2",
    )
    .bind(state)
    .bind(provider)
    .fetch_optional(&mut *tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM oauth_states WHERE state = $1 OR expires_at <= $2")
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    // Two callbacks racing with one state: only the one whose delete removed it may proceed.
    let Some(row) = row.filter(|_| deleted.rows_affected() >= 1) else {
        return Ok(None);
    };
    if row.get::<i64, _>("expires_at") <= now {
        return Ok(None);
    }
    Ok(Some(PendingSignIn {
        code_verifier: row.get("code_verifier"),
        birth_year: row.get("birth_year"),
        consent_terms: row.get::<i64, _>("consent_terms") != 0,
        browser_nonce_hash: row.get("browser_nonce_hash"),
    }))
}

pub(crate) async fn identity(
    db: &Db,
    provider: &str,
    subject: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row =
        sqlx::query("SELECT profile_id FROM oauth_identities WHERE provider = $1 AND subject = $2")
            .bind(provider)
            .bind(subject)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|r| r.get("profile_id")))
}

pub(crate) async fn link(
    conn: &mut AnyConnection,
    provider: &str,
    subject: &str,
    profile_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oauth_identities (provider, subject, profile_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (provider, subject) DO NOTHING",
    )
    .bind(provider)
    .bind(subject)
    .bind(profile_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
