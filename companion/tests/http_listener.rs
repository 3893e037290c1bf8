//! The HTTP listener against abusive clients: a slowloris sending its request head byte by
//! byte is cut at `server.header_read_timeout_secs`, a stalled upload at
//! `server.idle_timeout_secs`, one address cannot hold more than
//! `server.max_connections_per_ip` connections (WebSockets included), and every response
//! carries the security headers. WebSocket upgrades and the peer address still work through
//! the listener's own accept loop.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use companion::{Config, Mode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};

fn scratch_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("companion-http-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A control-plane node (the smallest that serves HTTP) with `change` applied; stops when the
/// sender is dropped.
async fn start(change: impl FnOnce(&mut Config)) -> (SocketAddr, oneshot::Sender<()>) {
    let mut config = Config::default();
    config.server.mode = Mode::ControlPlane;
    // A free port chosen here: with an https `public_url` the printed URL is not the address.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    config.server.listen = addr;
    config.server.shutdown_grace_secs = 1;
    config.control_plane.database_url = format!(
        "sqlite://{}?mode=rwc",
        scratch_dir().join("cp.sqlite").display()
    );
    change(&mut config);
    let (url_tx, url_rx) = oneshot::channel::<String>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        companion::run(
            config,
            move |url| {
                let _ = url_tx.send(url.to_owned());
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .expect("companion::run");
    });
    tokio::time::timeout(Duration::from_secs(60), url_rx)
        .await
        .expect("started within 60 s")
        .expect("started");
    (addr, stop_tx)
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// One `GET /healthz` on an open connection; the status line.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("request written");
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_sending_headers_byte_by_byte_is_cut_at_the_deadline() {
    let (addr, _stop) = start(|c| c.server.header_read_timeout_secs = 1).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    });
    // An endless request head, one byte every 100 ms: never complete, never silent.
    let head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ";
    write.write_all(head).await.unwrap();
    let mut sent = 0;
    while !closed.is_finished() && started.elapsed() < Duration::from_secs(6) {
        if write.write_all(b"a").await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = tokio::time::timeout(Duration::from_secs(1), closed)
        .await
        .expect("the server closed the connection")
        .unwrap();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "closed after {after:?} ({sent} bytes trickled)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_closed_once_idle() {
    let (addr, _stop) = start(|c| c.server.idle_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // A complete head announcing a body that never comes.
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut stream))
        .await
        .expect("the server closed the idle connection within 5 s");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "closed after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_past_the_per_ip_cap_is_refused_at_once() {
    let (addr, _stop) = start(|c| {
        c.server.max_connections_per_ip = 3;
        c.server.max_connections_per_ip_exempt.clear();
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(healthz(&mut stream).await, "HTTP/1.1 200 OK");
        held.push(stream);
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), read_to_close(&mut fourth))
        .await
        .expect("the fourth connection is closed at once");
    assert!(answer.is_empty(), "refused without an answer");
    // The first three still work; closing one makes room.
    assert_eq!(healthz(&mut held[0]).await, "HTTP/1.1 200 OK");
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .is_ok()
        {
            let mut buf = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
                && n > 0
            {
                again = Some(String::from_utf8_lossy(&buf[..n]).to_string());
                break;
            }
        }
    }
    let again = again.expect("a connection is accepted once one closed");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_say_nosniff_and_hsts_only_when_served_over_https() {
    let (plain, _stop_plain) = start(|_| {}).await;
    let (behind_tls, _stop_tls) =
        start(|c| c.server.public_url = "https://companion.example/".to_owned()).await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/api/no-such-route", "/.well-known/jwks.json"] {
        let response = http
            .get(format!("http://{plain}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none(),
            "{path}: no HSTS over plain HTTP"
        );
        let response = http
            .get(format!("http://{behind_tls}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_upgrade_through_the_listener_and_count_against_the_per_ip_cap() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

    let (addr, _stop) = start(|c| {
        c.server.mode = Mode::All;
        c.gateway.dev_tokens = true;
        c.gateway.quic.enabled = false;
        c.server.max_connections_per_ip = 2;
        c.server.max_connections_per_ip_exempt.clear();
        c.media = media::RuntimePaths::from_env_or(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        );
    })
    .await;
    let connect = || async move {
        let mut request = format!("ws://{addr}/v1/chat/ws")
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", "companion.v1".parse().unwrap());
        headers.insert("authorization", "Bearer dev:walter".parse().unwrap());
        tokio_tungstenite::connect_async(request).await
    };
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = connect().await.expect("the upgrade succeeds");
        let hello = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("hello within 5 s")
            .expect("a message")
            .expect("not an error");
        match hello {
            Message::Text(text) => assert!(text.contains("\"hello\""), "{text}"),
            other => panic!("expected hello, got {other:?}"),
        }
        sockets.push(ws);
    }
    // Upgraded connections still hold their slots: a third from this address is refused.
    assert!(connect().await.is_err(), "the third connection is refused");
    drop(sockets.pop());
    let mut admitted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if connect().await.is_ok() {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a closed WebSocket frees its slot");
}
