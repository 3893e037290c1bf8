//! Chat over raw QUIC (ALPN `companion/1`) with a real quinn client: the control stream's
//! `hello`, a request streamed back in order, cancellation, refused tokens, broken frames,
//! stream limits, the drain, `/readyz`, and WebTransport's path and `Origin` checks. The chat service behind the
//! endpoint is a scripted one here (the transport is under test); `quic_chat_e2e.rs` runs the
//! real chat service against the mock LLM.

mod quic_support;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use gateway::{
    Caller, Config, Gateway,
    quic::{QuicConfig, QuicEndpoint, ReplyService, codes::AppCode},
};
use protocol::{
    ClientEvent, FRAME_HEADER_LEN, ServerEvent,
    chat::{
        Cancel, ChatMessage, ContentType, FinishReason, MessageComplete, MessageDelta,
        MessageStart, Role, SendMessage, TokenUsage, Typing,
    },
    control::ErrorCode,
};
use quic_support::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Answers "you said: <content>" one word per `pace`, stopping early when cancelled.
struct Scripted {
    pace: Duration,
    /// Requests seen: `(user id, token)`.
    seen: mpsc::UnboundedSender<(String, String)>,
    /// Replies that observed their cancellation.
    cancelled: Arc<AtomicUsize>,
}

impl ReplyService for Scripted {
    fn reply(
        &self,
        caller: Caller,
        bearer_token: String,
        request: SendMessage,
        events: mpsc::Sender<ServerEvent>,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let (pace, seen, cancelled) = (self.pace, self.seen.clone(), self.cancelled.clone());
        Box::pin(async move {
            let _ = seen.send((caller.user_id, bearer_token));
            let rid = Some(request.request_id.clone());
            let conversation_id = request.conversation_id.clone();
            let mut message = ChatMessage {
                id: "msg-1".to_owned(),
                conversation_id: conversation_id.clone(),
                role: Role::Assistant,
                content: String::new(),
                content_type: ContentType::Text,
                timestamp: 1,
                metadata: Default::default(),
            };
            let typing = Typing {
                conversation_id: conversation_id.clone(),
            };
            let _ = events.send(ServerEvent::TypingStart(typing.clone())).await;
            let start = MessageStart {
                request_id: rid.clone(),
                message: message.clone(),
            };
            let _ = events.send(ServerEvent::MessageStart(start)).await;
            let mut finish = FinishReason::Stop;
            let reply = format!("you said: {}", request.content);
            for word in reply.split_inclusive(' ') {
                tokio::select! {
                    () = cancel.cancelled() => {
                        cancelled.fetch_add(1, SeqCst);
                        finish = FinishReason::Cancelled;
                        break;
                    }
                    () = tokio::time::sleep(pace) => {}
                }
                message.content.push_str(word);
                let delta = ServerEvent::MessageDelta(MessageDelta {
                    request_id: rid.clone(),
                    message_id: message.id.clone(),
                    conversation_id: conversation_id.clone(),
                    delta: word.to_owned(),
                });
                if events.send(delta).await.is_err() {
                    return;
                }
            }
            let complete = ServerEvent::MessageComplete(MessageComplete {
                request_id: rid,
                message,
                usage: TokenUsage::default(),
                finish_reason: finish,
            });
            let _ = events.send(complete).await;
            let _ = events.send(ServerEvent::TypingStop(typing)).await;
        })
    }
}

struct Server {
    gateway: Gateway,
    endpoint: QuicEndpoint,
    hash: [u8; 32],
    http: String,
    seen: mpsc::UnboundedReceiver<(String, String)>,
    cancelled: Arc<AtomicUsize>,
}

async fn serve(pace: Duration, edit: impl FnOnce(&mut QuicConfig)) -> Server {
    serve_with(pace, |config| edit(&mut config.quic)).await
}

