//! `POST /v1/chat/completions`, the async half: quota, the provider chain, and the answer as
//! one JSON object or as an SSE stream that stops the provider when the client goes away.

use std::collections::VecDeque;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use pipeline::{LlmEvent, LlmStream, Usage};

use crate::core::control_plane::quota::QuotaKind;

use super::{
    OpenAi,
    chat::{self, Answer, ChunkWriter},
    error::OpenAiError,
    limits, random_id, require_json,
    settle::Settlement,
    unix_now,
};

pub(crate) async fn create(
    State(api): State<OpenAi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let who = api.authenticate(&headers)?;
    require_json(&headers)?;
    let mut request = chat::parse(&super::body_bytes(body)?)?;
    // Size per tier, then the chat rate, both before any quota or provider work.
    let limits = limits::for_tier(&api.config.tiers, &who.caller.tier);
    let prompt_chars: usize = request
        .llm
        .messages
        .iter()
        .map(|m| m.content.chars().count())
        .sum();
    if prompt_chars > limits.max_prompt_chars {
        return Err(OpenAiError::invalid(
            "context_length_exceeded",
            format!(
                "the messages hold {prompt_chars} characters; the {} tier allows {}",
                who.caller.tier, limits.max_prompt_chars
            ),
        )
        .with_param("messages"));
    }
    request.llm.max_tokens = Some(limits.cap_tokens(request.llm.max_tokens));
    let admitted = api
        .chat_rate
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .check(&who.caller.user_id, std::time::Instant::now());
    if let Err(retry_after) = admitted {
        return Err(OpenAiError::rate_limited(
            format!(
                "at most {} chat completions per {} s; retry in {retry_after} s",
                api.config.chat_requests_per_window, api.config.chat_window_secs
            ),
            Some(retry_after),
        ));
    }
    let llm = api.providers()?.llm.clone();
    let reservation =
        super::reserve::reserve(&api.quota, &who.token, QuotaKind::Messages, 1).await?;
    let mut settlement = Settlement::new(api.quota.clone(), who.token, reservation);
    tracing::info!(user = %who.caller.user_id, stream = request.stream, "openai chat completion");

    let answer = Answer {
        id: format!("chatcmpl-{}", random_id()),
        created: unix_now(),
        model: request.model.clone(),
    };
    let mut tokens = llm.stream(request.llm);
    // Wait for the first event before answering, so a chain that cannot serve at all is a
    // proper 503 rather than a 200 stream that breaks at once.
    let first = settlement
        .first_or_refund(
            &mut tokens,
            "llm",
            "the language model ended its answer before it began",
        )
        .await?;
    if request.stream {
        let writer = ChunkWriter::new(answer, request.include_usage);
        return Ok(sse(Streaming::new(writer, first, tokens, settlement)));
    }

    let mut text = String::new();
    let mut next = Some(first);
    loop {
        match next.take() {
            Some(LlmEvent::Token(t)) => text.push_str(&t),
            Some(LlmEvent::Finished { usage, stop_reason }) => {
                settlement.finish(1).await;
                let object = answer.completion(&text, stop_reason.as_deref(), usage);
                return Ok(Json(object).into_response());
            }
            None => {}
        }
        match tokens.next().await {
            Some(Ok(event)) => next = Some(event),
            Some(Err(e)) => {
                settlement.finish(0).await;
                return Err(OpenAiError::from_pipeline("llm", &e));
            }
            None => {
                settlement.finish(0).await;
                return Err(OpenAiError::unavailable(
                    "provider_unavailable",
                    "the language model's answer broke off",
                ));
            }
        }
    }
}

/// The state of one streamed answer. The response body owns it: when the client disconnects,
/// hyper drops the body, which drops the provider stream (cancelling the request upstream)
/// and the settlement (which then settles in the background).
struct Streaming {
    writer: ChunkWriter,
    pending: VecDeque<String>,
    tokens: Option<LlmStream>,
    settlement: Settlement,
}

