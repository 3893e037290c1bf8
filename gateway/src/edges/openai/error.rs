//! Errors in OpenAI's shape: a status and `{"error":{"message","type","param","code"}}`, so the
//! official SDKs raise their usual exception classes (`AuthenticationError`,
//! `RateLimitError`, `BadRequestError`, ...).

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use pipeline::PipelineError;
use serde_json::{Value, json};

/// An error answer of the OpenAI-compatible endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenAiError {
    pub(crate) status: StatusCode,
    /// OpenAI's `type`: `invalid_request_error`, `insufficient_quota`, `requests`,
    /// `server_error`.
    pub(crate) kind: &'static str,
    /// OpenAI's `code`, e.g. `invalid_api_key`, `rate_limit_exceeded`.
    pub(crate) code: &'static str,
    /// The request field at fault, when there is one.
    pub(crate) param: Option<String>,
    pub(crate) message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub(crate) retry_after: Option<u64>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            param: None,
            message,
            retry_after: None,
        }
    }

    /// 400: the request is malformed or asks for something unsupported.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message.into(),
        )
    }

    /// 400 about one named field.
    pub(crate) fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid("invalid_value", message).with_param(param)
    }

    /// 401: no bearer token, or one that does not verify.
    pub(crate) fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            message.into(),
        )
    }

    /// 403: the token is valid but its account may not use this.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "forbidden",
            message.into(),
        )
    }

    /// 404 `model_not_found`, worded as OpenAI words it.
    pub(crate) fn model_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{id}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    /// 413: the body is over the configured limit.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            message.into(),
        )
    }

    /// 415: a body in a format this endpoint does not read.
    pub(crate) fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            message.into(),
        )
    }

    /// 429 `rate_limit_exceeded`: too many requests this hour.
    pub(crate) fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        Self {
            retry_after,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_exceeded",
                message.into(),
            )
        }
    }

    /// 429 `insufficient_quota`: the day's allowance is spent.
    pub(crate) fn insufficient_quota(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "insufficient_quota",
                message.into(),
            )
        }
    }

    /// 503: a dependency (providers, the control plane) cannot serve now.
    pub(crate) fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            code,
            message.into(),
        )
    }

    /// 500: our own fault; the detail goes to the log.
    pub(crate) fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            format!("{context}; see the server log"),
        )
    }

    pub(crate) fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    /// The JSON body, also sent as an SSE `data:` event when a stream fails midway.
    pub(crate) fn body(&self) -> Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// Maps a provider-chain failure: a request no provider can serve is the caller's 400;
    /// everything else is an outage (503), with the provider's `Retry-After` when it gave one.
    pub(crate) fn from_pipeline(stage: &str, err: &PipelineError) -> Self {
        let last = match err {
            PipelineError::AllProvidersFailed {
                last: Some(last), ..
            } => last,
            other => other,
        };
        if !last.retryable()
            && matches!(
                last,
                PipelineError::InvalidRequest(_) | PipelineError::Status { .. }
            )
        {
            tracing::info!(error = %err, stage, "provider refused the request");
            return Self::invalid(
                "provider_rejected_request",
                format!("the {stage} provider refused this request as invalid"),
            );
        }
        tracing::warn!(error = %err, stage, "provider chain failed");
        Self {
            retry_after: last.retry_after().map(|d| retry_secs(d).max(1)),
            ..Self::unavailable(
                "provider_unavailable",
                format!("no {stage} provider could serve the request; try again shortly"),
            )
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Rounds a provider's wait up to whole seconds for `Retry-After`.
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_every_provider_calls_invalid_is_the_callers_400() {
        let err = PipelineError::AllProvidersFailed {
            stage: "llm",
            last: Some(Box::new(PipelineError::Status {
                provider: "openai".into(),
                status: 400,
                body: "context too long".into(),
            })),
        };
        let mapped = OpenAiError::from_pipeline("llm", &err);
        assert_eq!(mapped.status, StatusCode::BAD_REQUEST);
        assert!(
            !mapped.message.contains("context too long"),
            "no vendor text"
        );
    }

    #[test]
    fn an_outage_is_503_with_the_providers_retry_after() {
        let err = PipelineError::AllProvidersFailed {
            stage: "tts",
            last: Some(Box::new(PipelineError::RateLimited {
                provider: "elevenlabs".into(),
                retry_after: Some(Duration::from_millis(2500)),
            })),
        };
        let mapped = OpenAiError::from_pipeline("tts", &err);
        assert_eq!(mapped.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(mapped.retry_after, Some(3), "2.5 s rounds up");
        assert_eq!(mapped.body()["error"]["type"], "server_error");
    }
}