async fn serve_with(pace: Duration, edit: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    edit(&mut config);
    let gateway = Gateway::new(config).with_verifier(Arc::new(Tokens));
    let (tx, seen) = mpsc::unbounded_channel();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let service = Scripted {
        pace,
        seen: tx,
        cancelled: cancelled.clone(),
    };
    let endpoint = gateway
        .start_quic_with(Arc::new(service))
        .await
        .expect("the QUIC endpoint starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The certificate hash, as a client fetches it.
    let body: serde_json::Value = reqwest::get(format!("{http}/v1/webtransport/cert-hash"))
        .await
        .expect("GET cert-hash")
        .json()
        .await
        .expect("JSON");
    let hex = body["hex"].as_str().expect("hex");
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    assert_eq!(hash, endpoint.cert_hash().sha256);
    Server {
        gateway,
        endpoint,
        hash,
        http,
        seen,
        cancelled,
    }
}

fn message_text(events: &[ServerEvent]) -> (String, Option<MessageComplete>) {
    let mut deltas = String::new();
    let mut complete = None;
    for event in events {
        match event {
            ServerEvent::MessageDelta(d) => deltas.push_str(&d.delta),
            ServerEvent::MessageComplete(c) => complete = Some(c.clone()),
            _ => {}
        }
    }
    (deltas, complete)
}

fn error_of(events: &[ServerEvent]) -> protocol::control::ErrorEvent {
    match events {
        [ServerEvent::Error(error)] => error.clone(),
        other => panic!("expected one error event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_streams_its_reply_in_order_and_hello_comes_first() {
    let mut server = serve(Duration::from_millis(5), |_| {}).await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;

    // The server's control stream opens with `hello`.
    let control = conn.accept_uni().await.expect("the control stream");
    let mut control = Reader::new(control);
    let (sequence, hello) = control.next_event().await.expect("hello");
    assert_eq!(sequence, 0);
    let ServerEvent::Hello(hello) = hello else {
        panic!("expected hello, got {hello:?}");
    };
    assert_eq!(hello.protocol_version, 1);
    assert_eq!(hello.max_frame_payload, 131_072);
    assert!(hello.connection_id.starts_with("quic_"), "{hello:?}");

    let (mut send, mut reader) = request(
        &conn,
        "alice-token",
        &send_message("r1", "what is for dinner"),
    )
    .await;
    // The client has nothing more to say: finishing its side must not cancel the reply.
    send.finish().unwrap();
    let events = reader.rest(0).await;
    assert_eq!(
        kinds(&events),
        [
            "typing_start",
            "message_start",
            "message_delta",
            "message_delta",
            "message_delta",
            "message_delta",
            "message_delta",
            "message_delta",
            "message_complete",
            "typing_stop"
        ]
    );
    let (deltas, complete) = message_text(&events);
    let complete = complete.unwrap();
    assert_eq!(deltas, "you said: what is for dinner");
    assert_eq!(complete.message.content, deltas);
    assert_eq!(complete.finish_reason, FinishReason::Stop);
    assert_eq!(complete.request_id.as_deref(), Some("r1"));
    assert_eq!(
        server.seen.recv().await,
        Some(("alice".to_owned(), "alice-token".to_owned()))
    );

    // Several requests at once on one connection, each on its own stream.
    let mut readers = Vec::new();
    for i in 0..4 {
        let (mut send, reader) =
            request(&conn, "bob-token", &send_message(&format!("p{i}"), "hi")).await;
        send.finish().unwrap();
        readers.push(reader);
    }
    for (i, mut reader) in readers.into_iter().enumerate() {
        let events = reader.rest(0).await;
        let (deltas, complete) = message_text(&events);
        assert_eq!(deltas, "you said: hi");
        assert_eq!(
            complete.unwrap().request_id.as_deref(),
            Some(format!("p{i}").as_str())
        );
    }
}

#[tokio::test]
async fn cancel_ends_the_reply_with_what_was_written() {
    let server = serve(Duration::from_millis(40), |_| {}).await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;
    let long = "one two three four five six seven eight nine ten eleven twelve";
    let (mut send, mut reader) = request(&conn, "alice-token", &send_message("r1", long)).await;

    // Read until two deltas have arrived, then cancel.
    let mut events = Vec::new();
    let mut deltas = 0;
    while deltas < 2 {
        let (_, event) = reader.next_event().await.expect("the reply streams");
        deltas += usize::from(matches!(event, ServerEvent::MessageDelta(_)));
        events.push(event);
    }
    let cancel = ClientEvent::Cancel(Cancel {
        request_id: "r1".to_owned(),
    });
    send.write_all(&client_frame(&cancel, 2)).await.unwrap();
    let sequence = u32::try_from(events.len()).unwrap();
    events.extend(reader.rest(sequence).await);
    let (written, complete) = message_text(&events);
    let complete = complete.expect("a cancelled message_complete");
    assert_eq!(complete.finish_reason, FinishReason::Cancelled);
    assert_eq!(complete.message.content, written);
    assert_ne!(
        written,
        format!("you said: {long}"),
        "the reply stopped early"
    );
    assert_eq!(kinds(&events).last(), Some(&"typing_stop"));
    assert_eq!(server.cancelled.load(SeqCst), 1);

    // Resetting the stream abandons the request: the reply is cancelled too.
    let (mut send, mut reader) = request(&conn, "alice-token", &send_message("r2", long)).await;
    let _ = reader.next_event().await;
    send.reset(quinn::VarInt::from_u32(0)).unwrap();
    let _ = reader.rest(1).await;
    assert_eq!(server.cancelled.load(SeqCst), 2);
}

#[tokio::test]
async fn a_refused_token_fails_only_its_stream() {
    let server = serve(Duration::from_millis(1), |_| {}).await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;

    for (token, code) in [
        ("expired-token", ErrorCode::Unauthorized),
        ("banned-token", ErrorCode::Forbidden),
    ] {
        let (send, mut reader) = request(&conn, token, &send_message("r1", "hi")).await;
        let error = error_of(&reader.rest(0).await);
        assert_eq!(error.code, code, "{error:?}");
        assert!(!error.retryable);
        let stopped = send.stopped().await.expect("the server stops reading");
        assert_eq!(stopped, Some(AppCode::UNAUTHORIZED.varint()));
    }

    // A stream whose first frame is not `auth` is unauthorized as well.
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&client_frame(&send_message("r1", "hi"), 0))
        .await
        .unwrap();
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::Unauthorized);
    assert!(error.message.contains("auth"), "{error:?}");

    // The connection is fine: the next stream with a good token is answered.
    let (_send, mut reader) = request(&conn, "alice-token", &send_message("r2", "hi")).await;
    let (deltas, _) = message_text(&reader.rest(0).await);
    assert_eq!(deltas, "you said: hi");
}

#[tokio::test]
async fn broken_frames_fail_their_stream_and_the_connection_survives() {
    let server = serve(Duration::from_millis(1), |_| {}).await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;

    // Not a frame at all.
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert!(error.message.contains("magic"), "{error:?}");
    assert_eq!(
        send.stopped().await.unwrap(),
        Some(AppCode::BAD_REQUEST.varint())
    );

    // A frame declaring a 16 MiB payload, followed by the start of it: refused from the
    // header, before any payload is buffered.
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&auth_frame("alice-token")).await.unwrap();
    let mut header = client_frame(&send_message("r1", "hi"), 1)[..FRAME_HEADER_LEN].to_vec();
    header[18..22].copy_from_slice(&(16u32 << 20).to_be_bytes());
    send.write_all(&header).await.unwrap();
    let _ = send.write_all(&[b'x'; 64 * 1024]).await;
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::PayloadTooLarge);
    assert_eq!(
        send.stopped().await.unwrap(),
        Some(AppCode::PAYLOAD_TOO_LARGE.varint())
    );

    // A valid frame holding invalid JSON before the request.
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&auth_frame("alice-token")).await.unwrap();
    send.write_all(&event_frame("{\"type\":", 1)).await.unwrap();
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::BadRequest);

    // Ending the stream before the request.
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&auth_frame("alice-token")).await.unwrap();
    send.finish().unwrap();
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::BadRequest);

    // None of that hurt the connection.
    let (_send, mut reader) = request(&conn, "alice-token", &send_message("r9", "ok")).await;
    let (deltas, _) = message_text(&reader.rest(0).await);
    assert_eq!(deltas, "you said: ok");
    assert!(conn.close_reason().is_none());
}

