//! JSON events: every message type round-trips, the wire shape matches the product spec,
//! and bad input gets an error that names the problem.

mod common;

use common::{every_client_event, every_server_event};
use protocol::chat::{ChatMessage, ContentType, Role};
use protocol::control::ErrorCode;
use protocol::{ClientEvent, FrameType, MAX_EVENT_BYTES, ProtocolError, ServerEvent};
use serde_json::{Value, json};

#[test]
fn every_server_event_round_trips_through_json_and_event_frames() {
    let events = every_server_event();
    let names: Vec<_> = events.iter().map(ServerEvent::type_name).collect();
    assert_eq!(
        names,
        ServerEvent::TYPES,
        "samples cover every server event"
    );

    for event in events {
        let text = event.to_json().unwrap();
        assert_eq!(ServerEvent::from_json_str(&text).unwrap(), event, "{text}");
        let tag = serde_json::from_str::<Value>(&text).unwrap()["type"].clone();
        assert_eq!(tag, event.type_name(), "internally tagged: {text}");

        let frame = event.to_frame(9).unwrap();
        assert_eq!(frame.frame_type, FrameType::Event);
        let wire = frame.encode().unwrap();
        let back = protocol::Frame::decode(&wire).unwrap();
        assert_eq!(ServerEvent::from_frame(&back).unwrap(), event);
    }
}

#[test]
fn every_client_event_round_trips_through_json_and_event_frames() {
    let events = every_client_event();
    let names: Vec<_> = events.iter().map(ClientEvent::type_name).collect();
    assert_eq!(
        names,
        ClientEvent::TYPES,
        "samples cover every client event"
    );

    for event in events {
        let text = event.to_json().unwrap();
        assert_eq!(ClientEvent::from_json_str(&text).unwrap(), event, "{text}");

        let mut wire = bytes::BytesMut::new();
        event.encode_frame_into(3, &mut wire).unwrap();
        let frame = protocol::Frame::decode(&wire.freeze()).unwrap();
        assert_eq!(frame.sequence, 3);
        assert_eq!(ClientEvent::from_frame(&frame).unwrap(), event);
    }
}

#[test]
fn a_streamed_chat_reply_has_the_product_wire_shape() {
    // The product spec: camelCase, snake_case type tags, the message object, unix-ms stamps.
    let start = r#"{"type":"message_start","requestId":"r1","message":{"id":"m1",
        "conversationId":"c1","role":"assistant","content":"","contentType":"text",
        "timestamp":1764389581000,"metadata":{}}}"#;
    let ServerEvent::MessageStart(start) = ServerEvent::from_json_str(start).unwrap() else {
        panic!("wrong variant")
    };
    assert_eq!(start.message.role, Role::Assistant);
    assert_eq!(start.message.timestamp, 1_764_389_581_000);

    let delta = ServerEvent::from_json_str(
        r#"{"type":"message_delta","messageId":"m1","conversationId":"c1","delta":"Hi"}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&delta).unwrap(),
        json!({"type":"message_delta","messageId":"m1","conversationId":"c1","delta":"Hi"})
    );

    let complete = ServerEvent::MessageComplete(protocol::chat::MessageComplete {
        request_id: None,
        message: ChatMessage {
            id: "m1".into(),
            conversation_id: "c1".into(),
            role: Role::Assistant,
            content: "Hi".into(),
            content_type: ContentType::Voice,
            timestamp: 5,
            metadata: protocol::chat::MessageMetadata {
                model: Some("m".into()),
                tokens_used: Some(3),
                voice_duration: Some(1200),
            },
        },
        usage: protocol::chat::TokenUsage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
        },
        finish_reason: protocol::chat::FinishReason::Stop,
    });
    assert_eq!(
        serde_json::to_value(&complete).unwrap(),
        json!({"type":"message_complete",
            "message":{"id":"m1","conversationId":"c1","role":"assistant","content":"Hi",
                "contentType":"voice","timestamp":5,
                "metadata":{"model":"m","tokensUsed":3,"voiceDuration":1200}},
            "usage":{"promptTokens":1,"completionTokens":2,"totalTokens":3},
            "finishReason":"stop"})
    );
}

