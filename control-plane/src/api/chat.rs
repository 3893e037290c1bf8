//! The chat-turn API a gateway calls for each chat message, with the user's own token.
//!
//! - `POST /api/chat/turns` opens a turn: checks the conversation is the caller's, passes the
//!   message through the moderation hook, spends one message of the day's quota, stores the
//!   message and answers with the recent history and the companion's persona. The `chat`
//!   rate limit (`/api/chat` prefix) counts these requests: one per user message.
//! - `POST /api/conversations/{id}/turns/{turn_id}/reply` records how the turn ended: the
//!   reply text (possibly cut short), the model and the tokens used. Repeating it answers the
//!   first record. A turn that failed before any text gives its message back to the quota.
//!   It sits outside `/api/chat` so a turn counts once against the `chat` limit.
//! - `GET /api/conversations/{id}/turns/{turn_id}` reads a turn back.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::data_plane::OnBehalf;
use super::error::ApiError;
use super::extract::Body;
use super::usage::tier_of;
use crate::app::{App, unix_now};
use crate::db::conversations::{self, Message};
use crate::db::{new_id, turns, usage};
use crate::moderation::Moderator;
use crate::quota::{self, QuotaKind};

const MAX_CONTENT_CHARS: usize = 8_000;
/// A reply may be longer than a question.
const MAX_REPLY_CHARS: usize = 32_000;
const FINISH_REASONS: [&str; 5] = ["stop", "length", "cancelled", "content_filter", "error"];

/// A user message that starts a turn.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenTurnRequest {
    /// One of the caller's conversations.
    conversation_id: String,
    /// 1 to 8,000 characters.
    content: String,
    /// `text` (the only kind stored for now). Default: `text`.
    #[serde(default = "text")]
    content_type: String,
    /// Messages of history to return (the new one included), 1 to 100. Default: 20.
    #[serde(default)]
    history_limit: Option<u32>,
}

fn text() -> String {
    "text".to_owned()
}

/// One message of the model's context.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryItem {
    /// `user`, `companion` or `system`.
    role: String,
    content: String,
}

/// An opened turn.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OpenedTurn {
    /// Names the turn when its reply is recorded.
    turn_id: String,
    /// The stored user message.
    user_message: Message,
    /// Recent messages, oldest first, ending with the new one.
    history: Vec<HistoryItem>,
    /// The conversation's companion persona; empty when it has none.
    persona: String,
    /// The companion's name; empty when the conversation has none.
    companion_name: String,
    /// Messages left today; null when unlimited.
    messages_remaining: Option<u64>,
}

/// How a turn ended.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyRequest {
    /// The reply as written, up to 32,000 characters; may be empty (cancelled or failed before
    /// the first token), and then no message is stored.
    content: String,
    /// `stop`, `length`, `cancelled`, `content_filter` or `error`.
    finish_reason: String,
    /// The model (provider) that wrote it. Default: empty.
    #[serde(default)]
    model: String,
    /// Prompt tokens, as reported or estimated by the gateway.
    prompt_tokens: u32,
    /// Generated tokens.
    completion_tokens: u32,
}

/// A turn as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TurnRecord {
    turn_id: String,
    conversation_id: String,
    user_message_id: i64,
    /// The stored reply; null while streaming, or when nothing was written.
    message: Option<Message>,
    model: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    /// Null while the reply streams.
    finish_reason: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
}

/// Opens a chat turn: the user's message is checked, counted and stored.
#[utoipa::path(post, path = "/api/chat/turns", tag = "chat", security(("bearer" = [], "service" = [])),
    request_body = OpenTurnRequest,
    responses((status = 201, body = OpenedTurn),
              (status = 404, description = "no such conversation (or another account's)", body = super::error::ErrorBody),
              (status = 422, description = "`content_blocked` by moderation, or `invalid_body`", body = super::error::ErrorBody),
              (status = 429, description = "`rate_limited` or `quota_exceeded`", body = super::error::ErrorBody)))]
