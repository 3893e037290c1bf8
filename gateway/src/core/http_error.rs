//! The HTTP error every edge answers with: a status and `{"error":{"code","message"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::voice::Refusal;

/// `Retry-After` of a call refused while draining. Short: the retry is meant for another node
/// (the balancer stops routing here once `/readyz` fails), and one that lands here again
/// just gets another 503.
const DRAINING_RETRY_AFTER_SECS: u64 = 1;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header, if any.
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The node is draining for shutdown: try again (the load balancer sends the retry to
    /// another node once this one fails `/readyz`).
    pub(crate) fn draining() -> Self {
        Self {
            retry_after: Some(DRAINING_RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "this gateway is shutting down and takes no new calls; retry on another node",
            )
        }
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "media_unavailable",
            "the WebRTC media endpoint is not running",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Exhausted { resets_in_secs } => Self {
                retry_after: Some(resets_in_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "today's voice minutes are used up; they reset in {resets_in_secs} s \
                         (midnight UTC)"
                    ),
                )
            },
            Refusal::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quota_unavailable",
                "the quota service is unreachable; try again shortly",
            ),
            Refusal::RateLimited {
                message,
                retry_after,
            } => Self {
                retry_after,
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            },
            Refusal::Unauthorized(message) => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            Refusal::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
        }
    }
}
