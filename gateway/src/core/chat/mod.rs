//! One chat request from `send_message` to `typing_stop`, independent of the transport.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use pipeline::provider::{
    ChatMessage as LlmMessage, LlmEvent, LlmProvider, LlmRequest, Role as LlmRole,
};
use protocol::{
    ServerEvent,
    chat::{
        ChatMessage, ContentType, FinishReason, MessageComplete, MessageDelta, MessageMetadata,
        MessageStart, Role, SendMessage, TokenUsage, Typing,
    },
    control::{ErrorCode, ErrorEvent},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{AuthError, Caller};
use super::{
    Node,
    config::ChatConfig,
    control_plane::chat::{ControlError, ControlPlane, OpenTurn, ReplyRecord, Turn},
};

/// Longest user message, in characters (the control plane's limit too).
const MAX_CONTENT_CHARS: usize = 8_000;

/// The persona used when a conversation has no companion with one.
const DEFAULT_PERSONA: &str = "You are a warm, curious companion. Answer briefly and kindly.";

/// Runs chat requests: checks, the control plane's bookkeeping and the streamed reply.
///
/// Cheap to clone; every transport (WebSocket, QUIC, WebTransport) holds one and calls
/// [`reply`](Self::reply) once per `send_message`.
#[derive(Clone)]
pub(crate) struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    llm: Option<Arc<dyn LlmProvider>>,
    control: ControlPlane,
    config: ChatConfig,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("llm", &self.inner.llm.as_ref().map(|l| l.name().to_owned()))
            .field("control_plane", &self.inner.control)
            .finish_non_exhaustive()
    }
}

/// What a reply produced, whatever stopped it.
struct Outcome {
    text: String,
    finish: FinishReason,
    usage: Option<pipeline::provider::Usage>,
    tokens: u32,
    /// A provider error to report after the reply.
    error: Option<ErrorEvent>,
}

impl ChatService {
    /// A chat service for `node`: tokens are re-checked with its verifier, turns are kept
    /// by the control plane at `gateway.control_plane_url`, replies come from `llm` (`None`:
    /// every request fails with `llm_failed`).
    pub(crate) fn new(node: Node, llm: Option<Arc<dyn LlmProvider>>) -> Self {
        let config = node.config().chat.clone();
        let timeout = Duration::from_secs(config.control_plane_timeout_secs);
        let control = ControlPlane::new(
            super::control_plane::http_client(node.config(), timeout),
            &node.config().control_plane_url,
            timeout,
        );
        Self {
            inner: Arc::new(Inner {
                node,
                llm,
                control,
                config,
            }),
        }
    }

    /// The node this service runs on (voice sessions, drain phases, the verifier).
    pub(crate) fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The chat settings this service runs with.
    pub(crate) fn config(&self) -> &ChatConfig {
        &self.inner.config
    }

