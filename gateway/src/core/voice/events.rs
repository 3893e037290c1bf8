//! The `events` data channel, sans-IO: what a client's JSON message asks the bridge to do,
//! and viseme frames batched into `visemes` events.

use protocol::{
    ClientEvent, ServerEvent,
    control::{Auth, ErrorCode, ErrorEvent},
    viseme::VisemeFrame,
    voice::{Configure, MAX_VISEMES_PER_EVENT, Visemes},
};

/// What a client message asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Control {
    /// End the call.
    HangUp,
    /// Stop the companion's current reply.
    Interrupt,
    /// Stop (`true`) or resume (`false`) listening.
    Mute(bool),
    /// Change session settings (`visemes` on or off).
    Configure(Configure),
    /// Renew the voice quota with this fresh access token from now on (checked first).
    Auth(Auth),
    /// Answer the client with this event (a `pong`, or an `error` for a bad message).
    Reply(ServerEvent),
    /// Nothing to do (a `pong`).
    Ignore,
}

pub(crate) fn error(code: ErrorCode, message: String, session_id: &str) -> Control {
    Control::Reply(ServerEvent::Error(ErrorEvent {
        code,
        message,
        retryable: false,
        retry_after_ms: None,
        request_id: None,
        session_id: Some(session_id.to_owned()),
    }))
}

/// Decodes one message from the caller. Anything malformed or not meant for a voice call
/// becomes an `error` event for the client, never a failure of the call.
pub(crate) fn client_message(text: &str, session_id: &str) -> Control {
    let event = match ClientEvent::from_json_str(text) {
        Ok(event) => event,
        Err(e) => return error(ErrorCode::BadRequest, e.to_string(), session_id),
    };
    match event {
        ClientEvent::HangUp => Control::HangUp,
        ClientEvent::Interrupt => Control::Interrupt,
        ClientEvent::Mute => Control::Mute(true),
        ClientEvent::Unmute => Control::Mute(false),
        ClientEvent::Configure(c) => Control::Configure(c),
        ClientEvent::Auth(a) => Control::Auth(a),
        ClientEvent::Ping(beat) => Control::Reply(ServerEvent::Pong(beat)),
        ClientEvent::Pong(_) => Control::Ignore,
        ClientEvent::StartSession(_) => error(
            ErrorCode::Conflict,
            "this call already is a voice session".into(),
            session_id,
        ),
        other => error(
            ErrorCode::BadRequest,
            format!("`{}` is not supported on a voice call", other.type_name()),
            session_id,
        ),
    }
}

/// Collects viseme frames into `visemes` events: one event per few frames of reply audio
/// instead of one per viseme.
#[derive(Debug)]
pub(crate) struct VisemeBatcher {
    batch_frames: u32,
    turn_id: u64,
    frames: Vec<VisemeFrame>,
    audio_frames_waited: u32,
}

impl VisemeBatcher {
    /// A batch waits at most `batch_frames` reply audio frames (at least one).
    pub(crate) fn new(batch_frames: u32) -> Self {
        Self {
            batch_frames: batch_frames.max(1),
            turn_id: 0,
            frames: Vec::new(),
            audio_frames_waited: 0,
        }
    }

    /// Adds a frame of turn `turn_id`; returns a full batch (or the previous turn's) to send.
    pub(crate) fn push(&mut self, turn_id: u64, frame: VisemeFrame) -> Option<ServerEvent> {
        let flushed = if turn_id != self.turn_id || self.frames.len() >= MAX_VISEMES_PER_EVENT {
            self.flush()
        } else {
            None
        };
        self.turn_id = turn_id;
        self.frames.push(frame);
        flushed
    }

    /// One reply audio frame went out; returns the batch once it has waited long enough.
    pub(crate) fn audio_sent(&mut self) -> Option<ServerEvent> {
        if self.frames.is_empty() {
            return None;
        }
        self.audio_frames_waited += 1;
        if self.audio_frames_waited >= self.batch_frames {
            self.flush()
        } else {
            None
        }
    }

    /// Whatever is pending, as one event (before any other event, to keep their order).
    pub(crate) fn flush(&mut self) -> Option<ServerEvent> {
        self.audio_frames_waited = 0;
        if self.frames.is_empty() {
            return None;
        }
        Some(ServerEvent::Visemes(Visemes {
            turn_id: self.turn_id,
            frames: std::mem::take(&mut self.frames),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viseme(us: u64) -> VisemeFrame {
        VisemeFrame {
            media_time_us: us,
            viseme_id: 10,
            weights: Vec::new(),
        }
    }

    #[test]
    fn controls_are_decoded_and_junk_gets_an_error_event() {
        assert_eq!(
            client_message(r#"{"type":"hang_up"}"#, "s"),
            Control::HangUp
        );
        assert_eq!(
            client_message(r#"{"type":"interrupt"}"#, "s"),
            Control::Interrupt
        );
        assert_eq!(
            client_message(r#"{"type":"mute"}"#, "s"),
            Control::Mute(true)
        );
        assert!(matches!(
            client_message(r#"{"type":"ping","nonce":7}"#, "s"),
            Control::Reply(ServerEvent::Pong(b)) if b.nonce == 7
        ));
        for junk in ["", "{", "[]", r#"{"type":"dance"}"#, "\u{0}\u{ffff}"] {
            match client_message(junk, "s") {
                Control::Reply(ServerEvent::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::BadRequest, "{junk:?}");
                    assert_eq!(e.session_id.as_deref(), Some("s"));
                }
                other => panic!("{junk:?} gave {other:?}"),
            }
        }
        assert_eq!(
            client_message(r#"{"type":"auth","token":"eyJ.fresh.sig"}"#, "s"),
            Control::Auth(Auth {
                token: "eyJ.fresh.sig".into()
            })
        );
        for bad in [
            r#"{"type":"auth"}"#,
            r#"{"type":"auth","token":""}"#,
            r#"{"type":"auth","token":"a b"}"#,
        ] {
            assert!(
                matches!(client_message(bad, "s"), Control::Reply(ServerEvent::Error(ref e)) if e.code == ErrorCode::BadRequest),
                "{bad}"
            );
        }
        let send =
            r#"{"type":"send_message","requestId":"r1","conversationId":"c","content":"hi"}"#;
        assert!(matches!(
            client_message(send, "s"),
            Control::Reply(ServerEvent::Error(_))
        ));
    }

    #[test]
    fn visemes_go_out_in_batches_per_turn() {
        let mut b = VisemeBatcher::new(2);
        assert!(b.push(1, viseme(0)).is_none());
        assert!(b.audio_sent().is_none());
        assert!(b.push(1, viseme(20_000)).is_none());
        let Some(ServerEvent::Visemes(batch)) = b.audio_sent() else {
            panic!("a batch after two audio frames");
        };
        assert_eq!((batch.turn_id, batch.frames.len()), (1, 2));
        assert!(b.audio_sent().is_none(), "nothing pending");

        assert!(b.push(1, viseme(60_000)).is_none());
        let Some(ServerEvent::Visemes(previous)) = b.push(2, viseme(0)) else {
            panic!("a new turn flushes the old one");
        };
        assert_eq!((previous.turn_id, previous.frames.len()), (1, 1));
        assert!(b.flush().is_some_and(|e| e.type_name() == "visemes"));
        assert!(b.flush().is_none());
    }
}
