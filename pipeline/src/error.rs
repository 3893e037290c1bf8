//! The one error type of this crate.
//!
//! Every error says which provider it came from, whether anything had already been streamed
//! to the caller, and whether trying the next provider in the failover list can help
//! ([`PipelineError::retryable`]). Failover reads those flags instead of matching strings.

use std::time::Duration;

/// Everything that can go wrong in a provider call or in the pipeline around it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The request never got an answer: DNS, TCP, TLS or the request write failed.
    #[error("{provider}: could not reach the provider: {message}")]
    Connect {
        /// Configured provider name (`openai`, `anthropic`, ...).
        provider: String,
        /// What the transport said.
        message: String,
    },
    /// The provider answered with an HTTP error status.
    #[error("{provider}: HTTP {status}: {body}")]
    Status {
        /// Configured provider name.
        provider: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body (the vendor's error message), for the log.
        body: String,
    },
    /// The provider said 429: we are over its rate limit.
    #[error("{provider}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// Configured provider name.
        provider: String,
        /// How long the provider asked us to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// The response stream broke or ended before the provider said it was complete.
    #[error("{provider}: stream broke off{}: {message}", streamed_note(*streamed))]
    StreamCut {
        /// Configured provider name.
        provider: String,
        /// Whether tokens or audio had already been handed to the caller.
        streamed: bool,
        /// What happened.
        message: String,
    },
    /// The provider sent something that does not follow its own wire format.
    #[error("{provider}: malformed response{}: {message}", streamed_note(*streamed))]
    Protocol {
        /// Configured provider name.
        provider: String,
        /// Whether tokens or audio had already been handed to the caller.
        streamed: bool,
        /// What was wrong with it.
        message: String,
    },
    /// The provider reported an error inside the stream (Anthropic `error` event and the like).
    #[error("{provider}: provider error {kind}{}: {message}", streamed_note(*streamed))]
    ProviderReported {
        /// Configured provider name.
        provider: String,
        /// Whether tokens or audio had already been handed to the caller.
        streamed: bool,
        /// The vendor's error type, e.g. `overloaded_error`.
        kind: String,
        /// The vendor's message.
        message: String,
    },
    /// No first token / first audio / next token within the deadline.
    #[error("{provider}: no {what} within {after:?}")]
    Timeout {
        /// Configured provider name.
        provider: String,
        /// Whether tokens or audio had already been handed to the caller.
        streamed: bool,
        /// What we were waiting for ("first token", "next token", "first audio").
        what: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The request itself is unusable (empty text, bad audio); another provider will not help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Every provider of a stage failed or was unavailable (breaker open, throttled, disabled).
    #[error("{stage}: no provider could serve the request (last error: {})", last.as_deref().map_or_else(|| "none tried".to_owned(), ToString::to_string))]
    AllProvidersFailed {
        /// `llm`, `stt` or `tts`.
        stage: &'static str,
        /// The last provider error, if any provider was tried.
        last: Option<Box<PipelineError>>,
    },
    /// A configuration value is wrong; names the key.
    #[error("config: {key}: {message}")]
    Config {
        /// Dotted key path, e.g. `llm.order`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A local socket or file operation failed (binding the mock server, reading a config file).
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn streamed_note(streamed: bool) -> &'static str {
    if streamed {
        " after streaming had started"
    } else {
        ""
    }
}

impl PipelineError {
    /// Whether sending the same request to the next provider in the list can help.
    ///
    /// Transport failures, 5xx, 429, timeouts and broken streams can; a request that is itself
    /// invalid (HTTP 400/413/422, [`PipelineError::InvalidRequest`]) or a bad configuration cannot.
    /// Authentication failures (401/403) can: the next provider has its own key.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::RateLimited { .. }
            | Self::StreamCut { .. }
            | Self::Protocol { .. }
            | Self::ProviderReported { .. }
            | Self::Timeout { .. } => true,
            Self::Status { status, .. } => !matches!(status, 400 | 413 | 422),
            Self::InvalidRequest(_)
            | Self::AllProvidersFailed { .. }
            | Self::Config { .. }
            | Self::Io { .. } => false,
        }
    }

    /// Whether tokens or audio had already reached the caller when this happened.
    pub fn streamed(&self) -> bool {
        match self {
            Self::StreamCut { streamed, .. }
            | Self::Protocol { streamed, .. }
            | Self::ProviderReported { streamed, .. }
            | Self::Timeout { streamed, .. } => *streamed,
            _ => false,
        }
    }

    /// The configured name of the provider this came from, if it came from one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::Connect { provider, .. }
            | Self::Status { provider, .. }
            | Self::RateLimited { provider, .. }
            | Self::StreamCut { provider, .. }
            | Self::Protocol { provider, .. }
            | Self::ProviderReported { provider, .. }
            | Self::Timeout { provider, .. } => Some(provider),
            _ => None,
        }
    }

    /// How long the provider asked us to stay away, for a 429 with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Marks this error as having happened after something was streamed.
    pub(crate) fn with_streamed(mut self, value: bool) -> Self {
        match &mut self {
            Self::StreamCut { streamed, .. }
            | Self::Protocol { streamed, .. }
            | Self::ProviderReported { streamed, .. }
            | Self::Timeout { streamed, .. } => *streamed = value,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_request_is_not_worth_retrying_but_an_outage_is() {
        let bad = PipelineError::Status {
            provider: "openai".into(),
            status: 400,
            body: String::new(),
        };
        let down = PipelineError::Status {
            provider: "openai".into(),
            status: 503,
            body: String::new(),
        };
        assert!(!bad.retryable());
        assert!(down.retryable());
        assert_eq!(down.provider(), Some("openai"));
    }

    #[test]
    fn a_cut_stream_says_it_had_streamed() {
        let cut = PipelineError::StreamCut {
            provider: "groq".into(),
            streamed: false,
            message: "eof".into(),
        }
        .with_streamed(true);
        assert!(cut.streamed());
        assert!(cut.to_string().contains("after streaming had started"));
    }
}
