//! `GET /v1/chat/ws`: chat over a WebSocket (subprotocol `companion.v1`).
//!
//! One task per connection reads client events and starts replies (each its own task, at most
//! `max_concurrent_requests` at once); one writer task owns the socket's sending half and is
//! fed by a bounded queue, so a client that stops reading holds back the replies (and so the
//! model streams) instead of growing memory, and is closed with 4008 once one write stays
//! blocked for `slow_consumer_timeout_ms`.
//!
//! The same connection carries one voice session at a time (`start_session`): binary audio
//! frames go to it, its audio, visemes and events come back through a second bounded queue
//! the same writer drains (see `voice/ws.rs` for what is dropped when that queue is full).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{
        State,
        ws::{
            CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _, stream::SplitSink};
use protocol::{
    ClientEvent, Frame, FrameType, ServerEvent, WS_SUBPROTOCOL,
    control::{Auth, ErrorCode, ErrorEvent, Heartbeat, Hello},
    voice::StartSession,
};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    WsState,
    voice::{WsInput, WsStart, WsVoice, start_session},
};
use crate::core::{
    auth::{self, AuthError, Caller},
    chat::ChatService,
    http_error::ApiError,
    origin::origin_allowed,
    slots::{CallSlots, SlotError},
    voice::{self, Refusal},
};

