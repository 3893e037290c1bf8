//! The control plane's chat-turn API as the gateway calls it: over HTTP, with the caller's own
//! bearer token (the design's one rule: the gateway never reads the control plane's tables).
//!
//! - `POST /api/chat/turns` opens a turn: ownership, the `chat` rate limit, moderation and the
//!   daily message quota are checked, the user's message is stored, and the recent history and
//!   the companion's persona come back.
//! - `POST /api/conversations/{id}/turns/{turn}/reply` records how the turn ended: the reply
//!   (possibly cut short) and its token usage.

use std::time::Duration;

use protocol::control::{ErrorCode, ErrorEvent};
use serde::{Deserialize, Serialize};

/// What the gateway sends to open a turn.
#[derive(Debug, Serialize)]
pub(crate) struct OpenTurn<'a> {
    pub(crate) conversation_id: &'a str,
    pub(crate) content: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) history_limit: u32,
}

/// A stored message as the control plane lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StoredMessage {
    pub(crate) content: String,
    pub(crate) created_at: i64,
}

/// One message of the model's context.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryItem {
    pub(crate) role: String,
    pub(crate) content: String,
}

/// An opened turn.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Turn {
    pub(crate) turn_id: String,
    pub(crate) user_message: StoredMessage,
    /// Recent messages, oldest first, ending with the user's new message.
    pub(crate) history: Vec<HistoryItem>,
    /// The companion's persona (system prompt).
    pub(crate) persona: String,
}

/// How a turn ended.
#[derive(Debug, Serialize)]
pub(crate) struct ReplyRecord<'a> {
    pub(crate) content: &'a str,
    pub(crate) finish_reason: &'a str,
    pub(crate) model: &'a str,
    pub(crate) prompt_tokens: u32,
    pub(crate) completion_tokens: u32,
}

/// The recorded outcome.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Recorded {
    /// The stored reply; `None` when nothing was written (failed before the first token).
    pub(crate) message: Option<StoredMessage>,
}

/// A failed control-plane request, already in the shape clients receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) retryable: bool,
    pub(crate) retry_after_ms: Option<u64>,
}

impl ControlError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code,
            message: message.into(),
            retryable,
            retry_after_ms: None,
        }
    }

    pub(crate) fn into_event(self, request_id: &str) -> ErrorEvent {
        ErrorEvent {
            code: self.code,
            message: self.message,
            retryable: self.retryable,
            retry_after_ms: self.retry_after_ms,
            request_id: Some(request_id.to_owned()),
            session_id: None,
        }
    }

    /// Maps an HTTP error answer (`status`, `{"error":{"code","message"}}`, `Retry-After`)
    /// to the protocol's error codes.
    pub(crate) fn from_http(
        status: u16,
        code: &str,
        message: String,
        retry_after: Option<u64>,
    ) -> Self {
        let (code, retryable) = match (status, code) {
            (401, _) => (ErrorCode::Unauthorized, false),
            (403, _) => (ErrorCode::Forbidden, false),
            (404, _) => (ErrorCode::NotFound, false),
            (409, _) => (ErrorCode::Conflict, false),
            (413, _) => (ErrorCode::PayloadTooLarge, false),
            (429, "quota_exceeded") => (ErrorCode::QuotaExceeded, false),
            (429, _) => (ErrorCode::RateLimited, true),
            (_, "content_blocked") => (ErrorCode::ContentBlocked, false),
            (400..=499, _) => (ErrorCode::BadRequest, false),
            _ => (ErrorCode::Internal, true),
        };
        Self {
            code,
            message,
            retryable,
            retry_after_ms: retry_after.map(|s| s.saturating_mul(1000)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// An HTTP client for the chat-turn API of one control plane.
#[derive(Debug, Clone)]
pub(crate) struct ControlPlane {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl ControlPlane {
    pub(crate) fn new(http: reqwest::Client, base: &str, timeout: Duration) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    pub(crate) async fn open_turn(
        &self,
        token: &str,
        request: &OpenTurn<'_>,
    ) -> Result<Turn, ControlError> {
        self.post(token, "/api/chat/turns".to_owned(), request)
            .await
    }

    pub(crate) async fn record_reply(
        &self,
        token: &str,
        conversation_id: &str,
        turn_id: &str,
        record: &ReplyRecord<'_>,
    ) -> Result<Recorded, ControlError> {
        let path = format!(
            "/api/conversations/{}/turns/{}/reply",
            path_segment(conversation_id),
            path_segment(turn_id)
        );
        self.post(token, path, record).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: String,
        body: &impl Serialize,
    ) -> Result<T, ControlError> {
        if self.base.is_empty() {
            return Err(ControlError::new(
                ErrorCode::Internal,
                "chat is not available: gateway.control_plane_url is not set",
                false,
            ));
        }
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| {
            tracing::warn!(error = %e, %path, "control plane request failed");
            ControlError::new(
                ErrorCode::Internal,
                "the control plane is unreachable",
                true,
            )
        };
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(|e| {
                tracing::error!(error = %e, %path, "control plane answer not understood");
                ControlError::new(ErrorCode::Internal, "unexpected control plane answer", true)
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let detail = response
            .json::<ErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_else(|_| ErrorDetail {
                code: "internal".to_owned(),
                message: format!("control plane answered {status}"),
            });
        Err(ControlError::from_http(
            status.as_u16(),
            &detail.code,
            detail.message,
            retry_after,
        ))
    }
}

/// Ids come from clients: anything but letters, digits, `-`, `_` and `~` is percent-encoded
/// (dots too, so `..` cannot climb out), so an id cannot reach another path.
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_map_to_protocol_codes() {
        let quota = ControlError::from_http(429, "quota_exceeded", "spent".into(), Some(60));
        assert_eq!(quota.code, ErrorCode::QuotaExceeded);
        assert!(!quota.retryable);
        assert_eq!(quota.retry_after_ms, Some(60_000));
        let limited = ControlError::from_http(429, "rate_limited", "slow".into(), Some(2));
        assert_eq!(limited.code, ErrorCode::RateLimited);
        assert!(limited.retryable);
        assert_eq!(
            ControlError::from_http(422, "content_blocked", "no".into(), None).code,
            ErrorCode::ContentBlocked
        );
        assert_eq!(
            ControlError::from_http(404, "not_found", "no".into(), None).code,
            ErrorCode::NotFound
        );
        assert_eq!(
            ControlError::from_http(503, "x", "down".into(), None).code,
            ErrorCode::Internal
        );
    }

    #[test]
    fn client_ids_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("abc-1_2"), "abc-1_2");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
