//! Conversations and messages. Posting a user message spends one message of the day's quota.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Caller;
use super::error::ApiError;
use super::extract::{Body, Id};
use super::usage::tier_of;
use crate::app::{App, unix_now};
use crate::db::conversations::{self, Conversation, Message};
use crate::db::{companions, new_id, usage};
use crate::quota::{self, QuotaKind};

const MAX_CONTENT_CHARS: usize = 8_000;

/// A new conversation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewConversation {
    #[serde(default)]
    title: String,
    /// One of the caller's companions.
    #[serde(default)]
    companion_id: Option<String>,
}

/// The caller's conversations, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConversationList {
    conversations: Vec<Conversation>,
}

/// Lists the caller's conversations.
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = ConversationList), (status = 401, body = super::error::ErrorBody)))]
pub(crate) async fn list(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<ConversationList>, ApiError> {
    Ok(Json(ConversationList {
        conversations: conversations::list(&app.db, caller.id(), 100).await?,
    }))
}

/// Starts a conversation.
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = NewConversation,
    responses((status = 201, body = Conversation), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn create(
    State(app): State<App>,
    caller: Caller,
    Body(req): Body<NewConversation>,
) -> Result<(StatusCode, Json<Conversation>), ApiError> {
    if req.title.chars().count() > 200 {
        return Err(ApiError::invalid("title: at most 200 characters"));
    }
    if let Some(companion) = &req.companion_id {
        let mut conn = app.db.pool.acquire().await?;
        if companions::get(&mut conn, caller.id(), companion)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("companion"));
        }
    }
    let c = Conversation {
        id: new_id(),
        companion_id: req.companion_id,
        title: req.title,
        created_at: unix_now(),
    };
    conversations::insert(&app.db, caller.id(), &c).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Cursor pagination.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// Return messages after this one (a `next_cursor` from an earlier page).
    #[serde(default)]
    cursor: Option<i64>,
    /// Page size, 1 to 200. Default: 50.
    #[serde(default)]
    limit: Option<i64>,
}

/// A page of messages, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MessagePage {
    messages: Vec<Message>,
    /// Pass as `cursor` to get the next page; null at the end.
    next_cursor: Option<i64>,
}

/// Lists a conversation's messages.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path), Page),
    responses((status = 200, body = MessagePage), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn list_messages(
    State(app): State<App>,
    caller: Caller,
    Id(id): Id,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(page) =
        page.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "limit: expected 1 to 200",
        ));
    }
    let mut conn = app.db.pool.acquire().await?;
    if !conversations::owned(&mut conn, caller.id(), &id).await? {
        return Err(ApiError::not_found("conversation"));
    }
    drop(conn);
    // One extra row tells whether another page exists.
    let mut messages =
        conversations::messages(&app.db, &id, page.cursor.unwrap_or(0), limit + 1).await?;
    let more = messages.len() as i64 > limit;
    messages.truncate(limit as usize);
    let next_cursor = if more {
        messages.last().map(|m| m.id)
    } else {
        None
    };
    Ok(Json(MessagePage {
        messages,
        next_cursor,
    }))
}

/// A message to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMessage {
    /// 1 to 8,000 characters.
    content: String,
    /// `user` (default; spends quota) or `companion` (a reply; only the gateway, with its
    /// service credential, may write one: 403 `service_credential_required` otherwise).
    #[serde(default = "user_role")]
    role: String,
}

fn user_role() -> String {
    "user".to_owned()
}

/// Adds a message. A user message spends one of the day's messages; when none are left the
/// answer is 429 `quota_exceeded` and nothing is stored.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = NewMessage,
    responses((status = 201, body = Message), (status = 404, body = super::error::ErrorBody),
              (status = 429, description = "daily message quota spent", body = super::error::ErrorBody)))]
pub(crate) async fn post_message(
    State(app): State<App>,
    caller: Caller,
    Id(id): Id,
    headers: axum::http::HeaderMap,
    Body(req): Body<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let n = req.content.chars().count();
    if n == 0 || n > MAX_CONTENT_CHARS {
        return Err(ApiError::invalid("content: expected 1 to 8000 characters"));
    }
    if req.role != "user" && req.role != "companion" {
        return Err(ApiError::invalid("role: expected user or companion"));
    }
    // A user writing the companion's lines could put words in its mouth that later turns feed
    // back to the model as its own.
    if req.role == "companion" {
        super::data_plane::require_service(&app, &headers)?;
    }
    let tier = tier_of(&app, caller.id()).await?;
    let now = unix_now();
    let mut tx = app.db.begin().await?;
    if !conversations::owned(&mut tx, caller.id(), &id).await? {
        return Err(ApiError::not_found("conversation"));
    }
    if req.role == "user" {
        let day = quota::day_of(now);
        let mut today = usage::lock(&mut tx, caller.id(), day, QuotaKind::Messages).await?;
        if today.grant(QuotaKind::Messages.daily_limit(tier), 1) == 0 {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!("the {} tier's daily messages are used up", tier.as_str()),
            );
            err.retry_after = Some(quota::secs_until_reset(now));
            return Err(err);
        }
        today.used += 1;
        usage::store(&mut tx, caller.id(), day, QuotaKind::Messages, today).await?;
    }
    let msg_id = conversations::insert_message(&mut tx, &id, &req.role, &req.content, now).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Message {
            id: msg_id,
            role: req.role,
            content: req.content,
            created_at: now,
        }),
    ))
}