/// Close code: nothing arrived for three heartbeat intervals.
pub(crate) const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4000;
/// Close code: the access token expired (or was revoked); reconnect with a fresh one.
pub(crate) const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code: the client read too slowly; one write stayed blocked past the limit.
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code (RFC 6455): a message over `max_message_bytes`.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// The socket's read buffer, allocated up front per connection. tungstenite's default is
/// 128 KiB, which made an idle connection cost ~143 KiB; events are small and a larger
/// message is still read whole, in more reads.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Prefix of a bearer token carried in `Sec-WebSocket-Protocol` (browsers cannot set headers).
pub(crate) const TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// Checks origin, subprotocol and token, then upgrades. Refusals are HTTP errors with the
/// usual JSON body, before any WebSocket exists.
pub(crate) async fn upgrade(
    State(WsState {
        chat: service,
        slots,
    }): State<WsState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(rejection.status(), "not_a_websocket", rejection.body_text())
                .into_response();
        }
    };
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let config = service.config();
    if !origin_allowed(
        text(header::ORIGIN),
        text(header::HOST),
        &config.allowed_origins,
    ) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this page's origin may not open chat connections (gateway.chat.allowed_origins)",
        )
        .into_response();
    }
    let offered = offered_protocols(&headers);
    if !offered.iter().any(|p| p == WS_SUBPROTOCOL) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_version",
            format!("offer the WebSocket subprotocol {WS_SUBPROTOCOL}"),
        )
        .into_response();
    }
    let Some(token) = bearer_token(&headers, &offered) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer <token>` or offer the subprotocol `bearer.<token>`",
        )
        .into_response();
    };
    let caller = match service.verify(&token) {
        Ok(caller) => caller,
        Err(e @ AuthError::Forbidden(_)) => {
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
                .into_response();
        }
        Err(e) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
                .into_response();
        }
    };
    let limit = config.max_message_bytes;
    ws.protocols([WS_SUBPROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER_BYTES)
        // The client has its 101 by now; without this line the connection would just end.
        .on_failed_upgrade(|error| tracing::warn!(%error, "chat WebSocket upgrade failed"))
        .on_upgrade(move |socket| Connection::run(socket, service, slots, caller, token))
}

/// Every subprotocol the client offered, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The `Authorization: Bearer` token, else a `bearer.<token>` subprotocol.
fn bearer_token(headers: &HeaderMap, offered: &[String]) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = value.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_owned());
    }
    offered
        .iter()
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// What the reader asks the writer to do besides sending events.
enum Control {
    Ping,
    Close(u16, &'static str),
}

struct Connection {
    service: ChatService,
    /// Where a voice session takes its call slot.
    slots: Arc<dyn CallSlots>,
    caller: Caller,
    token: String,
    events: mpsc::Sender<ServerEvent>,
    control: mpsc::Sender<Control>,
    /// Cancelled when the connection ends, from either side; parent of every request's token.
    done: CancellationToken,
    running: HashMap<String, CancellationToken>,
    replies: JoinSet<String>,
    /// The connection's voice session, once started (it may have ended since).
    voice: Option<WsVoice>,
    /// The voice session's side of the outbound queue (binary frames and its events).
    voice_out: mpsc::Sender<Message>,
    /// Audio frames dropped because the session's input queue was full.
    audio_dropped: u64,
}

impl Connection {
    async fn run(
        socket: WebSocket,
        service: ChatService,
        slots: Arc<dyn CallSlots>,
        caller: Caller,
        token: String,
    ) {
        let id = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let config = service.config().clone();
        let (sink, mut stream) = socket.split();
        let (events, events_rx) = mpsc::channel(config.outbound_queue);
        let (control, control_rx) = mpsc::channel(4);
        let (voice_out, voice_rx) = mpsc::channel(config.outbound_queue);
        let done = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            sink,
            events_rx,
            control_rx,
            voice_rx,
            done.clone(),
            Duration::from_millis(config.slow_consumer_timeout_ms),
        ));
        let interval = Duration::from_secs(config.heartbeat_interval_secs);
        tracing::debug!(connection = id, user = %caller.user_id, "chat connection open");
        let mut conn = Self {
            service,
            slots,
            caller,
            token,
            events,
            control,
            done: done.clone(),
            running: HashMap::new(),
            replies: JoinSet::new(),
            voice: None,
            voice_out,
            audio_dropped: 0,
        };
        let hello = ServerEvent::Hello(Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            connection_id: format!("conn_{id}"),
            max_event_bytes: u32::try_from(config.max_message_bytes).unwrap_or(u32::MAX),
            max_frame_payload: u32::try_from(protocol::MAX_FRAME_PAYLOAD).unwrap_or(u32::MAX),
            heartbeat_interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        });
        let _ = conn.events.send(hello).await;

        let mut heartbeat = tokio::time::interval_at(Instant::now() + interval, interval);
        let mut last_heard = Instant::now();
        let auth_timeout = Duration::from_secs(config.auth_timeout_secs);
        // Set while the connection's token no longer verifies: the moment it must be replaced.
        let mut reauth_by: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = done.cancelled() => break,
                Some(finished) = conn.replies.join_next(), if !conn.replies.is_empty() => {
                    if let Ok(request_id) = finished {
                        conn.running.remove(&request_id);
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= interval * 3 {
                        conn.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout").await;
                        break;
                    }
                    // A connection holds its caller's authority only while the token does.
                    let valid = conn.live_voice().is_some()
                        || conn.service.recheck(&conn.caller, &conn.token).is_ok();
                    reauth_by = match (valid, reauth_by) {
                        (true, _) => None,
                        (false, None) => Some(Instant::now() + auth_timeout),
                        (false, by) => by,
                    };
                    let _ = conn.control.try_send(Control::Ping);
                }
                () = sleep_until(reauth_by) => {
                    if conn.live_voice().is_none()
                        && conn.service.recheck(&conn.caller, &conn.token).is_err()
                    {
                        let message = "the access token has expired: reconnect with a fresh one";
                        conn.error(None, ErrorCode::Unauthorized, message).await;
                        conn.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
                        break;
                    }
                    reauth_by = None;
                }
                message = stream.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(message)) => {
                            if !conn.handle(message).await {
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            if too_big(&e) {
                                conn.close(CLOSE_TOO_BIG, "message too big").await;
                            } else {
                                tracing::debug!(connection = id, error = %e, "chat socket error");
                            }
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        // Running replies stop; each still records what it wrote before its task ends.
        done.cancel();
        drop(conn.events);
        drop(conn.control);
        drop(conn.voice_out);
        // Closing the session's input ends it (`transport_closed`) and frees its call slot.
        if let Some(voice) = conn.voice.take() {
            drop(voice.input);
            let _ = voice.task.await;
        }
        while conn.replies.join_next().await.is_some() {}
        let _ = writer.await;
        // The closing handshake: when we closed, read on until the client's own Close (a
        // second at most) before dropping the socket. Dropping it with the client's last
        // frames (a pong) unread answers them with a TCP reset, and a reset makes the
        // client's kernel discard our Close frame before the client has read it.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        tracing::debug!(
            connection = id,
            audio_dropped = conn.audio_dropped,
            "chat connection closed"
        );
    }

    /// Handles one inbound message; `false` ends the connection.
    async fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::Text(text) => self.handle_text(&text).await,
            Message::Binary(bytes) => {
                self.handle_binary(&bytes).await;
                true
            }
            Message::Close(_) => false,
            Message::Ping(_) | Message::Pong(_) => true,
        }
    }

    async fn handle_text(&mut self, text: &str) -> bool {
        let event = match ClientEvent::from_json_str(text) {
            Ok(event) => event,
            Err(e) => {
                self.error(None, e.error_code(), &e.to_string()).await;
                return true;
            }
        };
        match event {
            ClientEvent::SendMessage(request) => self.start(request).await,
            ClientEvent::Cancel(cancel) => {
                // Unknown ids are replies that already finished: nothing to do.
                if let Some(token) = self.running.get(&cancel.request_id) {
                    token.cancel();
                }
                true
            }
            ClientEvent::Ping(Heartbeat { nonce }) => {
                let _ = self
                    .events
                    .send(ServerEvent::Pong(Heartbeat { nonce }))
                    .await;
                true
            }
            ClientEvent::Pong(_) => true,
            ClientEvent::StartSession(request) => self.start_voice(request).await,
            ClientEvent::HangUp => self.voice_control(voice::Control::HangUp).await,
            ClientEvent::Interrupt => self.voice_control(voice::Control::Interrupt).await,
            ClientEvent::Mute => self.voice_control(voice::Control::Mute(true)).await,
            ClientEvent::Unmute => self.voice_control(voice::Control::Mute(false)).await,
            ClientEvent::Configure(c) => self.voice_control(voice::Control::Configure(c)).await,
            ClientEvent::Auth(fresh) => {
                self.refresh(fresh).await;
                true
            }
            other => {
                let message = format!(
                    "`{}` is not supported on chat connections",
                    other.type_name()
                );
                self.error(None, ErrorCode::BadRequest, &message).await;
                true
            }
        }
    }

    async fn start(&mut self, request: protocol::chat::SendMessage) -> bool {
        let rid = request.request_id.clone();
        if let Err(e) = self.service.recheck(&self.caller, &self.token) {
            self.error(Some(&rid), ErrorCode::Unauthorized, &e.to_string())
                .await;
            // A connection is bound to its token: once that expires the client must reconnect
            // (or send `auth`). Not while a voice session runs on it: closing would cut the
            // call, which its own quota renewals govern; the client refreshes and retries.
            if self.live_voice().is_some() {
                return true;
            }
            self.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
            return false;
        }
        if self.running.contains_key(&rid) {
            self.error(
                Some(&rid),
                ErrorCode::Conflict,
                "this requestId is already running",
            )
            .await;
            return true;
        }
        let max = self.service.config().max_concurrent_requests;
        if self.running.len() >= max {
            let message = format!("at most {max} replies may run at once on one connection");
            self.error(Some(&rid), ErrorCode::RateLimited, &message)
                .await;
            return true;
        }
        let cancel = self.done.child_token();
        self.running.insert(rid.clone(), cancel.clone());
        let (service, caller, token) = (
            self.service.clone(),
            self.caller.clone(),
            self.token.clone(),
        );
        let events = self.events.clone();
        self.replies.spawn(async move {
            service
                .reply(&caller, &token, request, events, cancel)
                .await;
            rid
        });
        true
    }

    /// The running voice session, if any.
    fn live_voice(&self) -> Option<&WsVoice> {
        self.voice.as_ref().filter(|v| !v.task.is_finished())
    }

    /// `start_session`: one voice session per connection at a time, counted with the
    /// caller's WebRTC calls against `max_concurrent_calls`.
    async fn start_voice(&mut self, request: StartSession) -> bool {
        let rid = request.request_id.clone();
        if self.live_voice().is_some() {
            let message = "a voice session is already running on this connection";
            self.error(Some(&rid), ErrorCode::Conflict, message).await;
            return true;
        }
        // The formats were checked when the event was decoded (`AudioFormat::validate`).
        if let Err(e) = self.service.recheck(&self.caller, &self.token) {
            self.error(Some(&rid), ErrorCode::Unauthorized, &e.to_string())
                .await;
            self.close(CLOSE_TOKEN_EXPIRED, "token expired").await;
            return false;
        }
        let node = self.service.node();
        let Some(factory) = node.voice_sessions() else {
            let message = "this gateway runs no voice sessions";
            self.error(Some(&rid), ErrorCode::BadRequest, message).await;
            return true;
        };
        let slot = match self.slots.reserve(self.caller.clone()).await {
            Ok(slot) => slot,
            Err(e) => {
                let code = match e {
                    SlotError::Draining => ErrorCode::ServerDraining,
                    SlotError::Full(_) => ErrorCode::RateLimited,
                    SlotError::Unavailable => ErrorCode::Internal,
                };
                self.error(Some(&rid), code, &e.to_string()).await;
                return true;
            }
        };
        let admission = match factory.admit(node, &self.caller, &self.token).await {
            Ok(admission) => admission,
            Err(refusal) => {
                self.voice_refused(&rid, refusal).await;
                return true;
            }
        };
        let start = WsStart {
            user_id: self.caller.user_id.clone(),
            request,
            slot,
            out: self.voice_out.clone(),
            drain: node.drain_notices(),
            admission,
        };
        match start_session(factory, start) {
            Ok(voice) => self.voice = Some(voice),
            Err(e) => {
                tracing::warn!(user = %self.caller.user_id, error = %e, "WebSocket voice session did not start");
                let message = "the voice session could not start";
                self.error(Some(&rid), ErrorCode::Internal, message).await;
            }
        }
        true
    }

    /// `start_session` refused by the caller's voice quota.
    async fn voice_refused(&self, request_id: &str, refusal: Refusal) {
        let (code, message, retryable, retry_after_ms) = match refusal {
            Refusal::Exhausted { resets_in_secs } => (
                ErrorCode::QuotaExceeded,
                format!(
                    "today's voice minutes are used up; they reset in {resets_in_secs} s \
                     (midnight UTC)"
                ),
                false,
                Some(resets_in_secs.saturating_mul(1000)),
            ),
            Refusal::Unavailable => (
                ErrorCode::Internal,
                "the quota service is unreachable; try again shortly".to_owned(),
                true,
                None,
            ),
            Refusal::RateLimited {
                message,
                retry_after,
            } => (
                ErrorCode::RateLimited,
                message,
                true,
                retry_after.map(|s| s.saturating_mul(1000)),
            ),
            Refusal::Unauthorized(message) => (ErrorCode::Unauthorized, message, false, None),
            Refusal::Forbidden(message) => (ErrorCode::Forbidden, message, false, None),
        };
        let event = ServerEvent::Error(ErrorEvent {
            code,
            message,
            retryable,
            retry_after_ms,
            request_id: Some(request_id.to_owned()),
            session_id: None,
        });
        let _ = self.events.send(event).await;
    }

    /// `auth`: a fresh token of the connection's caller becomes the connection's (chat
    /// requests and a later `start_session` use it) and the running voice session's (its
    /// quota renewals). An invalid token gets `error` `unauthorized`, another account's
    /// `forbidden`; either way nothing changes and the connection stays open. Nothing
    /// answers a success.
    async fn refresh(&mut self, fresh: Auth) {
        let verifier = self.service.node().verifier();
        match auth::refresh(verifier, &self.caller.user_id, &fresh.token) {
            Ok(caller) => {
                self.caller = caller;
                self.token.clone_from(&fresh.token);
                if let Some(voice) = self.live_voice() {
                    let _ = voice
                        .input
                        .send(WsInput::Control(voice::Control::Auth(fresh)))
                        .await;
                }
            }
            Err(e) => {
                let session = self.live_voice().map(|v| v.session_id.as_str());
                let _ = self.events.send(voice::refresh_refused(&e, session)).await;
            }
        }
    }

    /// A voice control for the running session.
    async fn voice_control(&self, control: voice::Control) -> bool {
        let sent = match self.live_voice() {
            Some(voice) => voice.input.send(WsInput::Control(control)).await.is_ok(),
            None => false,
        };
        if !sent {
            let message = "no voice session on this connection: send start_session first";
            self.error(None, ErrorCode::BadRequest, message).await;
        }
        true
    }

    /// One binary message: an audio frame for the running voice session.
    async fn handle_binary(&mut self, bytes: &Bytes) {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                let message = format!("binary message: {e}");
                self.error(None, e.error_code(), &message).await;
                return;
            }
        };
        if frame.frame_type != FrameType::Audio {
            let message = format!(
                "clients send audio frames only (type 0x01), not type {:#04x}",
                frame.frame_type.as_byte()
            );
            self.error(None, ErrorCode::BadRequest, &message).await;
            return;
        }
        let queued = match self.live_voice() {
            Some(voice) => voice.input.try_send(WsInput::Audio(frame.payload)),
            None => {
                let message = "audio before start_session: no voice session on this connection";
                self.error(None, ErrorCode::BadRequest, message).await;
                return;
            }
        };
        match queued {
            Ok(()) => {}
            // The session is behind; its own queue would drop old audio anyway.
            Err(mpsc::error::TrySendError::Full(_)) => self.audio_dropped += 1,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let message = "the voice session has ended";
                self.error(None, ErrorCode::BadRequest, message).await;
            }
        }
    }

    async fn error(&self, request_id: Option<&str>, code: ErrorCode, message: &str) {
        let event = ServerEvent::Error(ErrorEvent {
            code,
            message: message.to_owned(),
            retryable: matches!(code, ErrorCode::RateLimited | ErrorCode::ServerDraining),
            retry_after_ms: None,
            request_id: request_id.map(str::to_owned),
            session_id: None,
        });
        let _ = self.events.send(event).await;
    }

    async fn close(&self, code: u16, reason: &'static str) {
        let _ = self.control.send(Control::Close(code, reason)).await;
        // Let the writer send what is queued and the close frame before the tasks stop.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.done.cancelled()).await;
    }
}

/// Completes at `at`, never when there is none.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether a read error is a message over the size limit.
fn too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) =
            err.downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// An event as a text message; `None` (logged) for one that cannot be encoded.
fn encode(event: &ServerEvent) -> Option<Message> {
    match event.to_json() {
        Ok(json) => Some(Message::Text(Utf8Bytes::from(json))),
        Err(e) => {
            tracing::error!(error = %e, "chat event not encodable");
            None
        }
    }
}

/// Most queued events written with one flush.
const MAX_BATCH: usize = 32;

/// Owns the sending half: control messages first, then queued events; a write blocked longer
/// than `slow` closes the connection with 4008.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut events: mpsc::Receiver<ServerEvent>,
    mut control: mpsc::Receiver<Control>,
    mut voice: mpsc::Receiver<Message>,
    done: CancellationToken,
    slow: Duration,
) {
    let mut close = None;
    loop {
        let message = tokio::select! {
            biased;
            () = done.cancelled() => break,
            Some(c) = control.recv() => match c {
                Control::Ping => Message::Ping(Default::default()),
                Control::Close(code, reason) => {
                    close = Some((code, reason));
                    break;
                }
            },
            event = events.recv() => match event {
                Some(event) => match encode(&event) {
                    Some(message) => message,
                    None => continue,
                },
                None => break,
            },
            Some(message) = voice.recv() => message,
        };
        // Events already queued go out in the same write: under load one syscall and one
        // timer carry many deltas, and an idle connection's event is still written at once.
        let batch = async {
            sink.feed(message).await?;
            for _ in 1..MAX_BATCH {
                let Ok(event) = events.try_recv() else { break };
                if let Some(message) = encode(&event) {
                    sink.feed(message).await?;
                }
            }
            sink.flush().await
        };
        match tokio::time::timeout(slow, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("chat client reads too slowly: closing");
                close = Some((CLOSE_SLOW_CONSUMER, "slow consumer"));
                break;
            }
        }
    }
    // Queued events go out before a requested close (a blocked socket gets one more chance).
    if let Some((code, reason)) = close {
        if code != CLOSE_SLOW_CONSUMER {
            while let Ok(event) = events.try_recv() {
                let Some(message) = encode(&event) else {
                    continue;
                };
                if tokio::time::timeout(slow, sink.send(message))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
    done.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_browser_token_rides_in_the_subprotocol_list() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("companion.v1, bearer.eyJ.abc.def"),
        );
        let offered = offered_protocols(&headers);
        assert_eq!(offered, ["companion.v1", "bearer.eyJ.abc.def"]);
        assert_eq!(
            bearer_token(&headers, &offered).as_deref(),
            Some("eyJ.abc.def")
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer header-token"),
        );
        assert_eq!(
            bearer_token(&headers, &offered).as_deref(),
            Some("header-token")
        );
        assert_eq!(bearer_token(&HeaderMap::new(), &[]), None);
    }
}
