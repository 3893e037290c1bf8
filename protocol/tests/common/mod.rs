//! Shared test helpers: one sample of every event, and proptest strategies that generate
//! valid frames and events (written by hand; the crate has no `Arbitrary` derive).
#![allow(dead_code)] // each test file uses a different part

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::Union;
use protocol::chat::{
    Cancel, ChatMessage, ContentType, FinishReason, MessageComplete, MessageDelta, MessageMetadata,
    MessageStart, Role, SendMessage, TokenUsage, Typing,
};
use protocol::control::{Auth, ErrorCode, ErrorEvent, Goodbye, GoodbyeReason, Heartbeat, Hello};
use protocol::viseme::VisemeFrame;
use protocol::voice::{
    AudioCodec, AudioEdge, AudioFormat, Configure, EndReason, Interrupted, ResponseStarted,
    SessionEnded, SessionStarted, SpeechEdge, StartSession, TextDelta, Transcript, TurnLatency,
    TurnMetrics, Visemes,
};
use protocol::{ClientEvent, Frame, FrameFlags, FrameType, MAX_FRAME_PAYLOAD, ServerEvent};

// ---------------------------------------------------------------- fixed samples

pub(crate) fn opus_48k() -> AudioFormat {
    AudioFormat {
        codec: AudioCodec::Opus,
        sample_rate: 48_000,
        channels: 1,
    }
}

pub(crate) fn pcm_16k() -> AudioFormat {
    AudioFormat {
        codec: AudioCodec::PcmS16le,
        sample_rate: 16_000,
        channels: 1,
    }
}

pub(crate) fn assistant_message(content: &str) -> ChatMessage {
    ChatMessage {
        id: "msg_01".into(),
        conversation_id: "conv_42".into(),
        role: Role::Assistant,
        content: content.into(),
        content_type: ContentType::Text,
        timestamp: 1_764_389_581_000,
        metadata: MessageMetadata {
            model: Some("llama-3.1-8b".into()),
            tokens_used: Some(57),
            voice_duration: None,
        },
    }
}

/// One of every server event, in `ServerEvent::TYPES` order.
pub(crate) fn every_server_event() -> Vec<ServerEvent> {
    let request_id = Some("req-7".to_owned());
    vec![
        ServerEvent::Hello(Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            connection_id: "conn_9".into(),
            max_event_bytes: 131_072,
            max_frame_payload: 131_072,
            heartbeat_interval_ms: 15_000,
        }),
        ServerEvent::Ping(Heartbeat { nonce: 1 }),
        ServerEvent::Pong(Heartbeat { nonce: 2 }),
        ServerEvent::Error(ErrorEvent {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retryable: true,
            retry_after_ms: Some(1_500),
            request_id: request_id.clone(),
            session_id: None,
        }),
        ServerEvent::Goodbye(Goodbye {
            reason: GoodbyeReason::Draining,
            deadline_ms: 30_000,
            reconnect_after_ms: Some(250),
        }),
        ServerEvent::MessageStart(MessageStart {
            request_id: request_id.clone(),
            message: assistant_message(""),
        }),
        ServerEvent::MessageDelta(MessageDelta {
            request_id: request_id.clone(),
            message_id: "msg_01".into(),
            conversation_id: "conv_42".into(),
            delta: "Hel".into(),
        }),
        ServerEvent::MessageComplete(MessageComplete {
            request_id,
            message: assistant_message("Hello there!"),
            usage: TokenUsage {
                prompt_tokens: 50,
                completion_tokens: 7,
                total_tokens: 57,
            },
            finish_reason: FinishReason::Stop,
        }),
        ServerEvent::TypingStart(Typing {
            conversation_id: "conv_42".into(),
        }),
        ServerEvent::TypingStop(Typing {
            conversation_id: "conv_42".into(),
        }),
        ServerEvent::SessionStarted(SessionStarted {
            session_id: "sess_3".into(),
            conversation_id: "conv_42".into(),
            input_audio: pcm_16k(),
            output_audio: opus_48k(),
            visemes: true,
        }),
        ServerEvent::SessionEnded(SessionEnded {
            session_id: "sess_3".into(),
            reason: EndReason::HangUp,
            duration_ms: 93_400,
        }),
        ServerEvent::SpeechStarted(SpeechEdge {
            turn_id: 1,
            media_time_us: 1_200_000,
        }),
        ServerEvent::SpeechStopped(SpeechEdge {
            turn_id: 1,
            media_time_us: 2_940_000,
        }),
        ServerEvent::TranscriptPartial(Transcript {
            turn_id: 1,
            text: "what is the".into(),
        }),
        ServerEvent::TranscriptFinal(Transcript {
            turn_id: 1,
            text: "What is the weather like today?".into(),
        }),
        ServerEvent::ResponseStarted(ResponseStarted {
            turn_id: 1,
            message_id: "msg_02".into(),
        }),
        ServerEvent::TextDelta(TextDelta {
            turn_id: 1,
            delta: "Sunny".into(),
        }),
        ServerEvent::AudioStarted(AudioEdge {
            turn_id: 1,
            media_time_us: 0,
        }),
        ServerEvent::AudioEnded(AudioEdge {
            turn_id: 1,
            media_time_us: 2_300_000,
        }),
        ServerEvent::Visemes(Visemes {
            turn_id: 1,
            frames: vec![
                VisemeFrame {
                    media_time_us: 0,
                    viseme_id: 0,
                    weights: vec![],
                },
                VisemeFrame {
                    media_time_us: 40_000,
                    viseme_id: 7,
                    weights: vec![0.0, 0.25, 0.75],
                },
            ],
        }),
        ServerEvent::Interrupted(Interrupted {
            turn_id: 1,
            heard_text: "Sunny, with a".into(),
            media_time_us: 820_000,
        }),
        ServerEvent::TurnMetrics(TurnMetrics {
            turn_id: 1,
            latency: TurnLatency {
                speech_end_ms: Some(1_740),
                end_of_turn_ms: Some(1_990),
                stt_final_ms: Some(2_050),
                llm_first_token_ms: Some(2_260),
                first_sentence_ms: Some(2_410),
                tts_first_audio_ms: Some(2_520),
                first_audio_out_ms: Some(2_530),
            },
        }),
    ]
}