#[tokio::test]
async fn a_stream_that_never_sends_its_request_times_out() {
    let server = serve(Duration::from_millis(1), |quic| {
        quic.request_start_timeout_secs = 1;
    })
    .await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&auth_frame("alice-token")).await.unwrap();
    let error = error_of(&Reader::new(recv).rest(0).await);
    assert_eq!(error.code, ErrorCode::Timeout);
    assert!(error.retryable);
    assert_eq!(
        send.stopped().await.unwrap(),
        Some(AppCode::TIMEOUT.varint())
    );
}

#[tokio::test]
async fn a_connection_that_opens_no_stream_is_closed_at_the_auth_deadline() {
    // Keep-alives every second would hold a silent connection open forever.
    let server = serve(Duration::from_millis(1), |quic| {
        quic.auth_timeout_secs = 1;
        quic.keep_alive_secs = 1;
        quic.idle_timeout_secs = 3;
    })
    .await;
    let started = std::time::Instant::now();
    let idle = connect(server.endpoint.local_addr(), server.hash).await;
    // A connection whose streams never authenticate is no better.
    let refused = connect(server.endpoint.local_addr(), server.hash).await;
    let (_send, mut reader) = request(&refused, "nobody", &send_message("r1", "hi")).await;
    let error = error_of(&reader.rest(0).await);
    assert_eq!(error.code, ErrorCode::Unauthorized);
    // One that starts a request in time stays past the deadline.
    let working = connect(server.endpoint.local_addr(), server.hash).await;
    let (_send, mut reader) = request(&working, "alice-token", &send_message("r2", "hi")).await;
    assert!(reader.rest(0).await.len() > 1);

    for conn in [&idle, &refused] {
        let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("closed within 5 s, keep-alives notwithstanding");
        match reason {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, AppCode::TIMEOUT.varint());
            }
            other => panic!("closed by {other:?}"),
        }
    }
    let after = started.elapsed();
    assert!(
        after < Duration::from_millis(2500),
        "closed after {after:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        working.close_reason().is_none(),
        "an authenticated connection stays"
    );
}

