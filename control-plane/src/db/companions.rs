//! Companions (persona, avatar, voice), scoped to their owner.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Db;

/// A companion.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Companion {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) persona: String,
    /// A built-in avatar name or, when `custom_avatar`, the URL of an uploaded one.
    pub(crate) avatar: String,
    pub(crate) custom_avatar: bool,
    pub(crate) voice: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

const COLUMNS: &str = "id, name, persona, avatar, custom_avatar, voice, created_at, updated_at";

fn from_row(r: &AnyRow) -> Companion {
    Companion {
        id: r.get("id"),
        name: r.get("name"),
        persona: r.get("persona"),
        avatar: r.get("avatar"),
        custom_avatar: r.get::<i64, _>("custom_avatar") != 0,
        voice: r.get("voice"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub(crate) async fn list(db: &Db, owner: &str) -> Result<Vec<Companion>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM companions WHERE owner_id = $1 ORDER BY created_at ASC, id ASC LIMIT 200"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn get(
    conn: &mut AnyConnection,
    owner: &str,
    id: &str,
) -> Result<Option<Companion>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM companions WHERE id = $1 AND owner_id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Serialises writes to one owner's companions until the transaction ends: a no-op update of
/// the owner's profile row takes PostgreSQL's row lock (SQLite's write gate already
/// serialises), so two creates cannot both count the allowance before either has inserted.
pub(crate) async fn lock_owner(conn: &mut AnyConnection, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE profiles SET tier = tier WHERE id = $1")
        .bind(owner)
        .execute(conn)
        .await?;
    Ok(())
}

/// Companions of `owner` with a custom avatar, optionally not counting `except`.
pub(crate) async fn custom_avatars(
    conn: &mut AnyConnection,
    owner: &str,
    except: &str,
) -> Result<u64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM companions WHERE owner_id = $1 AND custom_avatar = 1 AND id <> $2",
    )
    .bind(owner)
    .bind(except)
    .fetch_one(conn)
    .await?;
    Ok(row.get::<i64, _>("n").max(0) as u64)
}

/// Inserts or replaces `c` for `owner`.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    owner: &str,
    c: &Companion,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO companions (id, owner_id, name, persona, avatar, custom_avatar, voice, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET name = $3, persona = $4, avatar = $5, custom_avatar = $6, \
         voice = $7, updated_at = $9",
    )
    .bind(&c.id)
    .bind(owner)
    .bind(&c.name)
    .bind(&c.persona)
    .bind(&c.avatar)
    .bind(i64::from(c.custom_avatar))
    .bind(&c.voice)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete(db: &Db, owner: &str, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM companions WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
