//! Accounts.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Db;

/// One account as stored.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) password_hash: Option<String>,
    pub(crate) display_name: String,
    pub(crate) tier: String,
    pub(crate) birth_year: Option<i64>,
    pub(crate) consent_terms: bool,
    pub(crate) consent_marketing: bool,
    pub(crate) consent_voice_data: bool,
    pub(crate) created_at: i64,
    /// When the address was proven to be the holder's; `None` = unverified.
    pub(crate) email_verified_at: Option<i64>,
}

/// A new account.
#[derive(Debug)]
pub(crate) struct NewProfile<'a> {
    pub(crate) id: &'a str,
    pub(crate) email: &'a str,
    pub(crate) password_hash: Option<&'a str>,
    pub(crate) display_name: &'a str,
    pub(crate) birth_year: Option<i64>,
    pub(crate) consent_terms: bool,
    pub(crate) consent_marketing: bool,
    pub(crate) consent_voice_data: bool,
    /// Set when the address is already proven (a provider confirmed it).
    pub(crate) email_verified_at: Option<i64>,
}

const COLUMNS: &str = "id, email, password_hash, display_name, tier, birth_year, consent_terms, \
                       consent_marketing, consent_voice_data, created_at, email_verified_at";

fn from_row(row: &AnyRow) -> Profile {
    Profile {
        id: row.get("id"),
        email: row.get("email"),
        password_hash: row.get("password_hash"),
        display_name: row.get("display_name"),
        tier: row.get("tier"),
        birth_year: row.get("birth_year"),
        consent_terms: row.get::<i64, _>("consent_terms") != 0,
        consent_marketing: row.get::<i64, _>("consent_marketing") != 0,
        consent_voice_data: row.get::<i64, _>("consent_voice_data") != 0,
        created_at: row.get("created_at"),
        email_verified_at: row.get("email_verified_at"),
    }
}

/// Inserts `p`; `Ok(false)` when the e-mail address is taken.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    p: &NewProfile<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO profiles (id, email, password_hash, display_name, tier, birth_year, \
         consent_terms, consent_marketing, consent_voice_data, created_at, password_changed_at, \
         email_verified_at) VALUES ($1, $2, $3, $4, 'free', $5, $6, $7, $8, $9, $9, $10) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(p.id)
    .bind(p.email)
    .bind(p.password_hash)
    .bind(p.display_name)
    .bind(p.birth_year)
    .bind(i64::from(p.consent_terms))
    .bind(i64::from(p.consent_marketing))
    .bind(i64::from(p.consent_voice_data))
    .bind(now)
    .bind(p.email_verified_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks `email` verified for account `id`, only if that is still the account's address.
/// Returns whether it is (now) verified.
pub(crate) async fn mark_email_verified(
    conn: &mut AnyConnection,
    id: &str,
    email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE profiles SET email_verified_at = COALESCE(email_verified_at, $1) \
         WHERE id = $2 AND email = $3",
    )
    .bind(now)
    .bind(id)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn by_email(db: &Db, email: &str) -> Result<Option<Profile>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE email = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(email)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub(crate) async fn by_id(db: &Db, id: &str) -> Result<Option<Profile>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub(crate) async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE profiles SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn set_tier(db: &Db, id: &str, tier: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("UPDATE profiles SET tier = $1 WHERE id = $2")
        .bind(tier)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