#[test]
fn unit_controls_are_just_a_type_and_extra_fields_are_ignored() {
    assert_eq!(
        ClientEvent::HangUp.to_json().unwrap(),
        r#"{"type":"hang_up"}"#
    );
    // A newer client may add fields; this build ignores them.
    assert_eq!(
        ClientEvent::from_json_str(r#"{"type":"mute","reason":"phone call"}"#).unwrap(),
        ClientEvent::Mute
    );
    assert_eq!(
        ClientEvent::from_json_str(r#"{"type":"cancel","requestId":"r","since":3}"#).unwrap(),
        ClientEvent::Cancel(protocol::chat::Cancel {
            request_id: "r".into()
        })
    );
}

#[test]
fn unknown_event_types_are_named_in_the_error() {
    let err = ServerEvent::from_json_str(r#"{"type":"message_explode","x":1}"#).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnknownEventType("message_explode".into())
    );
    assert_eq!(err.to_string(), r#"unknown event type "message_explode""#);

    // A server event sent to the server is unknown in that direction.
    let err = ClientEvent::from_json_str(r#"{"type":"message_delta"}"#).unwrap_err();
    assert_eq!(err, ProtocolError::UnknownEventType("message_delta".into()));

    // A peer cannot make the error message huge.
    let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
    let ProtocolError::UnknownEventType(name) = ClientEvent::from_json_str(&long).unwrap_err()
    else {
        panic!("wrong error")
    };
    assert!(name.chars().count() <= 65, "{name}");
}

#[test]
fn oversized_events_are_rejected_before_parsing_and_before_sending() {
    let huge = vec![b' '; MAX_EVENT_BYTES + 1];
    let err = ClientEvent::from_json(&huge).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Oversized {
            what: "event",
            actual: MAX_EVENT_BYTES + 1,
            max: MAX_EVENT_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "event is {} bytes, over the {MAX_EVENT_BYTES}-byte limit",
            MAX_EVENT_BYTES + 1
        )
    );

    assert_eq!(err.error_code(), ErrorCode::PayloadTooLarge);

    let mut too_long = common::every_client_event().remove(0);
    if let ClientEvent::SendMessage(send) = &mut too_long {
        send.content = "a".repeat(MAX_EVENT_BYTES);
    }
    let mut buf = b"keep".to_vec();
    assert!(matches!(
        too_long.encode_json_into(&mut buf),
        Err(ProtocolError::Oversized { what: "event", .. })
    ));
    assert_eq!(buf, b"keep", "a failed encode leaves the buffer as it was");
}

/// A predicate saying whether an error is the expected kind.
type ErrorCheck = fn(&ProtocolError) -> bool;

#[test]
fn malformed_input_gets_a_typed_error_for_each_kind_of_mistake() {
    let cases: &[(&str, ErrorCheck)] = &[
        (r#"{"type":"ping","nonce":1"#, |e| {
            matches!(e, ProtocolError::InvalidJson { .. })
        }),
        ("not json", |e| {
            matches!(e, ProtocolError::InvalidJson { .. })
        }),
        ("[1,2,3]", |e| matches!(e, ProtocolError::NotAnEvent { .. })),
        (r#"{"nonce":1}"#, |e| {
            matches!(e, ProtocolError::NotAnEvent { .. })
        }),
        (r#"{"type":7}"#, |e| {
            matches!(e, ProtocolError::NotAnEvent { .. })
        }),
        (r#"{"type":"cancel"}"#, |e| {
            matches!(e, ProtocolError::InvalidEvent { event_type, message }
                if event_type == "cancel" && message.contains("requestId"))
        }),
        (
            r#"{"type":"ping","nonce":"soon"}"#,
            |e| matches!(e, ProtocolError::InvalidEvent { event_type, .. } if event_type == "ping"),
        ),
        (r#"{"type":"cancel","requestId":""}"#, |e| {
            matches!(
                e,
                ProtocolError::InvalidField {
                    field: "requestId",
                    ..
                }
            )
        }),
        (
            r#"{"type":"send_message","requestId":"r","conversationId":"c","content":""}"#,
            |e| {
                matches!(
                    e,
                    ProtocolError::InvalidField {
                        field: "content",
                        ..
                    }
                )
            },
        ),
        (
            r#"{"type":"start_session","requestId":"r",
                "inputAudio":{"codec":"opus","sampleRate":44100,"channels":1},
                "outputAudio":{"codec":"opus","sampleRate":48000,"channels":1}}"#,
            |e| {
                matches!(
                    e,
                    ProtocolError::InvalidField {
                        field: "sampleRate",
                        ..
                    }
                )
            },
        ),
    ];
    for (input, expected) in cases {
        let err = ClientEvent::from_json_str(input).unwrap_err();
        assert!(expected(&err), "{input} gave {err:?}");
        assert_eq!(err.error_code(), ErrorCode::BadRequest);
    }

    let err = ClientEvent::from_json_str(r#"{"type":"cancel","requestId":"a b"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"cancel\" event: field `requestId` must be visible ASCII (no spaces or control characters)"
    );
}

