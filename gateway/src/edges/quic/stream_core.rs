//! The sans-IO core of one request stream: frames in, decisions out.
//!
//! A request stream carries, from the client: an `auth` event frame (the bearer token), a
//! `send_message` event frame, then optionally `cancel` / `ping` frames; from the server: the
//! reply's event frames, then the end of the stream. [`StreamCore`] decides what each input
//! means; the tokio shell (`stream.rs`) does the reading, writing and running. Nothing here
//! blocks or allocates per byte, so any input can be fed to it (see the `quic_stream` fuzz
//! target).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use protocol::{
    ClientEvent, Frame, FrameType, ProtocolError, ServerEvent,
    chat::SendMessage,
    control::{ErrorCode, ErrorEvent, Heartbeat},
};

use super::codes::AppCode;
use crate::core::auth::{AuthError, Caller, CallerVerifier};

/// Longest bearer token an `auth` frame may carry, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Where a stream is in its life.
#[derive(Debug)]
enum Phase {
    /// Waiting for the `auth` frame.
    Auth,
    /// Authenticated; waiting for `send_message`.
    Request { caller: Caller, token: String },
    /// The reply is being generated.
    Running { request_id: String },
    /// Failed or cancelled by the peer: further input is ignored.
    Closed,
}

/// What the shell must do after feeding an input to a [`StreamCore`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// Nothing; keep reading.
    Continue,
    /// Write this event on the stream and carry on (a `pong`, or an `error` that does not end
    /// the request).
    Send(ServerEvent),
    /// Run the request: the chat service streams its reply onto this stream.
    Start(Box<Start>),
    /// Cancel the running reply; the chat service ends it with a cancelled `message_complete`.
    Cancel,
    /// End the stream: cancel the reply if one runs, write `error` if the stream can still
    /// carry it, finish the stream and stop reading with `code`.
    Fail(Failure),
}

/// A request ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// Who asked (verified from the stream's `auth` frame).
    pub caller: Caller,
    /// The bearer token, forwarded to the control plane on the caller's behalf.
    pub token: String,
    /// The request.
    pub request: SendMessage,
}

/// Why a stream ends early.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The `error` event for the client.
    pub error: ErrorEvent,
    /// The `STOP_SENDING` code for the rest of the client's bytes.
    pub code: AppCode,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>, app: AppCode) -> Self {
        Self {
            error: error_event(code, message, None),
            code: app,
        }
    }
}

fn error_event(
    code: ErrorCode,
    message: impl Into<String>,
    request_id: Option<&str>,
) -> ErrorEvent {
    let retryable = matches!(
        code,
        ErrorCode::RateLimited
            | ErrorCode::Timeout
            | ErrorCode::ServerDraining
            | ErrorCode::Internal
    );
    ErrorEvent {
        code,
        message: message.into(),
        retryable,
        retry_after_ms: None,
        request_id: request_id.map(str::to_owned),
        session_id: None,
    }
}

/// The decision logic of one request stream. Feed it what happens; do what it returns.
#[derive(Debug)]
pub struct StreamCore {
    phase: Phase,
}

impl Default for StreamCore {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCore {
    /// A stream the client just opened.
    pub fn new() -> Self {
        Self { phase: Phase::Auth }
    }

    /// Whether the request has started (its reply runs or ran).
    pub fn started(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// The stream was accepted while the node drains: refuse it.
    pub fn on_draining(&mut self) -> Step {
        if self.started() {
            return Step::Continue;
        }
        self.fail(Failure::new(
            ErrorCode::ServerDraining,
            "this node is shutting down; open a new connection",
            AppCode::NO_ERROR,
        ))
    }

    /// A whole frame arrived. `verifier` checks the `auth` frame's token.
    pub fn on_frame(&mut self, frame: &Frame, verifier: &dyn CallerVerifier) -> Step {
        if matches!(self.phase, Phase::Closed) {
            return Step::Continue;
        }
        if frame.frame_type != FrameType::Event {
            return self.fail(Failure::new(
                ErrorCode::BadRequest,
                format!(
                    "a chat stream carries event frames only, got a {:?} frame",
                    frame.frame_type
                ),
                AppCode::BAD_REQUEST,
            ));
        }
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Auth => self.on_auth(&frame.payload, verifier),
            Phase::Request { caller, token } => self.on_request(frame, caller, token),
            Phase::Running { request_id } => self.on_running(frame, request_id),
            Phase::Closed => Step::Continue,
        }
    }

