//! The HTTP plumbing every provider shares: one warm client per provider, status mapping,
//! and the loop that turns an SSE response body into a stream of decoded events.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};

use crate::PipelineError;
use crate::config::HttpConfig;
use crate::sse::{SseEvent, SseParser};

/// Builds the client one provider keeps for its lifetime: connection pooling with long idle
/// keep-alive and HTTP/2 pings, so a call's turns reuse one warm connection.
pub(crate) fn build_client(cfg: &HttpConfig) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .read_timeout(Duration::from_millis(cfg.read_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(cfg.pool_idle_timeout_secs))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .http2_keep_alive_interval(Duration::from_secs(cfg.http2_keep_alive_interval_secs))
        .http2_keep_alive_while_idle(true)
        .http2_adaptive_window(true);
    match builder.build() {
        Ok(client) => client,
        Err(error) => {
            // Only TLS backend initialisation can fail here; a default client still works.
            tracing::error!(%error, "HTTP client with tuned settings failed to build; using defaults");
            reqwest::Client::new()
        }
    }
}

/// Sends a request and turns transport failures and error statuses into typed errors.
pub(crate) async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, PipelineError> {
    let response = request.send().await.map_err(|e| PipelineError::Connect {
        provider: provider.to_owned(),
        message: error_chain(&e),
    })?;
    check_status(provider, response).await
}

/// Sends a cheap request to open the provider's connection, reading the answer to the end so
/// the connection stays in the pool for the first real request.
pub(crate) async fn warm_up(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<(), PipelineError> {
    let response = send(provider, request).await?;
    response
        .bytes()
        .await
        .map(drop)
        .map_err(|e| PipelineError::Connect {
            provider: provider.to_owned(),
            message: error_chain(&e),
        })
}

/// Passes a 2xx response through; maps anything else to [`PipelineError`].
pub(crate) async fn check_status(
    provider: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, PipelineError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.as_u16() == 429 {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return Err(PipelineError::RateLimited {
            provider: provider.to_owned(),
            retry_after,
        });
    }
    // The body carries the vendor's explanation; read a bounded amount, briefly.
    let body = tokio::time::timeout(Duration::from_secs(2), response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
        .unwrap_or_default();
    Err(PipelineError::Status {
        provider: provider.to_owned(),
        status: status.as_u16(),
        body,
    })
}

/// `Retry-After` as delay-seconds. (The HTTP-date form is rare from APIs and treated as absent.)
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .ok()
        .or_else(|| {
            value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        })
}

/// The error and its sources on one line (reqwest's top-level message alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Joins a base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// How long a finished response may take to deliver its last bytes before it is dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// What a vendor-specific SSE decoder does with each event.
pub(crate) trait SseDecoder: Send + 'static {
    /// The item type handed to the caller.
    type Item: Send + 'static;
    /// Handles one event, pushing zero or more items. Returns `true` once the vendor's
    /// end-of-stream marker was seen.
    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<Self::Item>,
    ) -> Result<bool, PipelineError>;
    /// Whether this item counts as "something was streamed" for error reporting.
    fn is_content(item: &Self::Item) -> bool;
}

struct SseState<D: SseDecoder> {
    provider: String,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<D::Item>,
    streamed: bool,
    finished: bool,
    failed: bool,
}

impl<D: SseDecoder> SseState<D> {
    async fn next(&mut self) -> Option<Result<D::Item, PipelineError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.streamed |= D::is_content(&item);
                return Some(Ok(item));
            }
            if self.failed {
                return None;
            }
            if self.finished {
                // Read the body to its end so an HTTP/1.1 connection goes back to the pool
                // (dropping it unread closes the connection); a few bytes at most remain.
                let drain = async { while let Some(Ok(_)) = self.body.next().await {} };
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
                self.failed = true;
                return None;
            }
            if let Some(event) = self.parser.next_event() {
                match self.decoder.on_event(event, &mut self.pending) {
                    Ok(done) => {
                        self.finished = done;
                        if done {
                            // The end of the body usually arrived with the end marker: consume it
                            // without waiting, so the connection is back in the pool before the
                            // caller's next request.
                            while let Some(Some(Ok(_))) = self.body.next().now_or_never() {}
                        }
                    }
                    Err(e) => return Some(Err(self.fail(e))),
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = self.parser.feed(&bytes) {
                        let error = PipelineError::Protocol {
                            provider: self.provider.clone(),
                            streamed: false,
                            message: e.to_string(),
                        };
                        return Some(Err(self.fail(error)));
                    }
                }
                Some(Err(e)) => {
                    let error = PipelineError::StreamCut {
                        provider: self.provider.clone(),
                        streamed: false,
                        message: error_chain(&e),
                    };
                    return Some(Err(self.fail(error)));
                }
                None => {
                    let error = PipelineError::StreamCut {
                        provider: self.provider.clone(),
                        streamed: false,
                        message: "response ended before the end-of-stream marker".to_owned(),
                    };
                    return Some(Err(self.fail(error)));
                }
            }
        }
    }

    fn fail(&mut self, error: PipelineError) -> PipelineError {
        self.failed = true;
        error.with_streamed(self.streamed)
    }
}

enum Phase<D: SseDecoder, F> {
    Open {
        provider: String,
        open: F,
        decoder: D,
    },
    Streaming(SseState<D>),
    Done,
}

/// A stream that sends the request on first poll, then decodes the SSE body with `decoder`.
/// Dropping it drops the response body, which cancels the request.
pub(crate) fn sse_stream<D, F>(
    provider: String,
    open: F,
    decoder: D,
) -> BoxStream<'static, Result<D::Item, PipelineError>>
where
    D: SseDecoder,
    F: Future<Output = Result<reqwest::Response, PipelineError>> + Send + 'static,
{
    let start = Phase::Open {
        provider,
        open,
        decoder,
    };
    stream::unfold(start, |phase| async move {
        let mut state = match phase {
            Phase::Done => return None,
            Phase::Streaming(state) => state,
            Phase::Open {
                provider,
                open,
                decoder,
            } => match open.await {
                Err(e) => return Some((Err(e), Phase::Done)),
                Ok(response) => SseState {
                    provider,
                    body: response.bytes_stream().boxed(),
                    parser: SseParser::new(),
                    decoder,
                    pending: VecDeque::new(),
                    streamed: false,
                    finished: false,
                    failed: false,
                },
            },
        };
        let item = state.next().await?;
        Some((item, Phase::Streaming(state)))
    })
    .boxed()
}
