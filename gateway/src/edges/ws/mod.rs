//! The WebSocket edge: `GET /v1/chat/ws` carries chat (a user message in, the companion's
//! reply streamed back token by token, through the core's chat service) and voice sessions
//! (`start_session`: binary audio frames both ways, through the core's voice bridge).
//! Reference: `docs/protocol.md`, "WebSocket chat" and "Voice over WebSocket".

mod chat;
mod voice;

use std::sync::Arc;

use axum::{Router, routing::get};
use pipeline::provider::LlmProvider;

use crate::core::{Node, chat::ChatService, slots::CallSlots};

/// What the WebSocket routes work with.
#[derive(Clone)]
struct WsState {
    chat: ChatService,
    /// Where a voice session takes its call slot.
    slots: Arc<dyn CallSlots>,
}

/// The WebSocket routes (`GET /v1/chat/ws`), or none when `gateway.chat.enabled` is off.
pub(crate) fn routes(
    node: Node,
    llm: Option<Arc<dyn LlmProvider>>,
    slots: Arc<dyn CallSlots>,
) -> Router {
    if !node.config().chat.enabled {
        return Router::new();
    }
    Router::new()
        .route("/v1/chat/ws", get(chat::upgrade))
        .with_state(WsState {
            chat: ChatService::new(node, llm),
            slots,
        })
}