impl Streaming {
    fn new(
        writer: ChunkWriter,
        first: LlmEvent,
        tokens: LlmStream,
        settlement: Settlement,
    ) -> Self {
        let mut this = Self {
            pending: VecDeque::from([writer.role()]),
            writer,
            tokens: Some(tokens),
            settlement,
        };
        if let Some(text) = this.event(first) {
            this.pending.push_back(text);
        }
        this
    }

    /// The SSE text for one provider event; `Finished` ends the stream.
    fn event(&mut self, event: LlmEvent) -> Option<String> {
        match event {
            LlmEvent::Token(t) if t.is_empty() => None,
            LlmEvent::Token(t) => {
                // Text reached the client: the message is spent even if the stream breaks.
                self.settlement.set_used(1);
                Some(self.writer.content(&t))
            }
            LlmEvent::Finished { usage, stop_reason } => {
                self.tokens = None;
                self.settlement.set_used(1);
                Some(self.finish(stop_reason.as_deref(), usage))
            }
        }
    }

    fn finish(&self, stop_reason: Option<&str>, usage: Option<Usage>) -> String {
        self.writer.finish(stop_reason, usage)
    }

    async fn next_text(&mut self) -> Option<String> {
        loop {
            if let Some(text) = self.pending.pop_front() {
                if self.tokens.is_none() && self.pending.is_empty() {
                    // The last piece: settle before handing it over, so a client that reads
                    // `[DONE]` and then checks its usage sees this request counted.
                    self.settlement.settle_now().await;
                }
                return Some(text);
            }
            let tokens = self.tokens.as_mut()?;
            match tokens.next().await {
                Some(Ok(event)) => {
                    if let Some(text) = self.event(event) {
                        self.pending.push_back(text);
                    }
                }
                Some(Err(e)) => {
                    self.tokens = None;
                    let err = OpenAiError::from_pipeline("llm", &e);
                    self.pending.push_back(self.writer.error(&err));
                }
                None => {
                    self.tokens = None;
                    let err = OpenAiError::unavailable(
                        "provider_unavailable",
                        "the language model's answer broke off",
                    );
                    self.pending.push_back(self.writer.error(&err));
                }
            }
        }
    }
}

fn sse(streaming: Streaming) -> Response {
    let body = stream::unfold(streaming, |mut s| async move {
        let text = s.next_text().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(text)), s))
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies (nginx) must not buffer the token stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;
    use crate::core::control_plane::quota::{QuotaClient, Reservation};

    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_dropping_the_body_drops_the_provider_stream() {
        let dropped = Arc::new(AtomicBool::new(false));
        // An answer that never ends, holding a flag that says when it is dropped.
        let tokens: LlmStream = stream::unfold(DropFlag(dropped.clone()), |flag| async move {
            Some((Ok(LlmEvent::Token("la ".into())), flag))
        })
        .boxed();
        let reservation = Reservation {
            key: "k".into(),
            granted: 1,
        };
        // Nothing listens on port 9: the background settlement just logs its failure.
        let settlement = Settlement::new(
            QuotaClient::new(&crate::core::config::Config {
                control_plane_url: "http://127.0.0.1:9".into(),
                ..crate::core::config::Config::default()
            }),
            "t".into(),
            reservation,
        );
        let answer = Answer {
            id: "chatcmpl-test".into(),
            created: 0,
            model: "m".into(),
        };
        let writer = ChunkWriter::new(answer, false);
        let first = LlmEvent::Token("hi ".into());
        let response = sse(Streaming::new(writer, first, tokens, settlement));
        let mut body = response.into_body().into_data_stream();
        for _ in 0..5 {
            let chunk = body.next().await.expect("more").expect("bytes");
            assert!(chunk.starts_with(b"data: {"));
        }
        assert!(!dropped.load(Ordering::SeqCst));
        drop(body);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the provider request went with the client"
        );
    }
}