    /// Verifies a bearer token with the gateway's verifier.
    pub(crate) fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        self.inner.node.verifier().verify(token)
    }

    /// Checks `token` again (it may have expired since the connection was opened) and that it
    /// still names `caller`.
    pub(crate) fn recheck(&self, caller: &Caller, token: &str) -> Result<(), AuthError> {
        let now = self.verify(token)?;
        if now.user_id != caller.user_id {
            return Err(AuthError::Invalid(
                "the token names another account".to_owned(),
            ));
        }
        Ok(())
    }

    /// Runs one request to its end, sending on `events`: `typing_start`, `message_start`,
    /// `message_delta`…, `message_complete` (with token usage; `finishReason: "cancelled"` when
    /// `cancel` fired), `typing_stop`; or a single `error` when the request is refused before
    /// the reply starts. Every event of the reply carries the request's `requestId`.
    ///
    /// Order of work: validate, re-check the token, open the turn at the control plane (rate
    /// limit, moderation, quota, store the user message, history), stream the model's answer
    /// (failover inside the provider), record the reply and its usage.
    ///
    /// If `events` is closed (the client left), the reply stops as if cancelled and what was
    /// written is still recorded.
    pub(crate) async fn reply(
        &self,
        caller: &Caller,
        bearer_token: &str,
        request: SendMessage,
        events: mpsc::Sender<ServerEvent>,
        cancel: CancellationToken,
    ) {
        let rid = request.request_id.clone();
        let refuse = |e: ControlError| ServerEvent::Error(e.into_event(&rid));
        if let Err(e) = validate(&request) {
            let _ = events.send(refuse(e)).await;
            return;
        }
        if let Err(e) = self.recheck(caller, bearer_token) {
            let code = match e {
                AuthError::Forbidden(_) => ErrorCode::Forbidden,
                _ => ErrorCode::Unauthorized,
            };
            let _ = events
                .send(refuse(ControlError::new(code, e.to_string(), false)))
                .await;
            return;
        }
        let Some(llm) = self.inner.llm.clone() else {
            let e = ControlError::new(
                ErrorCode::LlmFailed,
                "no language model is configured",
                false,
            );
            let _ = events.send(refuse(e)).await;
            return;
        };
        let content_type = match request.content_type {
            ContentType::Text => "text",
            ContentType::Voice => "voice",
            ContentType::Image => "image",
        };
        let open = OpenTurn {
            conversation_id: &request.conversation_id,
            content: &request.content,
            content_type,
            history_limit: self.inner.config.history_messages,
        };
        let turn = match self.inner.control.open_turn(bearer_token, &open).await {
            Ok(turn) => turn,
            Err(e) => {
                let _ = events.send(refuse(e)).await;
                return;
            }
        };
        tracing::debug!(user = %caller.user_id, turn = %turn.turn_id, "chat turn opened");
        let conversation_id = request.conversation_id.clone();
        let model = llm.name().to_owned();
        let started = ChatMessage {
            id: turn.turn_id.clone(),
            conversation_id: conversation_id.clone(),
            role: Role::Assistant,
            content: String::new(),
            content_type: ContentType::Text,
            timestamp: unix_ms(),
            metadata: MessageMetadata {
                model: Some(model.clone()),
                ..MessageMetadata::default()
            },
        };
        let typing = Typing {
            conversation_id: conversation_id.clone(),
        };
        // A failed send means the client is gone: the reply stops but is still recorded.
        let mut open = events
            .send(ServerEvent::TypingStart(typing.clone()))
            .await
            .is_ok()
            && events
                .send(ServerEvent::MessageStart(MessageStart {
                    request_id: Some(rid.clone()),
                    message: started.clone(),
                }))
                .await
                .is_ok();

        let llm_request = self.llm_request(&turn);
        let prompt_chars: usize = llm_request.messages.iter().map(|m| m.content.len()).sum();
        let outcome = if open {
            stream_reply(
                &*llm,
                llm_request,
                &events,
                &cancel,
                &rid,
                &turn.turn_id,
                &conversation_id,
            )
            .await
        } else {
            Outcome {
                text: String::new(),
                finish: FinishReason::Cancelled,
                usage: None,
                tokens: 0,
                error: None,
            }
        };
        if outcome.finish == FinishReason::Cancelled && events.is_closed() {
            open = false;
        }

        // Providers report usage at the end of a finished answer; a cut one is estimated
        // (about four characters per prompt token, one token per streamed piece).
        let usage = match outcome.usage {
            Some(u) => TokenUsage {
                prompt_tokens: u.input_tokens,
                completion_tokens: u.output_tokens,
                total_tokens: u.input_tokens.saturating_add(u.output_tokens),
            },
            None => {
                let prompt = u32::try_from(prompt_chars.div_ceil(4)).unwrap_or(u32::MAX);
                TokenUsage {
                    prompt_tokens: prompt,
                    completion_tokens: outcome.tokens,
                    total_tokens: prompt.saturating_add(outcome.tokens),
                }
            }
        };
        let record = ReplyRecord {
            content: &outcome.text,
            finish_reason: finish_name(outcome.finish),
            model: &model,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        };
        let recorded = self
            .inner
            .control
            .record_reply(bearer_token, &conversation_id, &turn.turn_id, &record)
            .await;
        if !open {
            return;
        }
        let stored = match recorded {
            Ok(r) => r.message,
            Err(e) => {
                tracing::warn!(turn = %turn.turn_id, code = e.code.as_str(), "reply not recorded");
                let _ = events.send(refuse(e)).await;
                None
            }
        };
        if !outcome.text.is_empty() || outcome.error.is_none() {
            let message = ChatMessage {
                content: outcome.text,
                timestamp: stored.as_ref().map_or(started.timestamp, |m| {
                    u64::try_from(m.created_at).unwrap_or(0) * 1000
                }),
                metadata: MessageMetadata {
                    model: Some(model),
                    tokens_used: Some(usage.total_tokens),
                    voice_duration: None,
                },
                ..started
            };
            let _ = events
                .send(ServerEvent::MessageComplete(MessageComplete {
                    request_id: Some(rid.clone()),
                    message,
                    usage,
                    finish_reason: outcome.finish,
                }))
                .await;
        }
        if let Some(error) = outcome.error {
            let _ = events.send(ServerEvent::Error(error)).await;
        }
        let _ = events.send(ServerEvent::TypingStop(typing)).await;
    }

    fn llm_request(&self, turn: &Turn) -> LlmRequest {
        let persona = if turn.persona.trim().is_empty() {
            DEFAULT_PERSONA
        } else {
            &turn.persona
        };
        let mut messages = Vec::with_capacity(turn.history.len() + 1);
        messages.push(LlmMessage::new(LlmRole::System, persona));
        for item in &turn.history {
            let role = match item.role.as_str() {
                "user" => LlmRole::User,
                "system" => LlmRole::System,
                _ => LlmRole::Assistant,
            };
            messages.push(LlmMessage::new(role, item.content.clone()));
        }
        // The history ends with the new message; make sure of it even if the list was cut.
        if turn
            .history
            .last()
            .is_none_or(|h| h.content != turn.user_message.content)
        {
            messages.push(LlmMessage::new(
                LlmRole::User,
                turn.user_message.content.clone(),
            ));
        }
        let mut request = LlmRequest::new(messages);
        if self.inner.config.max_reply_tokens > 0 {
            request.max_tokens = Some(self.inner.config.max_reply_tokens);
        }
        request
    }
}

