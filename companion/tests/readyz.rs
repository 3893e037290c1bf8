//! `/readyz` and `/metrics` of a control-plane node: a Redis outage is reported as degraded and
//! keeps the node ready; probes are shared by everyone who asks within a second; only local
//! callers and the ops token see why a check is not `ok`; `/metrics` can move to a listener of
//! its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use companion::{Config, Mode};
use serde_json::Value;
use test_support::{process::in_process, redis::OwnRedis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A control-plane-only node on `listen` with a fresh SQLite file.
fn node_config(listen: SocketAddr) -> Config {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let db = std::env::temp_dir().join(format!(
        "companion-readyz-{}-{n}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&db);
    let mut config = Config::default();
    config.server.mode = Mode::ControlPlane;
    config.server.listen = listen;
    config.server.shutdown_grace_secs = 1;
    config.control_plane.database_url = format!("sqlite://{}?mode=rwc", db.display());
    config.control_plane.argon2.memory_kib = 256;
    config.control_plane.argon2.iterations = 1;
    config
}

/// Runs a node; it stops when the returned sender is dropped.
async fn serve(config: Config) -> (String, oneshot::Sender<()>) {
    in_process(|on_url, shutdown| companion::run(config, on_url, shutdown)).await
}

async fn readyz(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_reports_degraded_and_keeps_the_node_in_the_load_balancer() {
    let mut redis = OwnRedis::start();
    let mut config = node_config("127.0.0.1:0".parse().unwrap());
    config.control_plane.redis_url = redis.url();
    config.control_plane.redis_reconnect_max_delay_ms = 200;
    let (url, _stop) = serve(config).await;
    let client = reqwest::Client::new();

    let (status, body) = readyz(&client, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "ok", "{body}");

    redis.kill();
    // Past the probe cache, the outage shows; the node stays ready.
    let started = Instant::now();
    let body = loop {
        let (status, body) = readyz(&client, &url).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ready", "{body}");
        if body["checks"]["redis"]["status"] == "degraded" {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = body["checks"]["redis"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("state"),
        "a local caller sees the state: {body}"
    );

    redis.restart();
    let started = Instant::now();
    loop {
        let (status, body) = readyz(&client, &url).await;
        assert_eq!(status, 200, "{body}");
        if body["checks"]["redis"]["status"] == "ok" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP server that counts the connections it gets and answers each with 200.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/models", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_checks_probes_dependencies_once_a_second() {
    let (llm, hits) = counting_server().await;
    let mut config = node_config("127.0.0.1:0".parse().unwrap());
    config.control_plane.llm_url = llm;
    let (url, _stop) = serve(config).await;
    let client = reqwest::Client::new();

    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        flood.spawn(async move { readyz(&client, &url).await });
    }
    while let Some(answer) = flood.join_next().await {
        let (status, body) = answer.expect("readyz task");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["llm_provider"]["status"], "ok", "{body}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fifty callers, one probe");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    readyz(&client, &url).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a second later, a fresh probe"
    );
}

/// This machine's address on its default route, if it has one that is not loopback.
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it only picks the route and so the local address.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_caller_sees_each_status_but_not_the_reasons() {
    // Without one, every caller is local and the test would prove nothing.
    let ip = non_loopback_ip().expect("a non-loopback address to call from");
    let mut config = node_config(SocketAddr::new(ip, 0));
    // Billing switched on without a key: a failing check whose reason names the key.
    config.control_plane.stripe.disabled = false;
    config.server.ops_token = protocol::Secret::new("an-operator-token-of-some-length");
    let (url, _stop) = serve(config).await;
    let client = reqwest::Client::new();

    let (status, body) = readyz(&client, &url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["stripe"]["status"], "failing", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    assert!(body["checks"]["stripe"].get("reason").is_none(), "{body}");
    assert!(!body.to_string().contains("secret_key"), "{body}");

    for token in ["wrong", ""] {
        let resp = client
            .get(format!("{url}/readyz"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert!(body["checks"]["stripe"].get("reason").is_none(), "{body}");
    }

    let resp = client
        .get(format!("{url}/readyz"))
        .bearer_auth("an-operator-token-of-some-length")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    let reason = body["checks"]["stripe"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("secret_key"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_a_listener_of_their_own() {
    // Default: on the main listener.
    let (url, _stop) = serve(node_config("127.0.0.1:0".parse().unwrap())).await;
    let resp = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("control_plane_rate_limit_store_failures_total 0"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");

    let metrics: SocketAddr = ("127.0.0.1".parse::<IpAddr>().unwrap(), free_port()).into();
    let mut config = node_config("127.0.0.1:0".parse().unwrap());
    config.server.metrics_listen = Some(metrics);
    let (url, _stop) = serve(config).await;
    let resp = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 404, "no longer on the public listener");
    let resp = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("control_plane_rate_limit_failed_open_total"),
        "{text}"
    );
    // Health stays where load balancers look for it.
    let (status, _) = readyz(&reqwest::Client::new(), &url).await;
    assert_eq!(status, 200);
}
