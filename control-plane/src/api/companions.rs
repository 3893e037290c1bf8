//! Companions CRUD. Custom avatars count against the tier's allowance.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Caller;
use super::error::ApiError;
use super::extract::{Body, Id};
use super::usage::tier_of;
use crate::app::{App, unix_now};
use crate::db::companions::{self, Companion};
use crate::db::new_id;

/// Fields of a companion; on update every field is optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompanionFields {
    /// 1 to 64 characters.
    name: Option<String>,
    /// Up to 4,000 characters.
    persona: Option<String>,
    /// Up to 512 characters.
    avatar: Option<String>,
    /// Whether `avatar` is an uploaded image (limited per tier).
    custom_avatar: Option<bool>,
    /// Up to 64 characters.
    voice: Option<String>,
}

/// The caller's companions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CompanionList {
    companions: Vec<Companion>,
}

fn apply(c: &mut Companion, f: CompanionFields) -> Result<(), ApiError> {
    let within = |s: &str, max: usize| s.chars().count() <= max;
    if let Some(name) = f.name {
        if name.trim().is_empty() || !within(&name, 64) {
            return Err(ApiError::invalid("name: expected 1 to 64 characters"));
        }
        c.name = name.trim().to_owned();
    }
    if let Some(persona) = f.persona {
        if !within(&persona, 4_000) {
            return Err(ApiError::invalid("persona: at most 4000 characters"));
        }
        c.persona = persona;
    }
    if let Some(avatar) = f.avatar {
        if !within(&avatar, 512) {
            return Err(ApiError::invalid("avatar: at most 512 characters"));
        }
        c.avatar = avatar;
    }
    if let Some(voice) = f.voice {
        if !within(&voice, 64) {
            return Err(ApiError::invalid("voice: at most 64 characters"));
        }
        c.voice = voice;
    }
    if let Some(custom) = f.custom_avatar {
        c.custom_avatar = custom;
    }
    Ok(())
}

/// Checks the tier's custom-avatar allowance and stores `c`, in one transaction.
async fn save(app: &App, owner: &str, c: &Companion) -> Result<(), ApiError> {
    let tier = tier_of(app, owner).await?;
    let mut tx = app.db.begin().await?;
    companions::lock_owner(&mut tx, owner).await?;
    if c.custom_avatar
        && let Some(max) = tier.limits().custom_avatars
        && companions::custom_avatars(&mut tx, owner, &c.id).await? >= max
    {
        return Err(ApiError::forbidden(
            "custom_avatar_limit",
            format!("the {} tier allows {max} custom avatars", tier.as_str()),
        ));
    }
    companions::upsert(&mut tx, owner, c).await?;
    tx.commit().await?;
    Ok(())
}

/// Lists the caller's companions.
#[utoipa::path(get, path = "/api/companions", tag = "companions", security(("bearer" = [])),
    responses((status = 200, body = CompanionList)))]
pub(crate) async fn list(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<CompanionList>, ApiError> {
    Ok(Json(CompanionList {
        companions: companions::list(&app.db, caller.id()).await?,
    }))
}

/// Creates a companion.
#[utoipa::path(post, path = "/api/companions", tag = "companions", security(("bearer" = [])),
    request_body = CompanionFields,
    responses((status = 201, body = Companion), (status = 403, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody)))]
pub(crate) async fn create(
    State(app): State<App>,
    caller: Caller,
    Body(fields): Body<CompanionFields>,
) -> Result<(StatusCode, Json<Companion>), ApiError> {
    if fields.name.is_none() {
        return Err(ApiError::invalid("name: required"));
    }
    let now = unix_now();
    let mut c = Companion {
        id: new_id(),
        name: String::new(),
        persona: String::new(),
        avatar: String::new(),
        custom_avatar: false,
        voice: String::new(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut c, fields)?;
    save(&app, caller.id(), &c).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One companion.
#[utoipa::path(get, path = "/api/companions/{id}", tag = "companions", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Companion), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn get_one(
    State(app): State<App>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Companion>, ApiError> {
    let mut conn = app.db.pool.acquire().await?;
    let c = companions::get(&mut conn, caller.id(), &id).await?;
    c.map(Json).ok_or_else(|| ApiError::not_found("companion"))
}

/// Changes some fields of a companion.
#[utoipa::path(patch, path = "/api/companions/{id}", tag = "companions", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CompanionFields,
    responses((status = 200, body = Companion), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn update(
    State(app): State<App>,
    caller: Caller,
    Id(id): Id,
    Body(fields): Body<CompanionFields>,
) -> Result<Json<Companion>, ApiError> {
    let mut conn = app.db.pool.acquire().await?;
    let mut c = companions::get(&mut conn, caller.id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("companion"))?;
    drop(conn);
    apply(&mut c, fields)?;
    c.updated_at = unix_now();
    save(&app, caller.id(), &c).await?;
    Ok(Json(c))
}

/// Deletes a companion (its conversations stay, without a companion).
#[utoipa::path(delete, path = "/api/companions/{id}", tag = "companions", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = super::error::ErrorBody)))]
pub(crate) async fn delete(
    State(app): State<App>,
    caller: Caller,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if companions::delete(&app.db, caller.id(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("companion"))
    }
}