/// One of every client event, in `ClientEvent::TYPES` order.
pub(crate) fn every_client_event() -> Vec<ClientEvent> {
    vec![
        ClientEvent::SendMessage(SendMessage {
            request_id: "req-7".into(),
            conversation_id: "conv_42".into(),
            content: "Hi!".into(),
            content_type: ContentType::Text,
        }),
        ClientEvent::Cancel(Cancel {
            request_id: "req-7".into(),
        }),
        ClientEvent::Ping(Heartbeat { nonce: 3 }),
        ClientEvent::Pong(Heartbeat { nonce: 4 }),
        ClientEvent::StartSession(StartSession {
            request_id: "call-1".into(),
            conversation_id: Some("conv_42".into()),
            companion_id: None,
            input_audio: pcm_16k(),
            output_audio: opus_48k(),
            visemes: true,
        }),
        ClientEvent::Configure(Configure {
            visemes: Some(false),
            voice: Some("aria".into()),
            language: None,
        }),
        ClientEvent::Mute,
        ClientEvent::Unmute,
        ClientEvent::Interrupt,
        ClientEvent::HangUp,
        ClientEvent::Auth(Auth {
            token: "eyJhbGciOiJFUzI1NiJ9.e30.sig".into(),
        }),
    ]
}

// ---------------------------------------------------------------- strategies

/// Any frame the encoder accepts (payload up to 4 KiB to keep cases fast, plus the exact
/// maximum now and then).
pub(crate) fn any_frame() -> impl Strategy<Value = Frame> {
    let payload = prop_oneof![
        20 => proptest::collection::vec(any::<u8>(), 0..4096),
        1 => Just(vec![0xAB; MAX_FRAME_PAYLOAD]),
    ];
    (
        prop_oneof![
            Just(FrameType::Audio),
            Just(FrameType::Viseme),
            Just(FrameType::Event)
        ],
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        payload,
    )
        .prop_map(
            |(frame_type, flags, sequence, media_time_us, payload)| Frame {
                frame_type,
                flags: FrameFlags(flags),
                sequence,
                media_time_us,
                payload: Bytes::from(payload),
            },
        )
}

/// Free text including multi-byte characters, quotes and escapes.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?'\"\\\\/\n\t_é漢😀-]{0,24}"
}

fn non_empty_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?'\"\\\\/\n\t_é漢😀-]{1,24}"
}

fn id() -> impl Strategy<Value = String> {
    "[a-z0-9_]{1,16}"
}

fn request_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:~!-]{1,40}"
}

/// A weight with three decimals, so its JSON text round-trips exactly through f32.
fn weight() -> impl Strategy<Value = f32> {
    (0u16..=1000).prop_map(|k| f32::from(k) / 1000.0)
}

