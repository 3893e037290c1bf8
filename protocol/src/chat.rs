//! Chat: the stored message shape and the events that stream a reply token by token.
//!
//! Timestamps are **unix milliseconds** (`u64`, UTC): exact, cheap to compare, and a
//! JavaScript `Date` takes them directly (`new Date(ms)`).

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person using the app.
    User,
    /// The companion.
    Assistant,
    /// Instructions or notices from the platform.
    System,
}

/// What a message's `content` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    /// Plain text.
    #[default]
    Text,
    /// A voice message: `content` is its transcript.
    Voice,
    /// An image: `content` is its URL.
    Image,
}

/// Optional facts about how a message was produced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageMetadata {
    /// Model that wrote an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Tokens the message cost (prompt plus completion), for assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_used: Option<u32>,
    /// Length of a voice message's audio, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_duration: Option<u64>,
}

/// A message of a conversation, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Server-assigned message id.
    pub id: String,
    /// Conversation the message belongs to.
    pub conversation_id: String,
    /// Who wrote it.
    pub role: Role,
    /// The text (or transcript, or image URL, per `content_type`). Empty in `message_start`.
    pub content: String,
    /// What `content` holds.
    pub content_type: ContentType,
    /// When the message was created, unix milliseconds.
    pub timestamp: u64,
    /// How it was produced. Always present in JSON (`{}` when empty); may be omitted on input.
    #[serde(default)]
    pub metadata: MessageMetadata,
}

/// Token counts of one completed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Tokens in the prompt (history, persona, the user's message).
    pub prompt_tokens: u32,
    /// Tokens the model generated.
    pub completion_tokens: u32,
    /// `prompt_tokens + completion_tokens`, as the provider reported it.
    pub total_tokens: u32,
}

/// Why a reply stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    #[default]
    Stop,
    /// The reply hit the length limit.
    Length,
    /// The client cancelled it (`cancel`) or the user interrupted.
    Cancelled,
    /// Moderation stopped it.
    ContentFilter,
    /// A provider failed mid-reply; an `error` event says more.
    Error,
}

/// `message_start`: the companion began a reply. Carries the new assistant message with empty
/// content; `message_delta`s fill it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStart {
    /// The client's `requestId` from `send_message`, when this reply answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The assistant message being written (content empty).
    pub message: ChatMessage,
}

/// `message_delta`: the next piece of a reply's text, to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDelta {
    /// The client's `requestId`, when the reply answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The message being written (`message.id` from `message_start`).
    pub message_id: String,
    /// Conversation of the message.
    pub conversation_id: String,
    /// Text to append.
    pub delta: String,
}

/// `message_complete`: a reply is finished; carries the final message and token usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageComplete {
    /// The client's `requestId`, when the reply answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The final message, full content and metadata, as stored.
    pub message: ChatMessage,
    /// Tokens the reply cost.
    pub usage: TokenUsage,
    /// Why it stopped.
    #[serde(default)]
    pub finish_reason: FinishReason,
}

/// `typing_start` / `typing_stop`: show or hide the companion's typing indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    /// Conversation where the companion is typing.
    pub conversation_id: String,
}

/// `send_message` (client -> server): the user sends a message to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// Client-chosen id (1-128 visible ASCII characters, unique per connection) that the
    /// server echoes on every event of the reply and on errors about it.
    pub request_id: String,
    /// Conversation to post to.
    pub conversation_id: String,
    /// The message text (or image URL for `image`). Must not be empty.
    pub content: String,
    /// What `content` holds; `text` if omitted.
    #[serde(default)]
    pub content_type: ContentType,
}

/// `cancel` (client -> server): stop generating the reply to a request.
///
/// The server answers with `message_complete` (`finishReason: "cancelled"`) carrying what was
/// written so far, or nothing if the reply had already finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    /// The `requestId` of the `send_message` whose reply to stop.
    pub request_id: String,
}

/// Longest request id, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Checks a client-chosen request id: 1-128 visible ASCII characters.
pub(crate) fn check_request_id(
    event_type: &'static str,
    request_id: &str,
) -> Result<(), ProtocolError> {
    let reason = if request_id.is_empty() {
        "is empty".to_owned()
    } else if request_id.len() > MAX_REQUEST_ID_LEN {
        format!(
            "is {} bytes, at most {MAX_REQUEST_ID_LEN} allowed",
            request_id.len()
        )
    } else if !request_id.bytes().all(|b| b.is_ascii_graphic()) {
        "must be visible ASCII (no spaces or control characters)".to_owned()
    } else {
        return Ok(());
    };
    Err(ProtocolError::InvalidField {
        event_type,
        field: "requestId",
        reason,
    })
}

/// Checks that an id the protocol requires is present.
pub(crate) fn check_non_empty(
    event_type: &'static str,
    field: &'static str,
    value: &str,
) -> Result<(), ProtocolError> {
    if value.is_empty() {
        Err(ProtocolError::InvalidField {
            event_type,
            field,
            reason: "is empty".to_owned(),
        })
    } else {
        Ok(())
    }
}
