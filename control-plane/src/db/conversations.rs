//! Conversations and their messages. Every query is scoped to the owner, so another account's
//! ids simply do not exist.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Db;

/// A conversation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) companion_id: Option<String>,
    pub(crate) title: String,
    pub(crate) created_at: i64,
}

/// A message. `id` increases within a conversation and is the pagination cursor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Message {
    pub(crate) id: i64,
    pub(crate) role: String,
    pub(crate) content: String,
    pub(crate) created_at: i64,
}

fn conversation(row: &AnyRow) -> Conversation {
    Conversation {
        id: row.get("id"),
        companion_id: row.get("companion_id"),
        title: row.get("title"),
        created_at: row.get("created_at"),
    }
}

pub(crate) async fn list(
    db: &Db,
    owner: &str,
    limit: i64,
) -> Result<Vec<Conversation>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, companion_id, title, created_at FROM conversations WHERE owner_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(owner)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(conversation).collect())
}

pub(crate) async fn insert(db: &Db, owner: &str, c: &Conversation) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO conversations (id, owner_id, companion_id, title, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&c.id)
    .bind(owner)
    .bind(&c.companion_id)
    .bind(&c.title)
    .bind(c.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub(crate) async fn owned(
    conn: &mut AnyConnection,
    owner: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 AS found FROM conversations WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Messages after `after` (exclusive), oldest first, at most `limit`.
pub(crate) async fn messages(
    db: &Db,
    conversation_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, role, content, created_at FROM messages WHERE conversation_id = $1 AND id > $2 \
         ORDER BY id ASC LIMIT $3",
    )
    .bind(conversation_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Message {
            id: r.get("id"),
            role: r.get("role"),
            content: r.get("content"),
            created_at: r.get("created_at"),
        })
        .collect())
}

pub(crate) async fn insert_message(
    conn: &mut AnyConnection,
    conversation_id: &str,
    role: &str,
    content: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(conversation_id)
    .bind(role)
    .bind(content)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.get("id"))
}