#[test]
fn viseme_weights_outside_zero_to_one_are_rejected() {
    let bad = r#"{"type":"visemes","turnId":1,"frames":[
        {"mediaTimeUs":0,"visemeId":3,"weights":[0.5,1.5]}]}"#;
    let err = ServerEvent::from_json_str(bad).unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::InvalidField {
                field: "weights",
                ..
            }
        ),
        "{err:?}"
    );
    // 1e39 overflows f32 to infinity, which JSON cannot carry back out.
    let inf = r#"{"type":"visemes","turnId":1,"frames":[{"mediaTimeUs":0,"visemeId":3,"weights":[1e39]}]}"#;
    assert!(ServerEvent::from_json_str(inf).is_err());
}

#[test]
fn error_codes_have_stable_strings_and_unknown_codes_degrade_gracefully() {
    for code in ErrorCode::ALL {
        let text = serde_json::to_string(&code).unwrap();
        assert_eq!(text, format!("\"{}\"", code.as_str()));
        assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), code);
    }
    let from_newer_server =
        r#"{"type":"error","code":"solar_flare","message":"?","retryable":false}"#;
    let ServerEvent::Error(error) = ServerEvent::from_json_str(from_newer_server).unwrap() else {
        panic!("wrong variant")
    };
    assert_eq!(error.code, ErrorCode::Unknown);
}

#[test]
fn turn_metrics_give_the_latency_the_user_feels() {
    let ServerEvent::TurnMetrics(metrics) = &every_server_event()[22] else {
        panic!("sample order changed")
    };
    assert_eq!(metrics.latency.response_latency_ms(), Some(2_530 - 1_740));
    // An interrupted turn has no audio out: no response latency, and absent stages are
    // omitted from the JSON rather than sent as null.
    let partial = protocol::voice::TurnLatency {
        speech_end_ms: Some(10),
        ..Default::default()
    };
    assert_eq!(partial.response_latency_ms(), None);
    assert_eq!(
        serde_json::to_value(partial).unwrap(),
        json!({"speechEndMs": 10})
    );
}

#[test]
fn event_frames_and_audio_frames_are_not_confused() {
    let audio = protocol::Frame::audio(1, 0, bytes::Bytes::from_static(b"{}"));
    assert_eq!(
        ClientEvent::from_frame(&audio).unwrap_err(),
        ProtocolError::UnexpectedFrameType {
            expected: FrameType::Event,
            found: FrameType::Audio
        }
    );
}
