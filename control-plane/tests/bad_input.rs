//! Bad requests get a status and `{error:{code,message}}`, and leave nothing half-written.

mod common;

use common::{Backend, Server, error_code};
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::both_engines;

async fn raw(
    server: &Server,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req = server
        .http
        .post(format!("{}{path}", server.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    common::read(req.send().await.unwrap()).await
}

async fn malformed_requests_are_refused_with_a_json_error(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("tidy@example.com").await;
    let json_ct = "application/json";

    let (status, body) = raw(
        &server,
        "/api/auth/login",
        None,
        json_ct,
        b"{\"email\": ".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "malformed_json");

    let (status, body) = raw(
        &server,
        "/api/auth/login",
        None,
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&body), "unsupported_media_type");

    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": 42, "password": ["x"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_body");

    let (status, body) = server
        .post("/api/auth/login", None, json!({"email": "tidy@example.com", "password": "correct horse battery", "admin": true}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("admin"),
        "{body}"
    );

    let huge = json!({"content": "x".repeat(100_000)})
        .to_string()
        .into_bytes();
    let (_, conv) = server
        .post("/api/conversations", Some(&token), json!({}))
        .await;
    let path = format!(
        "/api/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    let (status, body) = raw(&server, &path, Some(&token), json_ct, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "body_too_large");

    let (status, body) = server
        .post(&path, Some(&token), json!({"content": ""}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_body");
    let (status, _) = server
        .post(
            &path,
            Some(&token),
            json!({"content": "hi", "role": "system"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = server.get(&format!("{path}?limit=0"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "bad_query");
    let (status, _) = server.get(&format!("{path}?cursor=abc"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "k", "kind": "gold_coins", "amount": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_body");
    let (status, _) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "k", "kind": "messages", "amount": -1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing above was written: no messages, no usage.
    let (_, page) = server.get(&path, &token).await;
    assert_eq!(page["messages"], json!([]));
    let (_, usage) = server.get("/api/usage", &token).await;
    assert_eq!(usage["quotas"][0]["used"], 0);
}
both_engines!(malformed, malformed_requests_are_refused_with_a_json_error);

async fn a_failed_batch_records_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("batch@example.com").await;
    server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "taken", "kind": "messages", "amount": 1}]}),
        )
        .await;
    // The second item conflicts with an existing key, so the first item's grant is rolled back.
    let (status, _) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [
            {"key": "fresh", "kind": "voice_seconds", "amount": 60},
            {"key": "taken", "kind": "voice_seconds", "amount": 60}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, usage) = server.get("/api/usage", &token).await;
    assert_eq!(usage["quotas"][1]["reserved"], 0, "{usage}");
    let (_, again) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "fresh", "kind": "voice_seconds", "amount": 60}]}),
        )
        .await;
    assert_eq!(again["results"][0]["granted"], 60);
    assert_eq!(again["results"][0]["remaining"], 240);

    // A sign-up refused for a duplicate address leaves no session or account behind.
    let dup = json!({"email": "batch@example.com", "password": "another password", "birth_year": 1990, "consent_terms": true});
    assert_eq!(
        server.post("/api/auth/signup", None, dup).await.0,
        StatusCode::CONFLICT
    );
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "batch@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = server
        .send(Method::GET, "/api/me", Some(&token), None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}
both_engines!(transactions, a_failed_batch_records_nothing);
