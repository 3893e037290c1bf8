//! The two event enums: everything the server sends, everything a client sends.

use serde::{Deserialize, Serialize};

use crate::chat::{
    Cancel, MessageComplete, MessageDelta, MessageStart, SendMessage, Typing, check_non_empty,
    check_request_id,
};
use crate::control::{Auth, ErrorEvent, Goodbye, Heartbeat, Hello, MAX_TOKEN_BYTES};
use crate::error::ProtocolError;
use crate::voice::{
    AudioEdge, Configure, Interrupted, MAX_VISEMES_PER_EVENT, ResponseStarted, SessionEnded,
    SessionStarted, SpeechEdge, StartSession, TextDelta, Transcript, TurnMetrics, Visemes,
};

/// An event the server (gateway) sends to a client. JSON: `{"type": "<snake_case name>",
/// ...camelCase fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerEvent {
    /// `hello`: first event on a connection.
    Hello(Hello),
    /// `ping`: heartbeat request; answer with `pong`.
    Ping(Heartbeat),
    /// `pong`: heartbeat answer.
    Pong(Heartbeat),
    /// `error`: something failed (chat or voice).
    Error(ErrorEvent),
    /// `goodbye`: the server is draining this connection.
    Goodbye(Goodbye),
    /// `message_start`: a reply began.
    MessageStart(MessageStart),
    /// `message_delta`: more reply text.
    MessageDelta(MessageDelta),
    /// `message_complete`: the reply is done, with token usage.
    MessageComplete(MessageComplete),
    /// `typing_start`: show the typing indicator.
    TypingStart(Typing),
    /// `typing_stop`: hide the typing indicator.
    TypingStop(Typing),
    /// `session_started`: a voice session is live.
    SessionStarted(SessionStarted),
    /// `session_ended`: the voice session is over.
    SessionEnded(SessionEnded),
    /// `speech_started`: the user began talking.
    SpeechStarted(SpeechEdge),
    /// `speech_stopped`: the user stopped talking.
    SpeechStopped(SpeechEdge),
    /// `transcript_partial`: interim transcript.
    TranscriptPartial(Transcript),
    /// `transcript_final`: final transcript of the turn.
    TranscriptFinal(Transcript),
    /// `response_started`: the companion is answering.
    ResponseStarted(ResponseStarted),
    /// `text_delta`: more reply text (captions).
    TextDelta(TextDelta),
    /// `audio_started`: reply audio began.
    AudioStarted(AudioEdge),
    /// `audio_ended`: reply audio finished.
    AudioEnded(AudioEdge),
    /// `visemes`: lipsync frames for upcoming audio.
    Visemes(Visemes),
    /// `interrupted`: barge-in cut the reply.
    Interrupted(Interrupted),
    /// `turn_metrics`: latency breakdown of a turn.
    TurnMetrics(TurnMetrics),
}