fn audio_format() -> impl Strategy<Value = AudioFormat> {
    prop_oneof![
        (1u8..=2).prop_map(|channels| AudioFormat {
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            channels
        }),
        (
            prop::sample::select(protocol::voice::SUPPORTED_SAMPLE_RATES.to_vec()),
            1u8..=2
        )
            .prop_map(|(sample_rate, channels)| AudioFormat {
                codec: AudioCodec::PcmS16le,
                sample_rate,
                channels
            }),
    ]
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (
        id(),
        id(),
        prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::System)],
        text(),
        prop_oneof![
            Just(ContentType::Text),
            Just(ContentType::Voice),
            Just(ContentType::Image)
        ],
        any::<u64>(),
        (
            proptest::option::of(id()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |(id, conversation_id, role, content, content_type, timestamp, meta)| ChatMessage {
                id,
                conversation_id,
                role,
                content,
                content_type,
                timestamp,
                metadata: MessageMetadata {
                    model: meta.0,
                    tokens_used: meta.1,
                    voice_duration: meta.2,
                },
            },
        )
}

fn viseme_frame() -> impl Strategy<Value = VisemeFrame> {
    (
        any::<u64>(),
        0u8..protocol::viseme::VISEME_COUNT,
        proptest::collection::vec(weight(), 0..=15),
    )
        .prop_map(|(media_time_us, viseme_id, weights)| VisemeFrame {
            media_time_us,
            viseme_id,
            weights,
        })
}

fn turn_latency() -> impl Strategy<Value = TurnLatency> {
    proptest::collection::vec(proptest::option::of(any::<u32>()), 7).prop_map(|v| TurnLatency {
        speech_end_ms: v[0],
        end_of_turn_ms: v[1],
        stt_final_ms: v[2],
        llm_first_token_ms: v[3],
        first_sentence_ms: v[4],
        tts_first_audio_ms: v[5],
        first_audio_out_ms: v[6],
    })
}