#[tokio::test]
async fn connections_past_the_per_ip_cap_are_refused_during_the_handshake() {
    let server = serve(Duration::from_millis(1), |quic| {
        quic.max_connections_per_ip = 2;
    })
    .await;
    let addr = server.endpoint.local_addr();
    let first = connect(addr, server.hash).await;
    let _second = connect(addr, server.hash).await;
    let (endpoint, config) = client(server.hash, protocol::QUIC_ALPN);
    let third = endpoint
        .connect_with(config.clone(), addr, "localhost")
        .unwrap()
        .await;
    assert!(
        matches!(third, Err(quinn::ConnectionError::ConnectionClosed(_))),
        "refused: {third:?}"
    );
    first.close(0u32.into(), b"bye");
    let mut admitted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let attempt = endpoint
            .connect_with(config.clone(), addr, "localhost")
            .unwrap();
        if attempt.await.is_ok() {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a closed connection frees its slot");
}

#[tokio::test]
async fn streams_beyond_the_limit_wait_for_a_free_one() {
    let server = serve(Duration::from_millis(200), |quic| {
        quic.max_streams_per_connection = 2;
    })
    .await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;
    let long = "a b c d e f g h i j k l m n o p q r s t u v w x y z";
    let (mut first, mut first_reader) =
        request(&conn, "alice-token", &send_message("r1", long)).await;
    let (_second, mut second_reader) =
        request(&conn, "alice-token", &send_message("r2", long)).await;
    // Both are running once they stream.
    let _ = first_reader.next_event().await;
    let _ = second_reader.next_event().await;

    // The third cannot open while two are live (QUIC stream credit, not a timer: this wait
    // can only end early if the server grants a third stream).
    let third = tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await;
    assert!(third.is_err(), "a third stream opened past the limit");

    // Cancel the first; once it has ended, the third stream opens and is served.
    let cancel = ClientEvent::Cancel(Cancel {
        request_id: "r1".to_owned(),
    });
    first.write_all(&client_frame(&cancel, 2)).await.unwrap();
    first.finish().unwrap();
    let _ = first_reader.rest(1).await;
    let third = tokio::time::timeout(
        Duration::from_secs(10),
        request(&conn, "alice-token", &send_message("r3", "x")),
    )
    .await
    .expect("a stream frees up");
    let (_send, mut reader) = third;
    let (deltas, _) = message_text(&reader.rest(0).await);
    assert_eq!(deltas, "you said: x");
}

#[tokio::test]
async fn draining_says_goodbye_finishes_live_replies_and_refuses_new_ones() {
    let server = serve(Duration::from_millis(50), |_| {}).await;
    let conn = connect(server.endpoint.local_addr(), server.hash).await;
    let mut control = Reader::new(conn.accept_uni().await.unwrap());
    let _hello = control.next_event().await.unwrap();

    // Long enough (30 words, 50 ms each) to still run while the test opens another stream.
    let words = vec!["w"; 30].join(" ");
    let (_send, mut live) = request(&conn, "alice-token", &send_message("r1", &words)).await;
    let _ = live.next_event().await.expect("the reply has started");

    let endpoint = server.endpoint.clone();
    let drain = tokio::spawn(async move { endpoint.drain(Duration::from_secs(10)).await });

    let (sequence, goodbye) = control.next_event().await.expect("goodbye");
    assert_eq!(sequence, 1);
    let ServerEvent::Goodbye(goodbye) = goodbye else {
        panic!("expected goodbye, got {goodbye:?}");
    };
    assert!(goodbye.deadline_ms > 0 && goodbye.deadline_ms <= 10_000);

    // A new request on the draining connection is refused; the live one completes.
    let (_send, mut refused) = request(&conn, "alice-token", &send_message("r2", "hi")).await;
    let error = error_of(&refused.rest(0).await);
    assert_eq!(error.code, ErrorCode::ServerDraining);
    assert!(error.retryable);
    let (_, complete) = message_text(&live.rest(1).await);
    assert_eq!(complete.unwrap().finish_reason, FinishReason::Stop);

    // With nothing live the connection closes well before the deadline.
    let open = tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .expect("the drain ends once the last reply is done")
        .unwrap();
    assert_eq!(open, 1);
    let closed = conn.closed().await;
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == AppCode::NO_ERROR.varint()),
        "{closed:?}"
    );
    // New connections are refused.
    let (endpoint, config) = client(server.hash, protocol::QUIC_ALPN);
    let again = endpoint
        .connect_with(config, server.endpoint.local_addr(), "localhost")
        .unwrap()
        .await;
    assert!(again.is_err(), "a drained endpoint accepted a connection");
}

