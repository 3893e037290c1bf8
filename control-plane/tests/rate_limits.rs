//! Rate limits: per address before sign-in, per account after; `RateLimit` headers on every
//! limited answer, `Retry-After` and a JSON error on 429; and two nodes sharing Redis admit
//! exactly the limit between them.

mod common;

use common::{Backend, Server, Storage, error_code};
use control_plane::{Config, RateLimitRule};
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::both_engines;

fn rule(name: &str, prefix: &str, limit: u64, window_secs: u64) -> RateLimitRule {
    RateLimitRule {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        limit,
        window_secs,
    }
}

fn with_rules(storage: &Storage, rules: Vec<RateLimitRule>) -> Config {
    Config {
        rate_limits: rules,
        ..storage.config()
    }
}

async fn sign_in_attempts_are_limited_to_ten_per_quarter_hour(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let server = Server::with_config(with_rules(&storage, Config::default().rate_limits)).await;
    let attempt = json!({"email": "guess@example.com", "password": "guess number n"});
    for i in 0..10 {
        let resp = server
            .send(Method::POST, "/api/auth/login", None, Some(attempt.clone()))
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(resp.headers()["ratelimit-policy"], "\"auth\";q=10;w=900");
        let state = resp.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            state.starts_with(&format!("\"auth\";r={};t=", 9 - i)),
            "{state}"
        );
    }
    let resp = server
        .send(Method::POST, "/api/auth/login", None, Some(attempt))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let (_, body) = common::read(resp).await;
    assert_eq!(error_code(&body), "rate_limited");
    // Routes without a rule are not limited.
    let (status, _) = common::read(
        server
            .send(Method::GET, "/.well-known/jwks.json", None, None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
both_engines!(
    auth_limit,
    sign_in_attempts_are_limited_to_ten_per_quarter_hour
);

async fn signed_in_users_each_have_their_own_budget(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let server = Server::with_config(with_rules(
        &storage,
        vec![rule("usage", "/api/usage", 3, 3600)],
    ))
    .await;
    let a = server.cp.dev_token("a@example.com").await.unwrap();
    let b = server.cp.dev_token("b@example.com").await.unwrap();
    let first = server.send(Method::GET, "/api/usage", Some(&a), None).await;
    assert_eq!(first.status(), StatusCode::OK);
    // The endpoint's rule and the free tier's hourly API allowance both apply.
    assert_eq!(
        first.headers()["ratelimit-policy"],
        "\"usage\";q=3;w=3600, \"api\";q=1000;w=3600"
    );
    assert!(
        first.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"usage\";r=2;t=")
    );
    for _ in 0..2 {
        assert_eq!(server.get("/api/usage", &a).await.0, StatusCode::OK);
    }
    assert_eq!(
        server.get("/api/usage", &a).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(server.get("/api/usage", &b).await.0, StatusCode::OK);
}
both_engines!(per_user, signed_in_users_each_have_their_own_budget);

/// SQLite: one node, limits in process. PostgreSQL: two nodes sharing the database and Redis.
async fn two_hundred_parallel_requests_admit_exactly_one_hundred(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let config = with_rules(&storage, vec![rule("chat", "/api/usage", 100, 3600)]);
    let mut nodes = vec![Server::with_config(config.clone()).await];
    if backend == Backend::Postgres {
        nodes.push(Server::with_config(config).await);
    }
    let token = nodes[0].cp.dev_token("burst@example.com").await.unwrap();
    let mut requests = Vec::new();
    for i in 0..200 {
        let node = &nodes[i % nodes.len()];
        let req = node
            .http
            .get(format!("{}/api/usage", node.base))
            .bearer_auth(&token)
            .send();
        requests.push(req);
    }
    let results = futures_util::future::join_all(requests).await;
    let mut ok = 0;
    let mut limited = 0;
    for r in results {
        match r.unwrap().status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 100));
}
both_engines!(
    burst,
    two_hundred_parallel_requests_admit_exactly_one_hundred
);

/// One sign-in attempt that fails on the password, as a client behind a proxy at `xff`.
async fn guess(server: &Server, email: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = server
        .http
        .post(format!("{}/api/auth/login", server.base))
        .json(&json!({"email": email, "password": "guess number n"}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("request sent")
}

fn behind_proxy(storage: &Storage, rules: Vec<RateLimitRule>, proxies: &[&str]) -> Config {
    Config {
        trusted_proxies: proxies.iter().map(|p| (*p).to_owned()).collect(),
        ..with_rules(storage, rules)
    }
}

async fn behind_a_trusted_proxy_each_client_has_its_own_budget(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let rules = vec![rule("auth", "/api/auth", 2, 900)];
    let server = Server::with_config(behind_proxy(&storage, rules, &["127.0.0.0/8"])).await;
    for _ in 0..2 {
        let resp = guess(&server, "a@example.com", Some("198.51.100.1")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = guess(&server, "a@example.com", Some("198.51.100.1")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same load balancer is not locked out by the first.
    let resp = guess(&server, "a@example.com", Some("198.51.100.2")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
both_engines!(
    trusted_proxy,
    behind_a_trusted_proxy_each_client_has_its_own_budget
);

async fn a_spoofed_forwarded_for_does_not_reset_the_budget(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let rules = vec![rule("auth", "/api/auth", 2, 900)];
    // No trusted proxy: the header is never read.
    let direct = Server::with_config(behind_proxy(&storage, rules.clone(), &[])).await;
    for i in 0..2 {
        let resp = guess(&direct, "a@example.com", Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = guess(&direct, "a@example.com", Some("203.0.113.77")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Behind a trusted proxy, made-up hops left of the proxy's own entry are ignored.
    let storage = Storage::fresh(backend).await;
    let proxied = Server::with_config(behind_proxy(&storage, rules, &["127.0.0.1"])).await;
    for i in 0..2 {
        let xff = format!("203.0.113.{i}, 198.51.100.1");
        let resp = guess(&proxied, "a@example.com", Some(&xff)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = guess(&proxied, "a@example.com", Some("203.0.113.9, 198.51.100.1")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}
both_engines!(
    spoofed_xff,
    a_spoofed_forwarded_for_does_not_reset_the_budget
);

async fn rotating_addresses_within_one_ipv6_64_shares_one_budget(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let rules = vec![rule("auth", "/api/auth", 2, 900)];
    let server = Server::with_config(behind_proxy(&storage, rules, &["127.0.0.1"])).await;
    for i in 1..=2 {
        let xff = format!("2001:db8:1:2::{i}");
        let resp = guess(&server, "a@example.com", Some(&xff)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = guess(&server, "a@example.com", Some("2001:db8:1:2:ffff:ffff:1:3")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // The next /64 is another subscriber.
    let resp = guess(&server, "a@example.com", Some("2001:db8:1:3::1")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
both_engines!(
    ipv6_64,
    rotating_addresses_within_one_ipv6_64_shares_one_budget
);

async fn guessing_one_password_from_many_addresses_hits_the_per_email_limit(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let config = Config {
        login_email_limit: 5,
        ..behind_proxy(&storage, Config::default().rate_limits, &["127.0.0.1"])
    };
    let server = Server::with_config(config).await;
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let resp = guess(&server, "victim@example.com", Some(&xff)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // A sixth address gets no sixth guess at this account...
    let resp = guess(&server, "victim@example.com", Some("198.51.100.99")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = common::read(resp).await;
    assert_eq!(error_code(&body), "rate_limited");
    assert!(body.to_string().contains("login_email"), "{body}");
    // ...also written differently...
    let resp = guess(&server, "  Victim@Example.COM ", Some("198.51.100.98")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...while other accounts are unaffected.
    let resp = guess(&server, "other@example.com", Some("198.51.100.99")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
both_engines!(
    per_email,
    guessing_one_password_from_many_addresses_hits_the_per_email_limit
);

async fn refreshing_tokens_never_spends_the_sign_in_budget(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let server = Server::with_config(with_rules(&storage, Config::default().rate_limits)).await;
    // Sign-up spends one of the ten.
    let (_, mut refresh) = server.signup("busy@example.com").await;
    for i in 0..15 {
        let resp = server
            .send(
                Method::POST,
                "/api/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(resp.headers()["ratelimit-policy"], "\"refresh\";q=60;w=900");
        let (status, body) = common::read(resp).await;
        assert_eq!(status, StatusCode::OK, "refresh {i}: {body}");
        refresh = common::tokens(&body).1;
    }
    // Nine sign-ins are still left.
    for i in 0..9 {
        let (status, body) = server.login("busy@example.com").await;
        assert_eq!(status, StatusCode::OK, "sign-in {i}: {body}");
    }
    let (status, _) = server.login("busy@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
both_engines!(
    refresh_budget,
    refreshing_tokens_never_spends_the_sign_in_budget
);

#[tokio::test]
async fn a_malformed_trusted_proxy_stops_start_up_naming_the_key() {
    let config = Config {
        trusted_proxies: vec!["10.0.0.0/8".to_owned(), "10.0.0.0/40".to_owned()],
        ..Config::default()
    };
    let err = control_plane::ControlPlane::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("trusted_proxies"), "{err}");
}