    /// The frame decoder failed: the byte stream cannot be read any further.
    pub fn on_decode_error(&mut self, error: &ProtocolError) -> Step {
        if matches!(self.phase, Phase::Closed) {
            return Step::Continue;
        }
        let app = match error {
            ProtocolError::Oversized { .. } => AppCode::PAYLOAD_TOO_LARGE,
            _ => AppCode::BAD_REQUEST,
        };
        self.fail(Failure::new(error.error_code(), error.to_string(), app))
    }

    /// The client finished its side of the stream (it sends nothing more). Normal once the
    /// request runs; before that, the request can never arrive.
    pub fn on_peer_finished(&mut self) -> Step {
        match self.phase {
            Phase::Auth | Phase::Request { .. } => self.fail(Failure::new(
                ErrorCode::BadRequest,
                "the stream ended before its send_message frame",
                AppCode::BAD_REQUEST,
            )),
            Phase::Running { .. } | Phase::Closed => Step::Continue,
        }
    }

    /// The client reset its side of the stream: it abandons the request.
    pub fn on_peer_reset(&mut self) -> Step {
        match self.phase {
            Phase::Running { .. } => {
                self.phase = Phase::Closed;
                Step::Cancel
            }
            Phase::Auth | Phase::Request { .. } => self.fail(Failure::new(
                ErrorCode::BadRequest,
                "the stream was reset before its send_message frame",
                AppCode::BAD_REQUEST,
            )),
            Phase::Closed => Step::Continue,
        }
    }

    /// The request did not start within the start timeout.
    pub fn on_start_timeout(&mut self) -> Step {
        match self.phase {
            Phase::Auth | Phase::Request { .. } => self.fail(Failure::new(
                ErrorCode::Timeout,
                "the stream did not send its auth and send_message frames in time",
                AppCode::TIMEOUT,
            )),
            Phase::Running { .. } | Phase::Closed => Step::Continue,
        }
    }

    fn fail(&mut self, failure: Failure) -> Step {
        self.phase = Phase::Closed;
        Step::Fail(failure)
    }

    fn on_auth(&mut self, payload: &[u8], verifier: &dyn CallerVerifier) -> Step {
        let token = match parse_auth(payload) {
            Ok(token) => token,
            Err(failure) => return self.fail(failure),
        };
        match verifier.verify(&token) {
            Ok(caller) => {
                self.phase = Phase::Request { caller, token };
                Step::Continue
            }
            Err(AuthError::Forbidden(reason)) => self.fail(Failure::new(
                ErrorCode::Forbidden,
                format!("this account may not chat: {reason}"),
                AppCode::UNAUTHORIZED,
            )),
            Err(error) => self.fail(Failure::new(
                ErrorCode::Unauthorized,
                error.to_string(),
                AppCode::UNAUTHORIZED,
            )),
        }
    }

    fn on_request(&mut self, frame: &Frame, caller: Caller, token: String) -> Step {
        match ClientEvent::from_frame(frame) {
            Ok(ClientEvent::SendMessage(request)) => {
                self.phase = Phase::Running {
                    request_id: request.request_id.clone(),
                };
                Step::Start(Box::new(Start {
                    caller,
                    token,
                    request,
                }))
            }
            other => {
                self.phase = Phase::Request { caller, token };
                self.on_other(other, false)
            }
        }
    }

    fn on_running(&mut self, frame: &Frame, request_id: String) -> Step {
        let step = match ClientEvent::from_frame(frame) {
            Ok(ClientEvent::Cancel(cancel)) if cancel.request_id == request_id => Step::Cancel,
            Ok(ClientEvent::Cancel(cancel)) => Step::Send(ServerEvent::Error(error_event(
                ErrorCode::BadRequest,
                format!(
                    "this stream carries request {request_id:?}, not {:?}",
                    cancel.request_id
                ),
                Some(&cancel.request_id),
            ))),
            Ok(ClientEvent::SendMessage(send)) => Step::Send(ServerEvent::Error(error_event(
                ErrorCode::Conflict,
                "one request per stream: open a new stream for the next message",
                Some(&send.request_id),
            ))),
            other => self.on_other(other, true),
        };
        // A cancelled reply still runs to its cancelled `message_complete`; staying Running
        // makes a second cancel harmless.
        self.phase = Phase::Running { request_id };
        step
    }

