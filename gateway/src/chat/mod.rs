//! Text chat: a user message in, the companion's reply streamed back token by token.
//!
//! [`ChatService`] runs one request whatever the transport: it opens the turn at the control
//! plane over HTTP with the caller's own token (rate limit, moderation, daily quota, the user
//! message stored, recent history back), streams the model's answer through the failover LLM
//! chain, and records the reply with its token usage. The WebSocket endpoint `/v1/chat/ws`
//! ([`ws`]) and the QUIC transport call it. Reference: `docs/protocol.md`, "WebSocket chat".

mod config;
mod control;
mod origin;
mod service;
mod ws;

use std::sync::Arc;

use axum::{Router, routing::get};
use pipeline::provider::LlmProvider;

pub use config::ChatConfig;
pub(crate) use origin::webtransport_origin_allowed;
pub(crate) use service::ChatService;

use crate::Gateway;

/// The chat routes (`GET /v1/chat/ws`), or none when `gateway.chat.enabled` is off.
pub(crate) fn routes(gateway: Gateway, llm: Option<Arc<dyn LlmProvider>>) -> Router {
    if !gateway.config().chat.enabled {
        return Router::new();
    }
    Router::new()
        .route("/v1/chat/ws", get(ws::upgrade))
        .with_state(ChatService::new(gateway, llm))
}
