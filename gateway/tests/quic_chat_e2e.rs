//! The whole chat path over QUIC: a native quinn client, the gateway's own chat service, the
//! control plane on SQLite (turns, storage, usage) and the mock LLM streaming its tokens.

mod quic_support;

use std::time::Duration;

use pipeline::mock::MockConfig;
use protocol::{
    ClientEvent, ServerEvent,
    chat::{Cancel, FinishReason},
    control::ErrorCode,
};
use quic_support::{service::Service, *};

fn hash(service: &Service) -> [u8; 32] {
    service.quic.cert_hash().sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_the_mock_llm_streams_over_quic_and_is_stored() {
    let mock = MockConfig {
        ttft_ms: 5,
        token_interval_ms: 2,
        ..MockConfig::default()
    };
    let service = Service::start(mock, axum::Router::new()).await;
    let token = service.user("quic-e2e@example.com").await;
    let conversation = service.conversation(&token).await;
    let conn = connect(service.quic.local_addr(), hash(&service)).await;

    let ask = send_message_to(&conversation, "q1", "What should I cook tonight?");
    let (mut send, mut reader) = request(&conn, &token, &ask).await;
    send.finish().unwrap();
    let events = reader.rest(0).await;
    let names = kinds(&events);
    assert_eq!(names.first(), Some(&"typing_start"), "{names:?}");
    assert_eq!(names[1], "message_start", "{names:?}");
    assert_eq!(names.last(), Some(&"typing_stop"), "{names:?}");
    let deltas = names.iter().filter(|n| **n == "message_delta").count();
    assert!(deltas >= 3, "the reply streamed token by token: {names:?}");
    let mut text = String::new();
    let mut complete = None;
    for event in &events {
        match event {
            ServerEvent::MessageDelta(d) => {
                assert_eq!(d.request_id.as_deref(), Some("q1"));
                text.push_str(&d.delta);
            }
            ServerEvent::MessageComplete(c) => complete = Some(c.clone()),
            ServerEvent::Error(e) => panic!("unexpected error {e:?}"),
            _ => {}
        }
    }
    let complete = complete.expect("message_complete");
    assert_eq!(complete.finish_reason, FinishReason::Stop);
    assert_eq!(complete.message.content, text);
    assert!(complete.usage.total_tokens > 0, "{complete:?}");

    // The control plane stored both sides of the turn.
    let stored = service.messages(&token, &conversation).await;
    let last_two: Vec<_> = stored.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(
        last_two,
        [
            ("user".to_owned(), "What should I cook tonight?".to_owned()),
            ("companion".to_owned(), text.clone()),
        ],
        "{stored:?}"
    );

    // Another account's conversation does not exist for this one.
    let other = service.user("quic-e2e-other@example.com").await;
    let ask = send_message_to(&conversation, "q2", "hello?");
    let (_send, mut reader) = request(&conn, &other, &ask).await;
    let events = reader.rest(0).await;
    match events.as_slice() {
        [ServerEvent::Error(error)] => assert_eq!(error.code, ErrorCode::NotFound, "{error:?}"),
        other => panic!("expected not_found, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_over_quic_stores_the_partial_reply() {
    // Slow tokens, so the cancel lands mid-reply.
    let mock = MockConfig {
        ttft_ms: 5,
        token_interval_ms: 40,
        ..MockConfig::default()
    };
    let service = Service::start(mock, axum::Router::new()).await;
    let token = service.user("quic-cancel@example.com").await;
    let conversation = service.conversation(&token).await;
    let conn = connect(service.quic.local_addr(), hash(&service)).await;

    let ask = send_message_to(&conversation, "c1", "Tell me a long story please");
    let (mut send, mut reader) = request(&conn, &token, &ask).await;
    let mut events = Vec::new();
    loop {
        let (_, event) = reader.next_event().await.expect("the reply streams");
        let delta = matches!(event, ServerEvent::MessageDelta(_));
        events.push(event);
        if delta {
            break;
        }
    }
    let cancel = ClientEvent::Cancel(Cancel {
        request_id: "c1".to_owned(),
    });
    send.write_all(&client_frame(&cancel, 2)).await.unwrap();
    let next = u32::try_from(events.len()).unwrap();
    events.extend(reader.rest(next).await);
    let complete = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::MessageComplete(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a cancelled message_complete");
    assert_eq!(complete.finish_reason, FinishReason::Cancelled);
    assert!(!complete.message.content.is_empty());

    // What was written is what was stored, within the time it takes to record it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = service.messages(&token, &conversation).await;
        if stored.last().map(|(_, c)| c) == Some(&complete.message.content) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "partial reply not stored: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