/// Any valid server event.
pub(crate) fn any_server_event() -> impl Strategy<Value = ServerEvent> {
    let heartbeat = any::<u64>().prop_map(|nonce| Heartbeat { nonce });
    let edge = (any::<u64>(), any::<u64>()).prop_map(|(turn_id, media_time_us)| SpeechEdge {
        turn_id,
        media_time_us,
    });
    let audio_edge = (any::<u64>(), any::<u64>()).prop_map(|(turn_id, media_time_us)| AudioEdge {
        turn_id,
        media_time_us,
    });
    let transcript =
        || (any::<u64>(), text()).prop_map(|(turn_id, text)| Transcript { turn_id, text });
    let error_code = prop::sample::select(ErrorCode::ALL.to_vec());
    Union::new(vec![
        (id(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(connection_id, v, e, f, h)| {
                ServerEvent::Hello(Hello {
                    protocol_version: v,
                    connection_id,
                    max_event_bytes: e,
                    max_frame_payload: f,
                    heartbeat_interval_ms: h,
                })
            })
            .boxed(),
        heartbeat.clone().prop_map(ServerEvent::Ping).boxed(),
        heartbeat.prop_map(ServerEvent::Pong).boxed(),
        (
            error_code,
            text(),
            any::<bool>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(request_id()),
            proptest::option::of(id()),
        )
            .prop_map(
                |(code, message, retryable, retry, request_id, session_id)| {
                    ServerEvent::Error(ErrorEvent {
                        code,
                        message,
                        retryable,
                        retry_after_ms: retry,
                        request_id,
                        session_id,
                    })
                },
            )
            .boxed(),
        (
            prop_oneof![
                Just(GoodbyeReason::Draining),
                Just(GoodbyeReason::Restart),
                Just(GoodbyeReason::IdleTimeout),
                Just(GoodbyeReason::Replaced)
            ],
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(reason, deadline_ms, reconnect_after_ms)| {
                ServerEvent::Goodbye(Goodbye {
                    reason,
                    deadline_ms,
                    reconnect_after_ms,
                })
            })
            .boxed(),
        (proptest::option::of(request_id()), chat_message())
            .prop_map(|(request_id, message)| {
                ServerEvent::MessageStart(MessageStart {
                    request_id,
                    message,
                })
            })
            .boxed(),
        (proptest::option::of(request_id()), id(), id(), text())
            .prop_map(|(request_id, message_id, conversation_id, delta)| {
                ServerEvent::MessageDelta(MessageDelta {
                    request_id,
                    message_id,
                    conversation_id,
                    delta,
                })
            })
            .boxed(),
        (
            proptest::option::of(request_id()),
            chat_message(),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            prop_oneof![
                Just(FinishReason::Stop),
                Just(FinishReason::Length),
                Just(FinishReason::Cancelled),
                Just(FinishReason::ContentFilter),
                Just(FinishReason::Error)
            ],
        )
            .prop_map(|(request_id, message, (p, c, t), finish_reason)| {
                ServerEvent::MessageComplete(MessageComplete {
                    request_id,
                    message,
                    usage: TokenUsage {
                        prompt_tokens: p,
                        completion_tokens: c,
                        total_tokens: t,
                    },
                    finish_reason,
                })
            })
            .boxed(),
        id().prop_map(|conversation_id| ServerEvent::TypingStart(Typing { conversation_id }))
            .boxed(),
        id().prop_map(|conversation_id| ServerEvent::TypingStop(Typing { conversation_id }))
            .boxed(),
        (id(), id(), audio_format(), audio_format(), any::<bool>())
            .prop_map(
                |(session_id, conversation_id, input_audio, output_audio, visemes)| {
                    ServerEvent::SessionStarted(SessionStarted {
                        session_id,
                        conversation_id,
                        input_audio,
                        output_audio,
                        visemes,
                    })
                },
            )
            .boxed(),
        (
            id(),
            prop_oneof![
                Just(EndReason::HangUp),
                Just(EndReason::IdleTimeout),
                Just(EndReason::MaxDuration),
                Just(EndReason::QuotaExceeded),
                Just(EndReason::ServerShutdown),
                Just(EndReason::TransportClosed),
                Just(EndReason::Replaced),
                Just(EndReason::Error)
            ],
            any::<u64>(),
        )
            .prop_map(|(session_id, reason, duration_ms)| {
                ServerEvent::SessionEnded(SessionEnded {
                    session_id,
                    reason,
                    duration_ms,
                })
            })
            .boxed(),
        edge.clone().prop_map(ServerEvent::SpeechStarted).boxed(),
        edge.prop_map(ServerEvent::SpeechStopped).boxed(),
        transcript()
            .prop_map(ServerEvent::TranscriptPartial)
            .boxed(),
        transcript().prop_map(ServerEvent::TranscriptFinal).boxed(),
        (any::<u64>(), id())
            .prop_map(|(turn_id, message_id)| {
                ServerEvent::ResponseStarted(ResponseStarted {
                    turn_id,
                    message_id,
                })
            })
            .boxed(),
        (any::<u64>(), text())
            .prop_map(|(turn_id, delta)| ServerEvent::TextDelta(TextDelta { turn_id, delta }))
            .boxed(),
        audio_edge
            .clone()
            .prop_map(ServerEvent::AudioStarted)
            .boxed(),
        audio_edge.prop_map(ServerEvent::AudioEnded).boxed(),
        (
            any::<u64>(),
            proptest::collection::vec(viseme_frame(), 0..8),
        )
            .prop_map(|(turn_id, frames)| ServerEvent::Visemes(Visemes { turn_id, frames }))
            .boxed(),
        (any::<u64>(), text(), any::<u64>())
            .prop_map(|(turn_id, heard_text, media_time_us)| {
                ServerEvent::Interrupted(Interrupted {
                    turn_id,
                    heard_text,
                    media_time_us,
                })
            })
            .boxed(),
        (any::<u64>(), turn_latency())
            .prop_map(|(turn_id, latency)| {
                ServerEvent::TurnMetrics(TurnMetrics { turn_id, latency })
            })
            .boxed(),
    ])
}

/// Any valid client event.
pub(crate) fn any_client_event() -> impl Strategy<Value = ClientEvent> {
    let heartbeat = any::<u64>().prop_map(|nonce| Heartbeat { nonce });
    Union::new(vec![
        (
            request_id(),
            id(),
            non_empty_text(),
            prop_oneof![
                Just(ContentType::Text),
                Just(ContentType::Voice),
                Just(ContentType::Image)
            ],
        )
            .prop_map(|(request_id, conversation_id, content, content_type)| {
                ClientEvent::SendMessage(SendMessage {
                    request_id,
                    conversation_id,
                    content,
                    content_type,
                })
            })
            .boxed(),
        request_id()
            .prop_map(|request_id| ClientEvent::Cancel(Cancel { request_id }))
            .boxed(),
        heartbeat.clone().prop_map(ClientEvent::Ping).boxed(),
        heartbeat.prop_map(ClientEvent::Pong).boxed(),
        (
            request_id(),
            proptest::option::of(id()),
            proptest::option::of(id()),
            audio_format(),
            audio_format(),
            any::<bool>(),
        )
            .prop_map(
                |(request_id, conversation_id, companion_id, i, o, visemes)| {
                    ClientEvent::StartSession(StartSession {
                        request_id,
                        conversation_id,
                        companion_id,
                        input_audio: i,
                        output_audio: o,
                        visemes,
                    })
                },
            )
            .boxed(),
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(text()),
            proptest::option::of("[a-z]{2}-[A-Z]{2}"),
        )
            .prop_map(|(visemes, voice, language)| {
                ClientEvent::Configure(Configure {
                    visemes,
                    voice,
                    language,
                })
            })
            .boxed(),
        Just(ClientEvent::Mute).boxed(),
        Just(ClientEvent::Unmute).boxed(),
        Just(ClientEvent::Interrupt).boxed(),
        Just(ClientEvent::HangUp).boxed(),
    ])
}
