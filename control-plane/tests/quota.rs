//! Daily quotas: a gateway reserves voice minutes a chunk at a time and the call is cut when the
//! grant runs short; retries are idempotent; messages and custom avatars follow the tier.

mod common;

use common::{Backend, Server, error_code};
use control_plane::tier::Tier;
use reqwest::StatusCode;
use serde_json::json;
use test_support::both_engines;

async fn a_free_voice_call_is_cut_when_its_five_minutes_run_out(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("caller@example.com").await;
    let reserve = |key: String| {
        let token = token.clone();
        let server = &server;
        async move {
            let (status, body) = server
                .post_as_gateway(
                    "/api/quota/reserve",
                    &token,
                    json!({"reservations": [{"key": key, "kind": "voice_seconds", "amount": 120}]}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["results"][0].clone()
        }
    };
    // Two-minute chunks: 120 + 120, then only 60 of the next 120 seconds remain.
    let first = reserve("call-1-chunk-1".to_owned()).await;
    assert_eq!(first["granted"], 120);
    assert_eq!(first["remaining"], 180);
    let second = reserve("call-1-chunk-2".to_owned()).await;
    assert_eq!(second["granted"], 120);
    let third = reserve("call-1-chunk-3".to_owned()).await;
    assert_eq!(third["granted"], 60, "{third}");
    assert_eq!(third["remaining"], 0);
    assert_eq!(reserve("call-1-chunk-4".to_owned()).await["granted"], 0);

    // A retried reservation is answered, not granted twice.
    assert_eq!(reserve("call-1-chunk-2".to_owned()).await["granted"], 120);
    // Reusing a key for something else is a conflict.
    let (status, body) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "call-1-chunk-2", "kind": "messages", "amount": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "conflict");

    // The second chunk was only half used: settling returns the rest to the day's quota.
    let settle = json!({"settlements": [
        {"key": "call-1-chunk-1", "used": 120},
        {"key": "call-1-chunk-2", "used": 30},
        {"key": "no-such-key", "used": 5}]});
    let (status, body) = server
        .post_as_gateway("/api/quota/settle", &token, settle.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "settled");
    assert_eq!(body["results"][1]["used"], 30);
    assert_eq!(body["results"][2]["status"], "unknown_key");
    let (_, again) = server
        .post_as_gateway("/api/quota/settle", &token, settle)
        .await;
    assert_eq!(again["results"][1]["status"], "already_settled");
    assert_eq!(again["results"][1]["used"], 30);

    let (_, usage) = server.get("/api/usage", &token).await;
    let voice = &usage["quotas"][1];
    assert_eq!(voice["kind"], "voice_seconds");
    assert_eq!(voice["used"], 150);
    // Chunk 3 is still open (60 s); chunk 4 was granted nothing.
    assert_eq!(voice["reserved"], 60);
    assert_eq!(voice["limit"], 300);
    // 90 seconds came back.
    assert_eq!(reserve("call-2-chunk-1".to_owned()).await["granted"], 90);
}
both_engines!(
    voice_minutes,
    a_free_voice_call_is_cut_when_its_five_minutes_run_out
);

async fn the_fifty_first_message_of_the_day_is_refused_and_not_stored(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("chatty@example.com").await;
    let (_, conv) = server
        .post("/api/conversations", Some(&token), json!({}))
        .await;
    let path = format!(
        "/api/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    for i in 0..50 {
        let (status, body) = server
            .post(&path, Some(&token), json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {body}");
    }
    let resp = server
        .send(
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some(json!({"content": "one more"})),
        )
        .await;
    assert!(resp.headers().get("retry-after").is_some());
    let (status, body) = common::read(resp).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "quota_exceeded");
    let (_, page) = server.get(&format!("{path}?limit=200"), &token).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);

    // Upgrading lifts the limit at once.
    let me = server.get("/api/me", &token).await.1;
    assert!(
        server
            .cp
            .set_tier(me["id"].as_str().unwrap(), Tier::Plus)
            .await
            .unwrap()
    );
    let (status, _) = server
        .post(&path, Some(&token), json!({"content": "now on plus"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
both_engines!(
    messages,
    the_fifty_first_message_of_the_day_is_refused_and_not_stored
);

async fn custom_avatars_and_gaming_follow_the_tier(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("artist@example.com").await;
    let custom =
        json!({"name": "Pix", "avatar": "https://cdn.example.com/a.png", "custom_avatar": true});
    let (status, body) = server
        .post("/api/companions", Some(&token), custom.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "custom_avatar_limit");
    assert_eq!(
        server.get("/api/companions", &token).await.1["companions"],
        json!([])
    );
    let (_, games) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "g1", "kind": "game_seconds", "amount": 600}]}),
        )
        .await;
    assert_eq!(games["results"][0]["granted"], 0);

    let id = server.get("/api/me", &token).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.cp.set_tier(&id, Tier::Plus).await.unwrap();
    for i in 0..5 {
        let (status, body) = server
            .post("/api/companions", Some(&token), custom.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {body}");
    }
    assert_eq!(
        server
            .post("/api/companions", Some(&token), custom.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, games) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "g2", "kind": "game_seconds", "amount": 600}]}),
        )
        .await;
    assert_eq!(games["results"][0]["granted"], 600);

    server.cp.set_tier(&id, Tier::Pro).await.unwrap();
    let (status, _) = server.post("/api/companions", Some(&token), custom).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, big) = server
        .post_as_gateway(
            "/api/quota/reserve",
            &token,
            json!({"reservations": [{"key": "v1", "kind": "voice_seconds", "amount": 1_000_000}]}),
        )
        .await;
    assert_eq!(big["results"][0]["granted"], 1_000_000);
    assert_eq!(big["results"][0]["remaining"], serde_json::Value::Null);
}
both_engines!(tiers, custom_avatars_and_gaming_follow_the_tier);