pub(crate) async fn open_turn(
    State(app): State<App>,
    OnBehalf(caller): OnBehalf,
    Body(req): Body<OpenTurnRequest>,
) -> Result<(StatusCode, Json<OpenedTurn>), ApiError> {
    let n = req.content.chars().count();
    if n == 0 || n > MAX_CONTENT_CHARS {
        return Err(ApiError::invalid("content: expected 1 to 8000 characters"));
    }
    if req.content_type != "text" {
        return Err(ApiError::invalid("content_type: only text is accepted"));
    }
    let history_limit = req.history_limit.unwrap_or(20);
    if !(1..=100).contains(&history_limit) {
        return Err(ApiError::invalid("history_limit: expected 1 to 100"));
    }
    let owner = caller.id();
    let mut conn = app.db.pool.acquire().await?;
    if !conversations::owned(&mut conn, owner, &req.conversation_id).await? {
        return Err(ApiError::not_found("conversation"));
    }
    let now = unix_now();
    // The hook is rebuilt per message: a few terms cost less than a lock on shared state.
    if let Err(rejection) = Moderator::new(&app.config.moderation).check(&req.content) {
        drop(conn);
        // A write: it queues for SQLite's writer like every other one.
        let mut tx = app.db.begin().await?;
        turns::record_moderation(
            &mut tx,
            owner,
            &req.conversation_id,
            rejection.category,
            &rejection.detail,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            user = owner,
            category = rejection.category,
            "chat message blocked"
        );
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_blocked",
            match rejection.category {
                "too_many_links" => {
                    format!("the message has too many links ({})", rejection.detail)
                }
                _ => "the message contains a blocked term".to_owned(),
            },
        ));
    }
    let (persona, companion_name) = turns::persona(&mut conn, owner, &req.conversation_id)
        .await?
        .unwrap_or_default();
    drop(conn);

    let tier = tier_of(&app, owner).await?;
    let day = quota::day_of(now);
    let limit = QuotaKind::Messages.daily_limit(tier);
    let mut tx = app.db.begin().await?;
    let mut today = usage::lock(&mut tx, owner, day, QuotaKind::Messages).await?;
    if today.grant(limit, 1) == 0 {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!("the {} tier's daily messages are used up", tier.as_str()),
        );
        err.retry_after = Some(quota::secs_until_reset(now));
        return Err(err);
    }
    today.used += 1;
    usage::store(&mut tx, owner, day, QuotaKind::Messages, today).await?;
    let message_id =
        conversations::insert_message(&mut tx, &req.conversation_id, "user", &req.content, now)
            .await?;
    let turn = turns::Turn {
        id: new_id(),
        conversation_id: req.conversation_id.clone(),
        user_message_id: message_id,
        reply_message_id: None,
        day,
        model: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        finish_reason: None,
        created_at: now,
        completed_at: None,
    };
    turns::insert(&mut tx, owner, &turn).await?;
    let history = turns::recent_messages(&mut tx, &req.conversation_id, i64::from(history_limit))
        .await?
        .into_iter()
        .map(|m| HistoryItem {
            role: m.role,
            content: m.content,
        })
        .collect();
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(OpenedTurn {
            turn_id: turn.id,
            user_message: Message {
                id: message_id,
                role: "user".to_owned(),
                content: req.content,
                created_at: now,
            },
            history,
            persona,
            companion_name,
            messages_remaining: today.remaining(limit),
        }),
    ))
}

