use bytes::Bytes;
use protocol::{Frame, FrameDecoder, FrameFlags, FrameType, ServerEvent, control::ErrorCode};

use super::*;
use crate::core::auth::{AuthError, Caller, CallerVerifier};

struct Tokens;

impl CallerVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        match token {
            "good" => Ok(Caller {
                user_id: "u1".to_owned(),
                tier: "free".to_owned(),
                max_concurrent_calls: 1,
            }),
            "banned" => Err(AuthError::Forbidden("suspended".to_owned())),
            _ => Err(AuthError::Invalid("token expired".to_owned())),
        }
    }
}

fn event(json: &str) -> Frame {
    Frame {
        frame_type: FrameType::Event,
        flags: FrameFlags::NONE,
        sequence: 0,
        media_time_us: 0,
        payload: Bytes::copy_from_slice(json.as_bytes()),
    }
}

const AUTH: &str = r#"{"type":"auth","token":"good"}"#;
const SEND: &str =
    r#"{"type":"send_message","requestId":"r1","conversationId":"c1","content":"hi"}"#;

fn failure(step: Step) -> Failure {
    match step {
        Step::Fail(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn running() -> StreamCore {
    let mut core = StreamCore::new();
    assert_eq!(core.on_frame(&event(AUTH), &Tokens), Step::Continue);
    let Step::Start(start) = core.on_frame(&event(SEND), &Tokens) else {
        panic!("the request starts");
    };
    assert_eq!(start.caller.user_id, "u1");
    assert_eq!(start.token, "good");
    assert_eq!(start.request.request_id, "r1");
    assert!(core.started());
    core
}

#[test]
fn auth_then_send_message_starts_the_request_and_cancel_cancels_it() {
    let mut core = running();
    let step = core.on_frame(&event(r#"{"type":"cancel","requestId":"r1"}"#), &Tokens);
    assert_eq!(step, Step::Cancel);
    // The client may finish its side once it has sent its request.
    assert_eq!(core.on_peer_finished(), Step::Continue);
    assert_eq!(core.on_start_timeout(), Step::Continue);
}

#[test]
fn a_bad_or_missing_token_is_unauthorized() {
    let mut core = StreamCore::new();
    let failed = failure(core.on_frame(&event(r#"{"type":"auth","token":"old"}"#), &Tokens));
    assert_eq!(failed.error.code, ErrorCode::Unauthorized);
    assert_eq!(failed.code, AppCode::UNAUTHORIZED);
    assert!(failed.error.message.contains("token expired"), "{failed:?}");
    // Nothing else is read on a failed stream.
    assert_eq!(core.on_frame(&event(SEND), &Tokens), Step::Continue);

    let failed = failure(StreamCore::new().on_frame(&event(SEND), &Tokens));
    assert_eq!(failed.error.code, ErrorCode::Unauthorized);
    assert!(failed.error.message.contains("auth"), "{failed:?}");

    let failed = failure(StreamCore::new().on_frame(&event(r#"{"type":"auth"}"#), &Tokens));
    assert_eq!(failed.error.code, ErrorCode::Unauthorized);

    let banned = r#"{"type":"auth","token":"banned"}"#;
    let failed = failure(StreamCore::new().on_frame(&event(banned), &Tokens));
    assert_eq!(failed.error.code, ErrorCode::Forbidden);
}

#[test]
fn tokens_must_be_short_visible_ascii() {
    let long = format!(
        r#"{{"type":"auth","token":"{}"}}"#,
        "a".repeat(MAX_TOKEN_BYTES + 1)
    );
    assert_eq!(
        parse_auth(long.as_bytes()).unwrap_err().code,
        AppCode::UNAUTHORIZED
    );
    let spaced = r#"{"type":"auth","token":"a b"}"#;
    assert_eq!(
        parse_auth(spaced.as_bytes()).unwrap_err().code,
        AppCode::UNAUTHORIZED
    );
    let extra = r#"{"type":"auth","token":"good","client":"ios/3.1"}"#;
    assert_eq!(parse_auth(extra.as_bytes()).unwrap(), "good");
    assert_eq!(parse_auth(b"\xff{").unwrap_err().code, AppCode::BAD_REQUEST);
}

#[test]
fn garbage_and_oversized_frames_end_the_stream_with_their_codes() {
    let mut decoder = FrameDecoder::new();
    decoder.push(b"GET / HTTP/1.1\r\n");
    let error = decoder.next_frame().unwrap_err();
    let failed = failure(StreamCore::new().on_decode_error(&error));
    assert_eq!(failed.error.code, ErrorCode::BadRequest);
    assert_eq!(failed.code, AppCode::BAD_REQUEST);

    let mut header = Frame {
        frame_type: FrameType::Event,
        flags: FrameFlags::NONE,
        sequence: 0,
        media_time_us: 0,
        payload: Bytes::new(),
    }
    .encode()
    .unwrap()
    .to_vec();
    header[18..22].copy_from_slice(&(16u32 << 20).to_be_bytes());
    let mut decoder = FrameDecoder::new();
    decoder.push(&header);
    let error = decoder.next_frame().unwrap_err();
    let mut core = running();
    let failed = failure(core.on_decode_error(&error));
    assert_eq!(failed.error.code, ErrorCode::PayloadTooLarge);
    assert_eq!(failed.code, AppCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn audio_frames_do_not_belong_on_a_chat_stream() {
    let audio = Frame::audio(0, 0, Bytes::from_static(b"opus"));
    let failed = failure(running().on_frame(&audio, &Tokens));
    assert_eq!(failed.error.code, ErrorCode::BadRequest);
}

#[test]
fn ping_is_answered_and_unknown_events_are_skipped() {
    let mut core = StreamCore::new();
    core.on_frame(&event(AUTH), &Tokens);
    assert_eq!(
        core.on_frame(&event(r#"{"type":"ping","nonce":7}"#), &Tokens),
        Step::Send(ServerEvent::Pong(protocol::control::Heartbeat { nonce: 7 }))
    );
    assert_eq!(
        core.on_frame(&event(r#"{"type":"message_explode"}"#), &Tokens),
        Step::Continue
    );
    assert!(matches!(
        core.on_frame(&event(SEND), &Tokens),
        Step::Start(_)
    ));
}

#[test]
fn mistakes_during_a_reply_are_reported_without_ending_it() {
    let mut core = running();
    let Step::Send(ServerEvent::Error(error)) = core.on_frame(&event(SEND), &Tokens) else {
        panic!("a second request is refused");
    };
    assert_eq!(error.code, ErrorCode::Conflict);
    let other = r#"{"type":"cancel","requestId":"r2"}"#;
    let Step::Send(ServerEvent::Error(error)) = core.on_frame(&event(other), &Tokens) else {
        panic!("cancelling another request is reported");
    };
    assert_eq!(error.request_id.as_deref(), Some("r2"));
    let Step::Send(ServerEvent::Error(error)) = core.on_frame(&event("{oops"), &Tokens) else {
        panic!("bad JSON is reported");
    };
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert_eq!(
        core.on_frame(&event(r#"{"type":"cancel","requestId":"r1"}"#), &Tokens),
        Step::Cancel
    );
}

#[test]
fn a_voice_event_before_the_request_ends_the_stream() {
    let mut core = StreamCore::new();
    core.on_frame(&event(AUTH), &Tokens);
    let failed = failure(core.on_frame(&event(r#"{"type":"hang_up"}"#), &Tokens));
    assert!(failed.error.message.contains("hang_up"), "{failed:?}");
}

#[test]
fn ending_or_stalling_before_the_request_fails_and_resetting_after_cancels() {
    let mut core = StreamCore::new();
    core.on_frame(&event(AUTH), &Tokens);
    assert_eq!(failure(core.on_peer_finished()).code, AppCode::BAD_REQUEST);
    let timed_out = failure(StreamCore::new().on_start_timeout());
    assert_eq!(timed_out.code, AppCode::TIMEOUT);
    assert!(timed_out.error.retryable);
    assert_eq!(running().on_peer_reset(), Step::Cancel);
}

#[test]
fn draining_refuses_new_streams_only() {
    let refused = failure(StreamCore::new().on_draining());
    assert_eq!(refused.error.code, ErrorCode::ServerDraining);
    assert!(refused.error.retryable);
    assert_eq!(running().on_draining(), Step::Continue);
}

#[test]
fn the_writer_numbers_frames_from_zero() {
    let mut writer = FrameWriter::new();
    let mut decoder = FrameDecoder::new();
    for nonce in 0..3 {
        let wire = writer
            .encode(&ServerEvent::Pong(protocol::control::Heartbeat { nonce }))
            .unwrap();
        decoder.push_bytes(wire);
    }
    for expected in 0..3 {
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.sequence, expected);
        let event = ServerEvent::from_frame(&frame).unwrap();
        assert_eq!(
            event,
            ServerEvent::Pong(protocol::control::Heartbeat {
                nonce: u64::from(expected)
            })
        );
    }
}
