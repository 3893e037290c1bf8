//! Redis faults: a Redis that stalls, dies and comes back. Requests keep answering within the
//! limiter's deadline, sign-in limits still apply (per node), readiness says Redis is degraded
//! but stays ready, and shared limits come back with Redis.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Server, Storage};
use control_plane::{CheckStatus, Config, RateLimitRule};
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::redis::OwnRedis;

fn rule(name: &str, prefix: &str, limit: u64) -> RateLimitRule {
    RateLimitRule {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        limit,
        window_secs: 900,
    }
}

/// Sends `method path`, asserting it is answered within `bound`; returns status and the
/// `RateLimit` header.
async fn timed(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
    bound: Duration,
) -> (StatusCode, Option<String>) {
    let started = Instant::now();
    let resp = tokio::time::timeout(bound * 4, server.send(method, path, token, body))
        .await
        .unwrap_or_else(|_| panic!("{path} hung"));
    let took = started.elapsed();
    assert!(took < bound, "{path} took {took:?}");
    let state = resp
        .headers()
        .get("ratelimit")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status(), state)
}

async fn guess(server: &Server) -> (StatusCode, Option<String>) {
    let body = json!({"email": "guess@example.com", "password": "guess number n"});
    let bound = Duration::from_millis(1_500);
    timed(
        server,
        Method::POST,
        "/api/auth/login",
        None,
        Some(body),
        bound,
    )
    .await
}

fn redis_status(checks: &[(&'static str, CheckStatus)]) -> CheckStatus {
    checks
        .iter()
        .find(|(n, _)| *n == "redis")
        .map(|(_, s)| s.clone())
        .expect("a redis check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_neither_hangs_requests_nor_lifts_sign_in_limits() {
    let mut redis = OwnRedis::start();
    let storage = Storage::fresh(Backend::Sqlite).await;
    let config = Config {
        redis_url: redis.url(),
        redis_key_prefix: "faults:".to_owned(),
        redis_reconnect_max_delay_ms: 200,
        rate_limits: vec![
            rule("auth", "/api/auth", 5),
            rule("usage", "/api/usage", 1_000),
        ],
        tier_api_limits: false,
        login_email_limit: 0,
        ..storage.config()
    };
    let server = Server::with_config(config).await;
    let token = server.cp.dev_token("reader@example.com").await.unwrap();
    let bound = Duration::from_millis(1_500);
    let usage = || {
        timed(
            &server,
            Method::GET,
            "/api/usage",
            Some(&token),
            None,
            bound,
        )
    };

    // Healthy: shared counts.
    let (status, state) = usage().await;
    assert_eq!(status, StatusCode::OK);
    assert!(state.unwrap().starts_with("\"usage\";r=999"));
    assert_eq!(guess(&server).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(redis_status(&server.cp.health().await), CheckStatus::Ok);

    // Redis stalls (the connection stays open, nothing answers): the deadline answers for it.
    redis.signal("-STOP");
    let (status, state) = usage().await;
    assert_eq!(status, StatusCode::OK, "fail-open rule admits");
    assert_eq!(state, None, "no count to report");
    let (status, state) = guess(&server).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        state.unwrap().starts_with("\"auth\";r=4"),
        "counted per node"
    );
    redis.signal("-CONT");

    // Redis dies mid-run.
    redis.kill();
    for _ in 0..10 {
        assert_eq!(usage().await.0, StatusCode::OK);
    }
    // The per-node fallback has counted one guess already; four more, then refused.
    for i in 0..4 {
        assert_eq!(
            guess(&server).await.0,
            StatusCode::UNAUTHORIZED,
            "guess {i}"
        );
    }
    assert_eq!(guess(&server).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(guess(&server).await.0, StatusCode::TOO_MANY_REQUESTS);

    // Degraded, not failing: the node stays in the load balancer.
    let started = Instant::now();
    let checks = server.cp.health().await;
    assert!(
        started.elapsed() < bound,
        "readiness took {:?}",
        started.elapsed()
    );
    let CheckStatus::Degraded(reason) = redis_status(&checks) else {
        panic!("{checks:?}");
    };
    assert!(reason.contains("auth"), "{reason}");
    assert!(
        server.cp.readiness().await.iter().all(|(_, r)| r.is_ok()),
        "{checks:?}"
    );
    let counts = server.cp.rate_limit_fallbacks();
    assert!(counts.fallback_checks >= 7, "{counts:?}");
    assert!(counts.failed_open >= 11, "{counts:?}");

    // Redis comes back on the same port (empty): the client reconnects by itself and counts
    // are shared again.
    redis.restart();
    let started = Instant::now();
    while redis_status(&server.cp.health().await) != CheckStatus::Ok {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the limiter never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, state) = usage().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        state.unwrap().starts_with("\"usage\";r=999"),
        "a fresh Redis count"
    );
    let (status, state) = guess(&server).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "Redis, not the fallback, decides"
    );
    assert!(state.unwrap().starts_with("\"auth\";r=4"));
}
