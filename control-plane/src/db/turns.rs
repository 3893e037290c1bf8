//! Chat turns (`chat_turns`), the recent history a turn sends to the model, token counters and
//! moderation records. Every turn query is scoped to its owner.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::conversations::Message;

/// A stored turn.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub(crate) id: String,
    pub(crate) conversation_id: String,
    pub(crate) user_message_id: i64,
    pub(crate) reply_message_id: Option<i64>,
    pub(crate) day: i64,
    pub(crate) model: String,
    pub(crate) prompt_tokens: i64,
    pub(crate) completion_tokens: i64,
    pub(crate) finish_reason: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) completed_at: Option<i64>,
}

fn turn(row: &AnyRow) -> Turn {
    Turn {
        id: row.get("id"),
        conversation_id: row.get("conversation_id"),
        user_message_id: row.get("user_message_id"),
        reply_message_id: row.get("reply_message_id"),
        day: row.get("day"),
        model: row.get("model"),
        prompt_tokens: row.get("prompt_tokens"),
        completion_tokens: row.get("completion_tokens"),
        finish_reason: row.get("finish_reason"),
        created_at: row.get("created_at"),
        completed_at: row.get("completed_at"),
    }
}

pub(crate) async fn insert(
    conn: &mut AnyConnection,
    owner: &str,
    t: &Turn,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO chat_turns (id, profile_id, conversation_id, user_message_id, day, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.id)
    .bind(owner)
    .bind(&t.conversation_id)
    .bind(t.user_message_id)
    .bind(t.day)
    .bind(t.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(
    conn: &mut AnyConnection,
    owner: &str,
    conversation_id: &str,
    id: &str,
) -> Result<Option<Turn>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, conversation_id, user_message_id, reply_message_id, day, model, prompt_tokens, \
         completion_tokens, finish_reason, created_at, completed_at FROM chat_turns \
         WHERE id = $1 AND conversation_id = $2 AND profile_id = $3",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(owner)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(turn))
}

/// Marks a turn completed unless it already is; true when this call did it. The rest of the
/// record is filled in by [`complete`] in the same transaction.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE chat_turns SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Fills in how a turn ended.
pub(crate) async fn complete(conn: &mut AnyConnection, t: &Turn) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE chat_turns SET reply_message_id = $1, model = $2, prompt_tokens = $3, \
         completion_tokens = $4, finish_reason = $5, completed_at = $6 WHERE id = $7",
    )
    .bind(t.reply_message_id)
    .bind(&t.model)
    .bind(t.prompt_tokens)
    .bind(t.completion_tokens)
    .bind(&t.finish_reason)
    .bind(t.completed_at)
    .bind(&t.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The last `limit` messages of a conversation, oldest first.
pub(crate) async fn recent_messages(
    conn: &mut AnyConnection,
    conversation_id: &str,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, role, content, created_at FROM messages WHERE conversation_id = $1 \
         ORDER BY id DESC LIMIT $2",
    )
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut messages: Vec<Message> = rows
        .iter()
        .map(|r| Message {
            id: r.get("id"),
            role: r.get("role"),
            content: r.get("content"),
            created_at: r.get("created_at"),
        })
        .collect();
    messages.reverse();
    Ok(messages)
}

/// One message by id, within its conversation.
pub(crate) async fn message(
    conn: &mut AnyConnection,
    conversation_id: &str,
    id: i64,
) -> Result<Option<Message>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, role, content, created_at FROM messages WHERE conversation_id = $1 AND id = $2",
    )
    .bind(conversation_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Message {
        id: r.get("id"),
        role: r.get("role"),
        content: r.get("content"),
        created_at: r.get("created_at"),
    }))
}

/// The conversation's companion persona and name, when it has a companion.
pub(crate) async fn persona(
    conn: &mut AnyConnection,
    owner: &str,
    conversation_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.persona AS persona, c.name AS name FROM conversations v \
         JOIN companions c ON c.id = v.companion_id \
         WHERE v.id = $1 AND v.owner_id = $2 AND c.owner_id = $2",
    )
    .bind(conversation_id)
    .bind(owner)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.get("persona"), r.get("name"))))
}

/// Adds `tokens` to the day's `llm_tokens` counter (a record, not a quota).
pub(crate) async fn add_tokens(
    conn: &mut AnyConnection,
    owner: &str,
    day: i64,
    tokens: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO usage_records (profile_id, day, kind, used, reserved) \
         VALUES ($1, $2, 'llm_tokens', $3, 0) \
         ON CONFLICT (profile_id, day, kind) DO UPDATE SET used = usage_records.used + $3",
    )
    .bind(owner)
    .bind(day)
    .bind(tokens)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a moderation decision about a message that was not stored.
pub(crate) async fn record_moderation(
    conn: &mut AnyConnection,
    owner: &str,
    conversation_id: &str,
    category: &str,
    detail: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO moderation_records (id, profile_id, conversation_id, message_id, category, \
         action, detail, created_at) VALUES ($1, $2, $3, NULL, $4, 'rejected', $5, $6)",
    )
    .bind(super::new_id())
    .bind(owner)
    .bind(conversation_id)
    .bind(category)
    .bind(detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