#[tokio::test]
async fn webtransport_sessions_are_served_at_their_path_only() {
    let server = serve(Duration::from_millis(1), |_| {}).await;
    let body: serde_json::Value =
        reqwest::get(format!("{}/v1/webtransport/cert-hash", server.http))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let url = body["url"].as_str().expect("a WebTransport URL");
    let port = server.endpoint.local_addr().port();
    assert_eq!(url, format!("https://127.0.0.1:{port}/v1/chat/wt"));
    assert_eq!(body["algorithm"], "sha-256");
    assert_eq!(body["selfSigned"], true);
    assert!(body["notAfter"].as_u64().is_some());

    let (endpoint, config) = client(server.hash, b"h3");
    let wt = web_transport_quinn::Client::new(endpoint, config);
    let session = wt
        .connect(url::Url::parse(url).unwrap())
        .await
        .expect("a WebTransport session");
    // The control stream stays open (for `goodbye`): read just its first frame.
    let mut control = session.accept_uni().await.expect("the control stream");
    let mut decoder = protocol::FrameDecoder::new();
    let hello = loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            break frame;
        }
        let chunk = control
            .read_chunk(4096, true)
            .await
            .unwrap()
            .expect("hello");
        decoder.push_bytes(chunk.bytes);
    };
    assert!(matches!(
        ServerEvent::from_frame(&hello),
        Ok(ServerEvent::Hello(_))
    ));

    let (mut send, mut recv) = session.open_bi().await.unwrap();
    send.write_all(&auth_frame("alice-token")).await.unwrap();
    send.write_all(&client_frame(&send_message("w1", "over h3"), 1))
        .await
        .unwrap();
    send.finish().unwrap();
    let bytes = recv.read_to_end(1 << 20).await.expect("the reply");
    let mut decoder = protocol::FrameDecoder::new();
    decoder.push(&bytes);
    let mut events = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        events.push(ServerEvent::from_frame(&frame).unwrap());
    }
    let (deltas, _) = message_text(&events);
    assert_eq!(deltas, "you said: over h3");

    // Another path is not found.
    let (endpoint, config) = client(server.hash, b"h3");
    let wt = web_transport_quinn::Client::new(endpoint, config);
    let wrong = format!("https://127.0.0.1:{port}/elsewhere");
    let refused = wt.connect(url::Url::parse(&wrong).unwrap()).await.err();
    assert_eq!(refused_status(&refused), Some(404), "{refused:?}");
}

