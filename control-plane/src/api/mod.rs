//! The HTTP API: routes, request and response types, and the caller extractor.

pub(crate) mod auth;
mod caller;
pub(crate) mod chat;
pub(crate) mod companions;
pub(crate) mod conversations;
pub(crate) mod data_plane;
pub(crate) mod error;
mod extract;
pub(crate) mod keys;
pub(crate) mod oauth;
pub(crate) mod quota;
pub(crate) mod subscription;
pub(crate) mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

pub(crate) use caller::Caller;

use crate::app::App;

pub(crate) fn router(app: App) -> Router {
    let max_body = app.config.max_body_bytes;
    Router::new()
        .route("/api/auth/signup", post(auth::signup))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/password", post(auth::change_password))
        .route(
            "/api/auth/verify-email",
            get(auth::verify_email_page).post(auth::verify_email),
        )
        .route(
            "/api/auth/verify-email/resend",
            post(auth::resend_verification),
        )
        .route("/api/auth/oauth/{provider}/start", get(oauth::start))
        .route("/api/auth/oauth/{provider}/callback", get(oauth::callback))
        .route("/.well-known/jwks.json", get(keys::jwks))
        .route("/api/me", get(usage::me))
        .route("/api/usage", get(usage::usage))
        .route("/api/quota/reserve", post(quota::reserve))
        .route("/api/quota/settle", post(quota::settle))
        .route(
            "/api/conversations",
            get(conversations::list).post(conversations::create),
        )
        .route(
            "/api/conversations/{id}/messages",
            get(conversations::list_messages).post(conversations::post_message),
        )
        .route("/api/chat/turns", post(chat::open_turn))
        .route(
            "/api/conversations/{id}/turns/{turn_id}",
            get(chat::get_turn),
        )
        .route(
            "/api/conversations/{id}/turns/{turn_id}/reply",
            post(chat::record_reply),
        )
        .route(
            "/api/companions",
            get(companions::list).post(companions::create),
        )
        .route(
            "/api/companions/{id}",
            get(companions::get_one)
                .patch(companions::update)
                .delete(companions::delete),
        )
        .route("/api/subscription/current", get(subscription::current))
        .route(
            "/api/subscription/create-checkout",
            post(subscription::create_checkout),
        )
        .route("/api/subscription/portal", post(subscription::portal))
        .route("/api/subscription/cancel", post(subscription::cancel))
        .route("/api/subscription/history", get(subscription::history))
        .route(
            subscription::WEBHOOK_PATH,
            // The route's own limit replaces the router-wide one below.
            post(subscription::webhook).layer(DefaultBodyLimit::max(
                subscription::WEBHOOK_MAX_BYTES.max(max_body),
            )),
        )
        // Not a router-wide fallback: the hosting binary merges this router with the gateway's.
        .route("/api/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::ratelimit::enforce,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("route")
}
