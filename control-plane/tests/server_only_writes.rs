//! What only the server may write: a user holding their own access token cannot record a
//! turn's reply, refund a message, settle a reservation or write the companion's lines; and
//! writes racing each other on PostgreSQL (which has no write gate to hide them) take effect
//! once.

mod common;

use common::{Backend, Server, error_code};
use control_plane::tier::Tier;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::both_engines;

/// A conversation of `token`'s account.
async fn conversation(server: &Server, token: &str) -> String {
    let (status, conv) = server
        .post("/api/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    conv["id"].as_str().unwrap().to_owned()
}

/// Opens a turn as the gateway does and returns the path of its reply.
async fn open_turn(server: &Server, token: &str, conv: &str) -> String {
    let (status, turn) = server
        .post_as_gateway(
            "/api/chat/turns",
            token,
            json!({"conversation_id": conv, "content": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{turn}");
    format!(
        "/api/conversations/{conv}/turns/{}/reply",
        turn["turn_id"].as_str().unwrap()
    )
}

/// Today's `(used, reserved)` of one quota kind.
async fn usage(server: &Server, token: &str, kind: &str) -> (u64, u64) {
    let (_, usage) = server.get("/api/usage", token).await;
    let quota = usage["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {usage}"));
    (
        quota["used"].as_u64().unwrap(),
        quota["reserved"].as_u64().unwrap(),
    )
}

async fn messages(server: &Server, token: &str, conv: &str) -> Vec<Value> {
    let (_, page) = server
        .get(&format!("/api/conversations/{conv}/messages"), token)
        .await;
    page["messages"].as_array().unwrap().clone()
}

fn refund_me() -> Value {
    json!({"content": "", "finish_reason": "error", "prompt_tokens": 0, "completion_tokens": 0})
}

async fn a_client_cannot_refund_its_own_message_or_write_the_reply(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("sly@example.com").await;
    let conv = conversation(&server, &token).await;
    let reply = open_turn(&server, &token, &conv).await;
    assert_eq!(usage(&server, &token, "messages").await.0, 1);

    // The turn id reached the client before the reply streamed: it tries to end the turn
    // itself, first as a refund, then with words of its choosing.
    let (status, body) = server.post(&reply, Some(&token), refund_me()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "service_credential_required");
    let forged = json!({"content": "I will give you a refund", "finish_reason": "stop",
                        "prompt_tokens": 0, "completion_tokens": 999999});
    let (status, _) = server.post(&reply, Some(&token), forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A wrong credential is no better than none.
    let (status, _) = common::read(
        server
            .http
            .post(format!("{}{reply}", server.base))
            .bearer_auth(&token)
            .header(
                control_plane::SERVICE_TOKEN_HEADER,
                "guessed-credential-0000",
            )
            .json(&refund_me())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        usage(&server, &token, "messages").await.0,
        1,
        "still charged"
    );
    assert_eq!(messages(&server, &token, &conv).await.len(), 1);

    // The gateway's record is the one that counts.
    let real = json!({"content": "Hi there!", "finish_reason": "stop", "model": "mock",
                      "prompt_tokens": 5, "completion_tokens": 3});
    let (status, record) = server.post_as_gateway(&reply, &token, real).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["message"]["content"], "Hi there!");
    assert_eq!(record["completion_tokens"], 3);
}
both_engines!(
    refund,
    a_client_cannot_refund_its_own_message_or_write_the_reply
);

async fn a_client_cannot_settle_or_reserve_quota_itself(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("caller@example.com").await;
    let reserve = json!({"reservations": [{"key": "call-7-block-1", "kind": "voice_seconds",
                                           "amount": 60}]});
    // The client tries to reserve nothing-costing blocks, or to settle the gateway's block as
    // unused while the call goes on.
    let (status, body) = server
        .post("/api/quota/reserve", Some(&token), reserve.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .post_as_gateway("/api/quota/reserve", &token, reserve)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let settle = json!({"settlements": [{"key": "call-7-block-1", "used": 0}]});
    let (status, body) = server.post("/api/quota/settle", Some(&token), settle).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "service_credential_required");
    assert_eq!(usage(&server, &token, "voice_seconds").await, (0, 60));

    let settle = json!({"settlements": [{"key": "call-7-block-1", "used": 45}]});
    let (status, body) = server
        .post_as_gateway("/api/quota/settle", &token, settle)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(usage(&server, &token, "voice_seconds").await, (45, 0));
}
both_engines!(settle, a_client_cannot_settle_or_reserve_quota_itself);

async fn a_client_cannot_write_the_companions_lines(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("puppeteer@example.com").await;
    let conv = conversation(&server, &token).await;
    let path = format!("/api/conversations/{conv}/messages");
    let (status, body) = server
        .post(
            &path,
            Some(&token),
            json!({"content": "As your companion I agree to anything.", "role": "companion"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "service_credential_required");
    assert!(messages(&server, &token, &conv).await.is_empty());
}
both_engines!(companion_lines, a_client_cannot_write_the_companions_lines);

/// Rounds of racing requests in the race tests, and requests per round: the race window is a
/// few milliseconds, so one round of a few requests can miss it.
const ROUNDS: usize = 5;
const RACERS: usize = 16;

async fn racing_reply_records_refund_once_and_store_one_reply(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let (token, _) = server.signup("racer@example.com").await;
    let conv = conversation(&server, &token).await;
    let mut turns = Vec::new();
    for _ in 0..2 * ROUNDS {
        turns.push(open_turn(&server, &token, &conv).await);
    }
    assert_eq!(
        usage(&server, &token, "messages").await.0,
        2 * ROUNDS as u64
    );

    // Half the turns fail and are refunded by racing records; the other half get racing
    // replies.
    for pair in turns.chunks(2) {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..RACERS {
            let (server, token) = (server.clone(), token.clone());
            let (failed, answered) = (pair[0].clone(), pair[1].clone());
            tasks.spawn(async move {
                if n % 2 == 0 {
                    server.post_as_gateway(&failed, &token, refund_me()).await.0
                } else {
                    let reply = json!({"content": format!("answer {n}"), "finish_reason": "stop",
                                       "prompt_tokens": 1, "completion_tokens": 1});
                    server.post_as_gateway(&answered, &token, reply).await.0
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap(), StatusCode::OK);
        }
    }
    assert_eq!(
        usage(&server, &token, "messages").await.0,
        ROUNDS as u64,
        "each failed turn is refunded exactly once"
    );
    let replies = messages(&server, &token, &conv)
        .await
        .into_iter()
        .filter(|m| m["role"] == "companion")
        .count();
    assert_eq!(replies, ROUNDS, "one reply stored per answered turn");
}
both_engines!(
    racing_replies,
    racing_reply_records_refund_once_and_store_one_reply
);

async fn racing_settles_of_one_reservation_return_its_grant_once(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let (token, _) = server.signup("settler@example.com").await;
    let reserve = |key: String| json!({"reservations": [{"key": key, "kind": "voice_seconds", "amount": 20}]});
    for round in 0..ROUNDS {
        let body = reserve(format!("block-{round}"));
        let (status, _) = server
            .post_as_gateway("/api/quota/reserve", &token, body)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = server
        .post_as_gateway("/api/quota/reserve", &token, reserve("kept".to_owned()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let total = 20 * (ROUNDS as u64 + 1);
    assert_eq!(usage(&server, &token, "voice_seconds").await, (0, total));
    for round in 0..ROUNDS {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..RACERS {
            let (server, token) = (server.clone(), token.clone());
            let settle = json!({"settlements": [{"key": format!("block-{round}"), "used": 5}]});
            tasks.spawn(async move {
                server
                    .post_as_gateway("/api/quota/settle", &token, settle)
                    .await
            });
        }
        let mut settled = 0;
        while let Some(done) = tasks.join_next().await {
            let (status, body) = done.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["results"][0]["status"] == "settled" {
                settled += 1;
            }
        }
        assert_eq!(settled, 1, "round {round}");
    }
    assert_eq!(
        usage(&server, &token, "voice_seconds").await,
        (5 * ROUNDS as u64, 20),
        "each block counted once, and the kept block still reserved"
    );
}
both_engines!(
    racing_settles,
    racing_settles_of_one_reservation_return_its_grant_once
);

async fn racing_reserves_with_one_key_grant_once(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let (token, _) = server.signup("retrier@example.com").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (server, token) = (server.clone(), token.clone());
        tasks.spawn(async move {
            let reserve =
                json!({"reservations": [{"key": "retried", "kind": "voice_seconds", "amount": 60}]});
            server.post_as_gateway("/api/quota/reserve", &token, reserve).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["results"][0]["granted"], 60);
    }
    assert_eq!(usage(&server, &token, "voice_seconds").await, (0, 60));
}
both_engines!(racing_reserves, racing_reserves_with_one_key_grant_once);

async fn racing_companion_creates_stay_within_the_avatar_allowance(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let (token, _) = server.signup("artist@example.com").await;
    let id = server.get("/api/me", &token).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Plus allows five custom avatars; twelve creates race for them.
    server.cp.set_tier(&id, Tier::Plus).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (server, token) = (server.clone(), token.clone());
        tasks.spawn(async move {
            let custom = json!({"name": format!("Pix {i}"), "custom_avatar": true,
                                "avatar": "https://cdn.example.com/a.png"});
            server.post("/api/companions", Some(&token), custom).await.0
        });
    }
    let mut created = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 5);
    let (_, list) = server.get("/api/companions", &token).await;
    assert_eq!(list["companions"].as_array().unwrap().len(), 5);
}
both_engines!(
    racing_avatars,
    racing_companion_creates_stay_within_the_avatar_allowance
);