    /// Events other than the ones a phase is waiting for. Once the request runs (`running`),
    /// an unexpected event is reported but does not end the stream.
    fn on_other(&mut self, event: Result<ClientEvent, ProtocolError>, running: bool) -> Step {
        match event {
            Ok(ClientEvent::Ping(Heartbeat { nonce })) => {
                Step::Send(ServerEvent::Pong(Heartbeat { nonce }))
            }
            // Cancelling what has not started (or already ended) is not an error. A second
            // `auth` changes nothing: the stream was authenticated by its first frame.
            Ok(ClientEvent::Pong(_) | ClientEvent::Cancel(_) | ClientEvent::Auth(_)) => {
                Step::Continue
            }
            // Versioning rule: skip event types this build does not know.
            Err(ProtocolError::UnknownEventType { .. }) => Step::Continue,
            Ok(other) => {
                let message = format!(
                    "`{}` is not allowed on a chat stream; send auth, then send_message",
                    other.type_name()
                );
                if running {
                    Step::Send(ServerEvent::Error(error_event(
                        ErrorCode::BadRequest,
                        message,
                        None,
                    )))
                } else {
                    self.fail(Failure::new(
                        ErrorCode::BadRequest,
                        message,
                        AppCode::BAD_REQUEST,
                    ))
                }
            }
            Err(error) if running => Step::Send(ServerEvent::Error(error_event(
                error.error_code(),
                error.to_string(),
                None,
            ))),
            Err(error) => {
                let app = match error {
                    ProtocolError::Oversized { .. } => AppCode::PAYLOAD_TOO_LARGE,
                    _ => AppCode::BAD_REQUEST,
                };
                self.fail(Failure::new(error.error_code(), error.to_string(), app))
            }
        }
    }
}

/// Reads the token of an `auth` event frame's payload: `{"type":"auth","token":"<bearer>"}`.
/// Other fields are ignored (a newer client may send more).
pub fn parse_auth(payload: &[u8]) -> Result<String, Failure> {
    #[derive(serde::Deserialize)]
    struct Auth<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(default, borrow)]
        token: Option<Cow<'a, str>>,
    }
    let unauthorized =
        |message: String| Failure::new(ErrorCode::Unauthorized, message, AppCode::UNAUTHORIZED);
    let auth: Auth<'_> = serde_json::from_slice(payload).map_err(|e| {
        Failure::new(
            ErrorCode::BadRequest,
            format!("the first frame of a stream must be an auth event: {e}"),
            AppCode::BAD_REQUEST,
        )
    })?;
    if auth.kind != "auth" {
        return Err(unauthorized(format!(
            "the first frame of a stream must be an auth event, got {:?}",
            auth.kind
        )));
    }
    let token = auth.token.unwrap_or_default();
    if token.is_empty() {
        return Err(unauthorized("the auth event has no token".to_owned()));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthorized(format!(
            "the token is {} bytes, at most {MAX_TOKEN_BYTES} allowed",
            token.len()
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unauthorized(
            "the token must be visible ASCII (no spaces or control characters)".to_owned(),
        ));
    }
    Ok(token.into_owned())
}

/// Encodes a stream's outgoing events as frames, numbering them from 0.
#[derive(Debug, Default)]
pub struct FrameWriter {
    sequence: u32,
    buf: BytesMut,
}

impl FrameWriter {
    /// A writer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// `event` as the stream's next event frame.
    pub fn encode(&mut self, event: &ServerEvent) -> Result<Bytes, ProtocolError> {
        event.encode_frame_into(self.sequence, &mut self.buf)?;
        self.sequence = self.sequence.wrapping_add(1);
        Ok(self.buf.split().freeze())
    }
}

#[cfg(test)]
#[path = "stream_core_tests.rs"]
mod tests;