/// Streams the model's answer as `message_delta`s until it ends, fails, is cancelled or the
/// client goes away. Dropping the provider stream cancels the provider request.
async fn stream_reply(
    llm: &dyn LlmProvider,
    request: LlmRequest,
    events: &mpsc::Sender<ServerEvent>,
    cancel: &CancellationToken,
    rid: &str,
    message_id: &str,
    conversation_id: &str,
) -> Outcome {
    let mut out = Outcome {
        text: String::new(),
        finish: FinishReason::Stop,
        usage: None,
        tokens: 0,
        error: None,
    };
    let mut stream = llm.stream(request);
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                out.finish = FinishReason::Cancelled;
                return out;
            }
            next = stream.next() => next,
        };
        match next {
            Some(Ok(LlmEvent::Token(piece))) => {
                if piece.is_empty() {
                    continue;
                }
                out.tokens = out.tokens.saturating_add(1);
                out.text.push_str(&piece);
                let delta = ServerEvent::MessageDelta(MessageDelta {
                    request_id: Some(rid.to_owned()),
                    message_id: message_id.to_owned(),
                    conversation_id: conversation_id.to_owned(),
                    delta: piece,
                });
                // Waiting here is the backpressure: a slow reader slows the model's stream.
                let sent = tokio::select! {
                    biased;
                    () = cancel.cancelled() => {
                        out.finish = FinishReason::Cancelled;
                        return out;
                    }
                    sent = events.send(delta) => sent,
                };
                if sent.is_err() {
                    out.finish = FinishReason::Cancelled;
                    return out;
                }
            }
            Some(Ok(LlmEvent::Finished { usage, stop_reason })) => {
                out.usage = usage;
                out.finish = match stop_reason.as_deref() {
                    Some("length" | "max_tokens") => FinishReason::Length,
                    Some("content_filter") => FinishReason::ContentFilter,
                    _ => FinishReason::Stop,
                };
                return out;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the language model failed");
                out.finish = FinishReason::Error;
                out.error = Some(ErrorEvent {
                    code: ErrorCode::LlmFailed,
                    message: "the language model failed on every provider".to_owned(),
                    retryable: true,
                    retry_after_ms: None,
                    request_id: Some(rid.to_owned()),
                    session_id: None,
                });
                return out;
            }
            // A stream that ends without `Finished` was cut: keep what arrived.
            None => return out,
        }
    }
}

fn validate(request: &SendMessage) -> Result<(), ControlError> {
    let bad = |m: &str| Err(ControlError::new(ErrorCode::BadRequest, m, false));
    if request.conversation_id.is_empty() || request.conversation_id.len() > 128 {
        return bad("conversationId: expected 1 to 128 characters");
    }
    let n = request.content.chars().count();
    if n == 0 || n > MAX_CONTENT_CHARS {
        return bad("content: expected 1 to 8000 characters");
    }
    if request.content_type != ContentType::Text {
        return bad("contentType: only text messages are accepted on chat connections");
    }
    Ok(())
}

fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Error => "error",
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