/// Opens a WebTransport session at `url` as a page of `origin` would (`None`: a native client).
async fn webtransport(
    server: &Server,
    url: &url::Url,
    origin: Option<&str>,
) -> Result<web_transport_quinn::Session, web_transport_quinn::ClientError> {
    let (endpoint, config) = client(server.hash, b"h3");
    let mut request = web_transport_quinn::proto::ConnectRequest::new(url.clone());
    if let Some(origin) = origin {
        request = request.with_header(
            web_transport_quinn::http::header::ORIGIN,
            origin.parse().unwrap(),
        );
    }
    web_transport_quinn::Client::new(endpoint, config)
        .connect(request)
        .await
}

/// The HTTP status a refused WebTransport CONNECT was answered with.
fn refused_status(error: &Option<web_transport_quinn::ClientError>) -> Option<u16> {
    use web_transport_quinn::{ClientError, ConnectError, proto};
    match error {
        Some(ClientError::HttpError(ConnectError::ProtoError(
            proto::ConnectError::WrongStatus(Some(status)),
        ))) => Some(status.as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn webtransport_refuses_a_page_of_another_site_with_403() {
    let server = serve_with(Duration::from_millis(1), |config| {
        config.chat.allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let port = server.endpoint.local_addr().port();
    let url = url::Url::parse(&format!("https://127.0.0.1:{port}/v1/chat/wt")).unwrap();

    for origin in ["https://evil.example", "null"] {
        let refused = webtransport(&server, &url, Some(origin)).await.err();
        assert_eq!(refused_status(&refused), Some(403), "{origin}: {refused:?}");
    }

    // Listed, same-host (another port) and localhost pages, and native clients, are served.
    for origin in [
        Some("https://app.example.com"),
        Some("https://127.0.0.1:8443"),
        Some("http://localhost:5173"),
        None,
    ] {
        let session = webtransport(&server, &url, origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?}: {e}"));
        let mut control = session.accept_uni().await.expect("the control stream");
        let chunk = control.read_chunk(4096, true).await.unwrap();
        assert!(chunk.is_some(), "{origin:?}: hello arrives");
    }
}

#[tokio::test]
async fn readiness_reports_the_endpoint_until_it_drains_or_closes() {
    let server = serve(Duration::from_millis(1), |_| {}).await;
    let gateway_ready = |ready: Vec<(&'static str, Result<(), String>)>| {
        ready
            .into_iter()
            .find(|(name, _)| *name == "quic")
            .map(|(_, result)| result)
    };
    let ready = gateway_ready(server.gateway.readiness().await);
    assert_eq!(ready, Some(Ok(())));

    server.endpoint.drain(Duration::from_secs(1)).await;
    let ready = gateway_ready(server.gateway.readiness().await);
    assert!(
        matches!(&ready, Some(Err(why)) if why.contains("QUIC")),
        "{ready:?}"
    );

    // An endpoint that was dropped (closed without a drain) fails too.
    let other = serve(Duration::from_millis(1), |_| {}).await;
    drop(other.endpoint);
    let ready = gateway_ready(other.gateway.readiness().await);
    assert!(
        matches!(&ready, Some(Err(why)) if why.contains("closed")),
        "{ready:?}"
    );

    // A gateway that never started QUIC has no entry.
    let plain = Gateway::new(Config::default());
    assert_eq!(gateway_ready(plain.readiness().await), None);
}

#[tokio::test]
async fn the_cert_hash_route_says_when_quic_is_off() {
    let gateway = Gateway::new(Config::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::get(format!("{http}/v1/webtransport/cert-hash"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quic_disabled");
}
