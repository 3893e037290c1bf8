//! WebSocket chat against the real service in process (control plane over HTTP, gateway, mock
//! LLM): a user's message streams a reply back in order with its usage, the reply is stored,
//! and every kind of bad input is refused with its error code while stored data stays intact.

mod chat_ws_support;

use std::{sync::atomic::Ordering, time::Duration};

use chat_ws_support::{Options, Service, close_code, next_event, reply, send, send_message};
use futures_util::SinkExt as _;
use gateway::ChatConfig;
use pipeline::mock::MockConfig;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::Message;

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn a_reply_streams_in_order_is_stored_and_its_usage_recorded(postgres: bool) {
    let service = Service::start(Options {
        postgres,
        ..Options::default()
    })
    .await;
    let token = service.user("ada@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;

    send(
        &mut ws,
        send_message("req-1", &conversation, "What should I cook tonight?"),
    )
    .await;
    let events = reply(&mut ws).await;
    let kinds = types(&events);
    assert_eq!(kinds[..2], ["typing_start", "message_start"], "{kinds:?}");
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["message_complete", "typing_stop"],
        "{kinds:?}"
    );
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "message_delta")
        .collect();
    assert!(deltas.len() > 10, "the reply streams in pieces: {kinds:?}");
    assert_eq!(
        deltas.len(),
        kinds.len() - 4,
        "only deltas in between: {kinds:?}"
    );
    let message_id = events[1]["message"]["id"].as_str().unwrap();
    for e in &events[1..events.len() - 1] {
        assert_eq!(e["requestId"], "req-1", "{e}");
    }
    for d in &deltas {
        assert_eq!(d["messageId"], message_id);
    }
    let text: String = deltas
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        text,
        pipeline::mock::reply_for("What should I cook tonight?")
    );

    let complete = &events[events.len() - 2];
    assert_eq!(complete["finishReason"], "stop");
    assert_eq!(complete["message"]["id"], message_id);
    assert_eq!(complete["message"]["content"], text.as_str());
    let usage = &complete["usage"];
    let (prompt, completion) = (
        usage["promptTokens"].as_u64().unwrap(),
        usage["completionTokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && completion > 0, "{usage}");
    assert_eq!(usage["totalTokens"].as_u64().unwrap(), prompt + completion);
    assert_eq!(
        complete["message"]["metadata"]["tokensUsed"],
        usage["totalTokens"]
    );

    // Stored: the user's message and the reply, readable over REST.
    let stored = service.messages(&token, &conversation).await;
    assert_eq!(
        stored,
        [
            ("user".to_owned(), "What should I cook tonight?".to_owned()),
            ("companion".to_owned(), text.clone()),
        ]
    );
    // The turn record holds the usage.
    let (status, turn) = service
        .get(
            &format!("/api/conversations/{conversation}/turns/{message_id}"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["prompt_tokens"].as_u64(), Some(prompt));
    assert_eq!(turn["completion_tokens"].as_u64(), Some(completion));
    assert_eq!(turn["finish_reason"], "stop");
    assert_eq!(turn["message"]["content"], text.as_str());
    // The message was counted against the day's quota.
    let (_, usage) = service.get("/api/usage", &token).await;
    assert_eq!(usage["quotas"][0]["kind"], "messages");
    assert_eq!(usage["quotas"][0]["used"], 1);

    // A second message on the same connection gets the history as context.
    send(
        &mut ws,
        send_message("req-2", &conversation, "and dessert?"),
    )
    .await;
    let events = reply(&mut ws).await;
    assert_eq!(events.last().unwrap()["type"], "typing_stop");
    assert_eq!(service.messages(&token, &conversation).await.len(), 4);
}

mod streams_in_order {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_reply_streams_in_order_is_stored_and_its_usage_recorded(false).await;
    }

    /// Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (`scripts/services`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_reply_streams_in_order_is_stored_and_its_usage_recorded(true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_event_and_the_connection_lives_on() {
    let service = Service::start(Options::default()).await;
    let token = service.user("bob@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;

    ws.send(Message::text("{not json")).await.unwrap();
    let e = next_event(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_request")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("invalid JSON"),
        "{e}"
    );

    send(
        &mut ws,
        json!({"type": "message_explode", "requestId": "x"}),
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["code"], "bad_request");
    assert!(
        e["message"].as_str().unwrap().contains("message_explode"),
        "{e}"
    );

    send(
        &mut ws,
        json!({"type": "send_message", "requestId": "r", "conversationId": conversation}),
    )
    .await;
    assert_eq!(next_event(&mut ws).await["code"], "bad_request");

    send(&mut ws, json!({"type": "hang_up"})).await;
    assert_eq!(next_event(&mut ws).await["code"], "bad_request");

    ws.send(Message::binary(vec![1_u8, 2, 3])).await.unwrap();
    assert_eq!(next_event(&mut ws).await["code"], "bad_request");

    // Still alive: a heartbeat and a real message work.
    send(&mut ws, json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(
        next_event(&mut ws).await,
        json!({"type": "pong", "nonce": 7})
    );
    assert!(service.messages(&token, &conversation).await.is_empty());
    send(&mut ws, send_message("ok", &conversation, "hello")).await;
    assert_eq!(reply(&mut ws).await.last().unwrap()["type"], "typing_stop");
    assert_eq!(service.messages(&token, &conversation).await.len(), 2);

    // Over the size limit: closed with 1009, nothing stored.
    let huge = send_message("big", &conversation, &"x".repeat(200_000));
    let _ = ws.send(Message::text(huge.to_string())).await;
    assert_eq!(close_code(&mut ws).await, Some(1009));
    assert_eq!(service.messages(&token, &conversation).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_without_a_valid_token_or_from_a_foreign_origin_are_refused() {
    let service = Service::start(Options::default()).await;
    let token = service.user("cy@example.com").await;
    let proto = ("sec-websocket-protocol", "companion.v1");
    let bearer = format!("Bearer {token}");

    let (status, body) = service.try_connect(&[proto]).await.expect_err("no token");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = service
        .try_connect(&[proto, ("authorization", "Bearer not-a-jwt")])
        .await
        .expect_err("bad token");
    assert_eq!(status, 401);
    let (status, body) = service
        .try_connect(&[("authorization", &bearer)])
        .await
        .expect_err("no subprotocol");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unsupported_version"))
    );
    let (status, body) = service
        .try_connect(&[
            proto,
            ("authorization", &bearer),
            ("origin", "https://evil.example"),
        ])
        .await
        .expect_err("foreign origin");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );

    // Browsers: the token rides in the subprotocol list; localhost pages are allowed.
    let browser_protocols = format!("companion.v1, bearer.{token}");
    let mut ws = service
        .try_connect(&[
            ("sec-websocket-protocol", &browser_protocols),
            ("origin", "http://localhost:5173"),
        ])
        .await
        .expect("a browser-style handshake");
    assert_eq!(next_event(&mut ws).await["type"], "hello");

    // An expired token is refused at connect time.
    service.verifier.expired.store(true, Ordering::SeqCst);
    let (status, _) = service
        .try_connect(&[proto, ("authorization", &bearer)])
        .await
        .expect_err("expired");
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_on_an_open_connection_is_refused_and_the_connection_closed() {
    let service = Service::start(Options::default()).await;
    let token = service.user("dee@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;
    service.verifier.expired.store(true, Ordering::SeqCst);
    send(&mut ws, send_message("late", &conversation, "still there?")).await;
    let e = next_event(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("unauthorized"), Some("late"))
    );
    assert_eq!(close_code(&mut ws).await, Some(4001));
    service.verifier.expired.store(false, Ordering::SeqCst);
    assert!(service.messages(&token, &conversation).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_token_expired_is_closed_at_the_auth_deadline_without_a_request() {
    let service = Service::start(Options {
        chat: ChatConfig {
            heartbeat_interval_secs: 1,
            auth_timeout_secs: 1,
            ..ChatConfig::default()
        },
        ..Options::default()
    })
    .await;
    let token = service.user("idle@example.com").await;
    let mut ws = service.connect(&token).await;
    // It sends nothing at all: no request to be refused, no fresh `auth`.
    service.verifier.expired.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws).await, Some(4001));
    let after = started.elapsed();
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_conversation_does_not_exist() {
    let service = Service::start(Options::default()).await;
    let owner = service.user("owner@example.com").await;
    let intruder = service.user("intruder@example.com").await;
    let conversation = service.conversation(&owner).await;
    let mut ws = service.connect(&intruder).await;
    send(
        &mut ws,
        send_message("peek", &conversation, "hi from someone else"),
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("not_found"), Some("peek"))
    );
    assert!(service.messages(&owner, &conversation).await.is_empty());
    let (_, usage) = service.get("/api/usage", &intruder).await;
    assert_eq!(usage["quotas"][0]["used"], 0, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_quota_refuses_the_message() {
    let service = Service::start(Options::default()).await;
    let token = service.user("eve@example.com").await;
    let conversation = service.conversation(&token).await;
    // The free tier's 50 messages, spent over REST.
    for i in 0..50 {
        let (status, body) = service
            .post(
                &format!("/api/conversations/{conversation}/messages"),
                &token,
                json!({"content": format!("message {i}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ws = service.connect(&token).await;
    send(
        &mut ws,
        send_message("one-more", &conversation, "one more?"),
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["code"], "quota_exceeded", "{e}");
    assert_eq!(e["retryable"], false);
    assert!(e["retryAfterMs"].as_u64().unwrap() > 0);
    assert_eq!(service.messages(&token, &conversation).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_rate_limit_and_the_moderation_hook_refuse_before_storing() {
    let service = Service::start(Options {
        chat_limit: Some(2),
        blocked_terms: vec!["forbidden word".to_owned()],
        ..Options::default()
    })
    .await;
    let token = service.user("fay@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;

    send(
        &mut ws,
        send_message("m1", &conversation, "this has a Forbidden  Word in it"),
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("content_blocked"), Some("m1"))
    );
    assert!(service.messages(&token, &conversation).await.is_empty());

    send(
        &mut ws,
        send_message("m2", &conversation, "a forbidden wordsmith is fine"),
    )
    .await;
    assert_eq!(reply(&mut ws).await.last().unwrap()["type"], "typing_stop");

    // Two turns were counted (the blocked one too): the third is over the limit.
    send(&mut ws, send_message("m3", &conversation, "and again")).await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    assert_eq!(e["retryable"], true);
    assert!(e["retryAfterMs"].as_u64().unwrap() > 0);
    assert_eq!(service.messages(&token, &conversation).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_stream_and_stores_what_was_written() {
    let service = Service::start(Options {
        mock: MockConfig {
            ttft_ms: 5,
            token_interval_ms: 40,
            ..MockConfig::default()
        },
        ..Options::default()
    })
    .await;
    let token = service.user("gus@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;
    send(
        &mut ws,
        send_message("long", &conversation, "tell me a long story"),
    )
    .await;
    let mut text = String::new();
    let mut deltas = 0;
    let complete = loop {
        let e = next_event(&mut ws).await;
        match e["type"].as_str().unwrap() {
            "message_delta" => {
                text.push_str(e["delta"].as_str().unwrap());
                deltas += 1;
                if deltas == 3 {
                    send(&mut ws, json!({"type": "cancel", "requestId": "long"})).await;
                }
            }
            "message_complete" => break e,
            _ => {}
        }
    };
    assert_eq!(complete["finishReason"], "cancelled", "{complete}");
    assert_eq!(complete["message"]["content"], text.as_str());
    let full = pipeline::mock::reply_for("tell me a long story");
    assert!(text.len() < full.len() && full.starts_with(&text), "{text}");
    assert!(complete["usage"]["completionTokens"].as_u64().unwrap() >= 3);
    assert_eq!(next_event(&mut ws).await["type"], "typing_stop");
    assert_eq!(
        service.messages(&token, &conversation).await[1],
        ("companion".to_owned(), text.clone())
    );
    let id = complete["message"]["id"].as_str().unwrap();
    let (_, turn) = service
        .get(
            &format!("/api/conversations/{conversation}/turns/{id}"),
            &token,
        )
        .await;
    assert_eq!(turn["finish_reason"], "cancelled");
    // Cancelling a finished request is a no-op; the connection goes on.
    send(&mut ws, json!({"type": "cancel", "requestId": "long"})).await;
    send(&mut ws, json!({"type": "ping", "nonce": 1})).await;
    assert_eq!(next_event(&mut ws).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_connection_limit_are_refused() {
    let service = Service::start(Options {
        chat: ChatConfig {
            max_concurrent_requests: 1,
            ..ChatConfig::default()
        },
        mock: MockConfig {
            ttft_ms: 5,
            token_interval_ms: 20,
            ..MockConfig::default()
        },
        ..Options::default()
    })
    .await;
    let token = service.user("hal@example.com").await;
    let conversation = service.conversation(&token).await;
    let mut ws = service.connect(&token).await;
    send(&mut ws, send_message("a", &conversation, "first")).await;
    send(&mut ws, send_message("b", &conversation, "second")).await;
    let mut refused = None;
    let mut finished = false;
    while !(finished && refused.is_some()) {
        let e = next_event(&mut ws).await;
        if e["type"] == "error" {
            refused = Some(e);
        } else if e["type"] == "typing_stop" {
            finished = true;
        }
    }
    let refused = refused.unwrap();
    assert_eq!(
        (refused["code"].as_str(), refused["requestId"].as_str()),
        (Some("rate_limited"), Some("b"))
    );
    assert_eq!(service.messages(&token, &conversation).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_three_heartbeats() {
    let service = Service::start(Options {
        chat: ChatConfig {
            heartbeat_interval_secs: 1,
            ..ChatConfig::default()
        },
        ..Options::default()
    })
    .await;
    let token = service.user("ivy@example.com").await;
    let ws = service.connect(&token).await;
    // Below the WebSocket layer, which would answer pings as soon as it reads: this client
    // reads nothing and writes nothing.
    let tokio_tungstenite::MaybeTlsStream::Plain(mut tcp) = ws.into_inner() else {
        panic!("plain TCP")
    };
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut bytes)).await;
    assert!(read.is_ok(), "the server ends the connection");
    // Server frames are unmasked and small here: [opcode, length, payload].
    let mut frames = bytes.as_slice();
    let mut close = None;
    while frames.len() >= 2 {
        let (opcode, len) = (frames[0] & 0x0f, usize::from(frames[1] & 0x7f));
        assert!(
            len < 126 && frames.len() >= 2 + len,
            "short control frames only"
        );
        if opcode == 0x8 {
            close = Some(u16::from_be_bytes([frames[2], frames[3]]));
        }
        frames = &frames[2 + len..];
    }
    assert_eq!(close, Some(4000));
}