/// Records how a turn ended: the reply and the tokens it cost.
#[utoipa::path(post, path = "/api/conversations/{id}/turns/{turn_id}/reply", tag = "chat",
    security(("bearer" = [], "service" = [])), params(("id" = String, Path), ("turn_id" = String, Path)),
    request_body = ReplyRequest,
    responses((status = 200, body = TurnRecord), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn record_reply(
    State(app): State<App>,
    OnBehalf(caller): OnBehalf,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    Body(req): Body<ReplyRequest>,
) -> Result<Json<TurnRecord>, ApiError> {
    let Path((conversation_id, turn_id)) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text()))?;
    if req.content.chars().count() > MAX_REPLY_CHARS {
        return Err(ApiError::invalid("content: at most 32000 characters"));
    }
    if !FINISH_REASONS.contains(&req.finish_reason.as_str()) {
        return Err(ApiError::invalid(
            "finish_reason: expected stop, length, cancelled, content_filter or error",
        ));
    }
    if req.model.chars().count() > 200 {
        return Err(ApiError::invalid("model: at most 200 characters"));
    }
    let owner = caller.id();
    let now = unix_now();
    let mut tx = app.db.begin().await?;
    let mut turn = turns::get(&mut tx, owner, &conversation_id, &turn_id)
        .await?
        .ok_or_else(|| ApiError::not_found("turn"))?;
    // Claimed by a conditional update before anything is written: of two records racing on
    // PostgreSQL one waits on the row lock and then finds the turn completed, so a reply is
    // stored, and a message refunded, at most once.
    if turn.completed_at.is_none() && turns::claim(&mut tx, &turn.id, now).await? {
        if !req.content.is_empty() {
            turn.reply_message_id = Some(
                conversations::insert_message(
                    &mut tx,
                    &conversation_id,
                    "companion",
                    &req.content,
                    now,
                )
                .await?,
            );
        } else if req.finish_reason == "error" {
            // Nothing came back: the message is not charged.
            let mut today = usage::lock(&mut tx, owner, turn.day, QuotaKind::Messages).await?;
            today.used = today.used.saturating_sub(1);
            usage::store(&mut tx, owner, turn.day, QuotaKind::Messages, today).await?;
        }
        turn.model = req.model;
        turn.prompt_tokens = i64::from(req.prompt_tokens);
        turn.completion_tokens = i64::from(req.completion_tokens);
        turn.finish_reason = Some(req.finish_reason);
        turn.completed_at = Some(now);
        turns::complete(&mut tx, &turn).await?;
        let tokens = turn.prompt_tokens + turn.completion_tokens;
        turns::add_tokens(&mut tx, owner, quota::day_of(now), tokens).await?;
    } else if turn.completed_at.is_none() {
        // Another request completed it while this one waited: answer with its record.
        turn = turns::get(&mut tx, owner, &conversation_id, &turn_id)
            .await?
            .ok_or_else(|| ApiError::not_found("turn"))?;
    }
    let record = record_of(&mut tx, turn).await?;
    tx.commit().await?;
    Ok(Json(record))
}

/// Reads a turn back.
#[utoipa::path(get, path = "/api/conversations/{id}/turns/{turn_id}", tag = "chat",
    security(("bearer" = [])), params(("id" = String, Path), ("turn_id" = String, Path)),
    responses((status = 200, body = TurnRecord), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn get_turn(
    State(app): State<App>,
    caller: super::Caller,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<TurnRecord>, ApiError> {
    let Path((conversation_id, turn_id)) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text()))?;
    let mut conn = app.db.pool.acquire().await?;
    let turn = turns::get(&mut conn, caller.id(), &conversation_id, &turn_id)
        .await?
        .ok_or_else(|| ApiError::not_found("turn"))?;
    Ok(Json(record_of(&mut conn, turn).await?))
}

async fn record_of(
    conn: &mut sqlx::AnyConnection,
    turn: turns::Turn,
) -> Result<TurnRecord, ApiError> {
    let message = match turn.reply_message_id {
        Some(id) => turns::message(conn, &turn.conversation_id, id).await?,
        None => None,
    };
    Ok(TurnRecord {
        total_tokens: turn.prompt_tokens + turn.completion_tokens,
        turn_id: turn.id,
        conversation_id: turn.conversation_id,
        user_message_id: turn.user_message_id,
        message,
        model: turn.model,
        prompt_tokens: turn.prompt_tokens,
        completion_tokens: turn.completion_tokens,
        finish_reason: turn.finish_reason,
        created_at: turn.created_at,
        completed_at: turn.completed_at,
    })
}