impl ServerEvent {
    /// Every server event `"type"`, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "ping",
        "pong",
        "error",
        "goodbye",
        "message_start",
        "message_delta",
        "message_complete",
        "typing_start",
        "typing_stop",
        "session_started",
        "session_ended",
        "speech_started",
        "speech_stopped",
        "transcript_partial",
        "transcript_final",
        "response_started",
        "text_delta",
        "audio_started",
        "audio_ended",
        "visemes",
        "interrupted",
        "turn_metrics",
    ];

    /// This event's `"type"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Ping(_) => "ping",
            Self::Pong(_) => "pong",
            Self::Error(_) => "error",
            Self::Goodbye(_) => "goodbye",
            Self::MessageStart(_) => "message_start",
            Self::MessageDelta(_) => "message_delta",
            Self::MessageComplete(_) => "message_complete",
            Self::TypingStart(_) => "typing_start",
            Self::TypingStop(_) => "typing_stop",
            Self::SessionStarted(_) => "session_started",
            Self::SessionEnded(_) => "session_ended",
            Self::SpeechStarted(_) => "speech_started",
            Self::SpeechStopped(_) => "speech_stopped",
            Self::TranscriptPartial(_) => "transcript_partial",
            Self::TranscriptFinal(_) => "transcript_final",
            Self::ResponseStarted(_) => "response_started",
            Self::TextDelta(_) => "text_delta",
            Self::AudioStarted(_) => "audio_started",
            Self::AudioEnded(_) => "audio_ended",
            Self::Visemes(_) => "visemes",
            Self::Interrupted(_) => "interrupted",
            Self::TurnMetrics(_) => "turn_metrics",
        }
    }

    /// Checks the rules serde cannot express (non-empty ids, ranges). Decoders call this;
    /// encoders call it too, so a server cannot send what a client would reject.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let ty = self.type_name();
        match self {
            Self::MessageStart(MessageStart {
                request_id,
                message,
            })
            | Self::MessageComplete(MessageComplete {
                request_id,
                message,
                ..
            }) => {
                if let Some(id) = request_id {
                    check_request_id(ty, id)?;
                }
                check_non_empty(ty, "message.id", &message.id)?;
                check_non_empty(ty, "message.conversationId", &message.conversation_id)
            }
            Self::MessageDelta(delta) => {
                if let Some(id) = &delta.request_id {
                    check_request_id(ty, id)?;
                }
                check_non_empty(ty, "messageId", &delta.message_id)
            }
            Self::SessionStarted(started) => {
                check_non_empty(ty, "sessionId", &started.session_id)?;
                started.input_audio.validate(ty)?;
                started.output_audio.validate(ty)
            }
            Self::Visemes(visemes) => {
                if visemes.frames.len() > MAX_VISEMES_PER_EVENT {
                    return Err(ProtocolError::InvalidField {
                        event_type: ty,
                        field: "frames",
                        reason: format!(
                            "has {} entries, at most {MAX_VISEMES_PER_EVENT} allowed",
                            visemes.frames.len()
                        ),
                    });
                }
                visemes.frames.iter().try_for_each(|f| f.validate(ty))
            }
            Self::Error(error) => match &error.request_id {
                Some(id) => check_request_id(ty, id),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A message a client sends to the server. JSON: `{"type": "<snake_case name>", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientEvent {
    /// `send_message`: post a user message and get a streamed reply.
    SendMessage(SendMessage),
    /// `cancel`: stop a running reply.
    Cancel(Cancel),
    /// `ping`: heartbeat request.
    Ping(Heartbeat),
    /// `pong`: heartbeat answer.
    Pong(Heartbeat),
    /// `start_session`: start a voice session on a WebSocket/QUIC connection.
    StartSession(StartSession),
    /// `configure`: change voice-session settings.
    Configure(Configure),
    /// `mute`: the microphone is muted; the server stops listening (no barge-in, no turns).
    Mute,
    /// `unmute`: the microphone is live again.
    Unmute,
    /// `interrupt`: stop the companion's current reply now (a stop button, push-to-talk).
    Interrupt,
    /// `hang_up`: end the voice session.
    HangUp,
    /// `auth`: a fresh access token (QUIC request streams; a voice session's token refresh).
    Auth(Auth),
}

impl ClientEvent {
    /// Every client event `"type"`, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "send_message",
        "cancel",
        "ping",
        "pong",
        "start_session",
        "configure",
        "mute",
        "unmute",
        "interrupt",
        "hang_up",
        "auth",
    ];

    /// This event's `"type"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SendMessage(_) => "send_message",
            Self::Cancel(_) => "cancel",
            Self::Ping(_) => "ping",
            Self::Pong(_) => "pong",
            Self::StartSession(_) => "start_session",
            Self::Configure(_) => "configure",
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::Interrupt => "interrupt",
            Self::HangUp => "hang_up",
            Self::Auth(_) => "auth",
        }
    }

    /// Checks the rules serde cannot express (request ids, non-empty content, audio formats).
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let ty = self.type_name();
        match self {
            Self::SendMessage(send) => {
                check_request_id(ty, &send.request_id)?;
                check_non_empty(ty, "conversationId", &send.conversation_id)?;
                check_non_empty(ty, "content", &send.content)
            }
            Self::Cancel(cancel) => check_request_id(ty, &cancel.request_id),
            Self::StartSession(start) => {
                check_request_id(ty, &start.request_id)?;
                start.input_audio.validate(ty)?;
                start.output_audio.validate(ty)
            }
            Self::Auth(auth) => check_token(ty, &auth.token),
            _ => Ok(()),
        }
    }
}

/// An `auth` token: 1-[`MAX_TOKEN_BYTES`] visible ASCII bytes (the reason never echoes it).
fn check_token(event_type: &'static str, token: &str) -> Result<(), ProtocolError> {
    let reason = if token.is_empty() {
        "is empty".to_owned()
    } else if token.len() > MAX_TOKEN_BYTES {
        format!(
            "is {} bytes, at most {MAX_TOKEN_BYTES} allowed",
            token.len()
        )
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        "must be visible ASCII (no spaces or control characters)".to_owned()
    } else {
        return Ok(());
    };
    Err(ProtocolError::InvalidField {
        event_type,
        field: "token",
        reason,
    })
}
