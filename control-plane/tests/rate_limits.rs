//! Rate limits: per address before sign-in, per account after; `RateLimit` headers on every
//! limited answer, `Retry-After` and a JSON error on 429; and two nodes sharing Redis admit
//! exactly the limit between them.

#[macro_use]
mod common;

use common::{Backend, Server, Storage, error_code};
use control_plane::{Config, RateLimitRule};
use reqwest::{Method, StatusCode};
use serde_json::json;

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
