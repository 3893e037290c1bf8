//! A client that stops reading while replies stream: the server's memory stays bounded by the
//! outbound queue (the replies wait), and once one write stays blocked past
//! `slow_consumer_timeout_ms` the connection is closed (4008) and its replies are stored as
//! far as they were written.

mod chat_ws_support;

use std::time::Duration;

use chat_ws_support::{Options, Service, send, send_message};
use futures_util::StreamExt as _;
use gateway::ChatConfig;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_the_replies_are_stored_as_written() {
    let service = Service::start(Options {
        chat: ChatConfig {
            outbound_queue: 8,
            slow_consumer_timeout_ms: 300,
            max_concurrent_requests: 16,
            ..ChatConfig::default()
        },
        // Small kernel buffers on both ends, so a few replies fill them (not megabytes).
        gateway_send_buffer: Some(4096),
        ..Options::default()
    })
    .await;
    let token = service.user("slow@example.com").await;
    let conversation = service.conversation(&token).await;

    // A tiny receive window, so the kernel cannot absorb the replies for us.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(service.gateway_addr).await.unwrap();
    let request = test_support::ws::request(&service.ws_url, &token);
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    // Each reply quotes the message's last six words twice: long words, long replies (~16 KB).
    let word = "w".repeat(1_300);
    let content = [word.as_str(); 6].join(" ");
    for i in 0..16 {
        send(
            &mut ws,
            send_message(&format!("r{i}"), &conversation, &content),
        )
        .await;
    }
    // Not reading for a while: the writer blocks and gives up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut completed = 0;
    let mut close = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server ends it")
        {
            Some(Ok(Message::Text(t))) => {
                let e: serde_json::Value = serde_json::from_str(&t).unwrap();
                if e["type"] == "typing_stop" {
                    completed += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                close = frame.map(|f| f.code);
                break;
            }
            Some(Ok(_)) => {}
            // The close frame may not fit through a blocked socket: the TCP connection ends.
            Some(Err(_)) | None => break,
        }
    }
    assert!(
        completed < 16,
        "the server gave up before every reply was delivered"
    );
    assert!(
        close.is_none() || close == Some(CloseCode::Library(4008)),
        "closed with {close:?}"
    );

    // Every turn is recorded: the user's messages, and each reply that had begun, as written.
    let full = pipeline::mock::reply_for(&content);
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = service.messages(&token, &conversation).await;
        let users = stored.iter().filter(|(r, _)| r == "user").count();
        if users == 16 && stored.len() >= 16 + completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored.iter().filter(|(r, _)| r == "user").count(), 16);
    for (role, text) in &stored {
        if role == "companion" {
            assert!(
                full.starts_with(text.as_str()),
                "a stored reply is a prefix of the reply"
            );
        }
    }
}
