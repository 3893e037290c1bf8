//! The chat-turn API a gateway calls per chat message: a turn stores the user's message and
//! hands back history and persona; its reply is recorded once with its token usage; another
//! account's conversation does not exist; moderation, the daily quota and the `chat` rate
//! limit refuse before anything is stored. Both engines.

mod common;

use common::{Backend, Server, Storage, error_code};
use control_plane::RateLimitRule;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::both_engines;

async fn conversation(server: &Server, token: &str, body: Value) -> String {
    let (status, conv) = server.post("/api/conversations", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    conv["id"].as_str().unwrap().to_owned()
}

async fn messages(server: &Server, token: &str, conv: &str) -> Vec<Value> {
    let (status, page) = server
        .get(&format!("/api/conversations/{conv}/messages"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().unwrap().clone()
}

async fn open(server: &Server, token: &str, conv: &str, content: &str) -> (StatusCode, Value) {
    server
        .post_as_gateway(
            "/api/chat/turns",
            token,
            json!({"conversation_id": conv, "content": content}),
        )
        .await
}

/// One value of the database, for what the API does not show (moderation records, counters).
async fn scalar(storage: &Storage, sql: &str, bind: &str) -> i64 {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&storage.database_url).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(bind.to_owned())
        .fetch_one(&pool)
        .await
        .unwrap();
    row.get::<i64, _>(0)
}

async fn a_turn_stores_the_message_returns_context_and_records_its_reply(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("ana@example.com").await;
    let (_, companion) = server
        .post(
            "/api/companions",
            Some(&token),
            json!({"name": "Mira", "persona": "a cheerful astronomer"}),
        )
        .await;
    let conv = conversation(&server, &token, json!({"companion_id": companion["id"]})).await;

    let (status, turn) = open(&server, &token, &conv, "What is a comet?").await;
    assert_eq!(status, StatusCode::CREATED, "{turn}");
    assert_eq!(turn["persona"], "a cheerful astronomer");
    assert_eq!(turn["companion_name"], "Mira");
    assert_eq!(
        turn["history"],
        json!([{"role": "user", "content": "What is a comet?"}])
    );
    assert_eq!(turn["messages_remaining"], 49);
    let turn_id = turn["turn_id"].as_str().unwrap().to_owned();

    // While the reply streams the turn has no outcome yet.
    let path = format!("/api/conversations/{conv}/turns/{turn_id}");
    let (status, record) = server.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["finish_reason"], Value::Null);

    let reply = json!({"content": "A dirty snowball.", "finish_reason": "stop",
                       "model": "mock-openai", "prompt_tokens": 30, "completion_tokens": 5});
    let (status, record) = server
        .post_as_gateway(&format!("{path}/reply"), &token, reply.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["message"]["content"], "A dirty snowball.");
    assert_eq!(record["message"]["role"], "companion");
    assert_eq!(record["total_tokens"], 35);
    assert_eq!(record["finish_reason"], "stop");
    // A retried record answers the first one and stores nothing twice.
    let (status, again) = server
        .post_as_gateway(&format!("{path}/reply"), &token, reply)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["message"]["id"], record["message"]["id"]);
    let stored = messages(&server, &token, &conv).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["content"], "A dirty snowball.");
    let storage = server.storage.as_ref().unwrap();
    let tokens = scalar(
        storage,
        "SELECT used FROM usage_records WHERE profile_id = $1 AND kind = 'llm_tokens'",
        record_owner(&server, &token).await.as_str(),
    )
    .await;
    assert_eq!(tokens, 35);

    // The next turn's history holds both, oldest first.
    let (_, turn2) = open(&server, &token, &conv, "And a meteor?").await;
    let roles: Vec<&str> = turn2["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "companion", "user"]);

    // A reply that failed before any text stores nothing and gives the message back.
    let id2 = turn2["turn_id"].as_str().unwrap();
    let failed = json!({"content": "", "finish_reason": "error", "prompt_tokens": 40,
                        "completion_tokens": 0});
    let (status, record) = server
        .post_as_gateway(
            &format!("/api/conversations/{conv}/turns/{id2}/reply"),
            &token,
            failed,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["message"], Value::Null);
    assert_eq!(messages(&server, &token, &conv).await.len(), 3);
    let (_, usage) = server.get("/api/usage", &token).await;
    assert_eq!(usage["quotas"][0]["used"], 1, "{usage}");
}
both_engines!(
    turn_story,
    a_turn_stores_the_message_returns_context_and_records_its_reply
);

async fn record_owner(server: &Server, token: &str) -> String {
    let (_, me) = server.get("/api/me", token).await;
    me["id"].as_str().unwrap().to_owned()
}

async fn another_accounts_conversation_and_turns_do_not_exist(backend: Backend) {
    let server = Server::start(backend).await;
    let (a, _) = server.signup("owner@example.com").await;
    let (b, _) = server.signup("other@example.com").await;
    let conv = conversation(&server, &a, json!({})).await;
    let (status, body) = open(&server, &b, &conv, "let me in").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (_, turn) = open(&server, &a, &conv, "mine").await;
    let path = format!(
        "/api/conversations/{conv}/turns/{}",
        turn["turn_id"].as_str().unwrap()
    );
    let (status, _) = server.get(&path, &b).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reply = json!({"content": "hijacked", "finish_reason": "stop", "prompt_tokens": 1,
                       "completion_tokens": 1});
    let (status, _) = server
        .post_as_gateway(&format!("{path}/reply"), &b, reply)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(messages(&server, &a, &conv).await.len(), 1);
    let (_, usage) = server.get("/api/usage", &b).await;
    assert_eq!(usage["quotas"][0]["used"], 0);

    // Malformed requests are refused with their reason.
    for bad in [
        json!({"conversation_id": conv, "content": ""}),
        json!({"conversation_id": conv, "content": "x", "content_type": "image"}),
        json!({"conversation_id": conv, "content": "x", "history_limit": 0}),
        json!({"conversation_id": conv, "content": "x", "surprise": true}),
    ] {
        let (status, body) = server.post_as_gateway("/api/chat/turns", &a, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (status, _) = server
        .post_as_gateway(
            &format!("{path}/reply"), &a,
            json!({"content": "x", "finish_reason": "bored", "prompt_tokens": 1, "completion_tokens": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(messages(&server, &a, &conv).await.len(), 1);
}
both_engines!(
    isolation,
    another_accounts_conversation_and_turns_do_not_exist
);

async fn moderation_quota_and_the_chat_limit_refuse_before_storing(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let mut config = storage.config();
    config.moderation.blocked_terms = vec!["heck".to_owned()];
    config.moderation.max_links = 1;
    config.rate_limits.push(RateLimitRule {
        name: "chat".to_owned(),
        prefix: "/api/chat".to_owned(),
        limit: 4,
        window_secs: 3600,
    });
    let mut server = Server::with_config(config).await;
    server.storage = Some(storage);
    let (token, _) = server.signup("mod@example.com").await;
    let conv = conversation(&server, &token, json!({})).await;

    let (status, body) = open(&server, &token, &conv, "what the HECK").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "content_blocked");
    let (status, body) = open(
        &server,
        &token,
        &conv,
        "see http://a.example and www.b.example",
    )
    .await;
    assert_eq!(error_code(&body), "content_blocked", "{status} {body}");
    let owner = record_owner(&server, &token).await;
    let storage = server.storage.as_ref().unwrap();
    let rejected = scalar(
        storage,
        "SELECT COUNT(*) FROM moderation_records WHERE profile_id = $1 AND action = 'rejected'",
        &owner,
    )
    .await;
    assert_eq!(rejected, 2);
    assert!(messages(&server, &token, &conv).await.is_empty());

    // Word boundaries: "checkered" is not "heck".
    let (status, turn) = open(&server, &token, &conv, "a checkered flag").await;
    assert_eq!(status, StatusCode::CREATED, "{turn}");
    // Recording replies does not count against the chat limit.
    let path = format!(
        "/api/conversations/{conv}/turns/{}/reply",
        turn["turn_id"].as_str().unwrap()
    );
    for _ in 0..3 {
        let reply = json!({"content": "ok", "finish_reason": "stop", "prompt_tokens": 1,
                           "completion_tokens": 1});
        assert_eq!(
            server.post_as_gateway(&path, &token, reply).await.0,
            StatusCode::OK
        );
    }
    let (status, _) = open(&server, &token, &conv, "fourth").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = open(&server, &token, &conv, "fifth").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "rate_limited");
    assert_eq!(messages(&server, &token, &conv).await.len(), 3);
}
both_engines!(
    refusals,
    moderation_quota_and_the_chat_limit_refuse_before_storing
);

async fn the_daily_message_quota_is_shared_with_rest_messages(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("quota@example.com").await;
    let conv = conversation(&server, &token, json!({})).await;
    for i in 0..49 {
        let (status, _) = server
            .post(
                &format!("/api/conversations/{conv}/messages"),
                Some(&token),
                json!({"content": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, turn) = open(&server, &token, &conv, "the fiftieth").await;
    assert_eq!(status, StatusCode::CREATED, "{turn}");
    assert_eq!(turn["messages_remaining"], 0);
    // History is capped at the requested length.
    assert_eq!(turn["history"].as_array().unwrap().len(), 20);
    let (status, body) = open(&server, &token, &conv, "one too many").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "quota_exceeded");
    assert_eq!(messages(&server, &token, &conv).await.len(), 50);
}
both_engines!(quota, the_daily_message_quota_is_shared_with_rest_messages);

/// Many turns opened and recorded at once, with message lists read alongside, all succeed.
/// Under load a rollback-journal SQLite starved its writer behind the readers until the busy
/// timeout ("database is locked"); the file must be in WAL mode.
async fn concurrent_turns_and_reads_all_succeed(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let mut users = Vec::new();
    for i in 0..6 {
        let (token, _) = server.signup(&format!("busy{i}@example.com")).await;
        let conv = conversation(&server, &token, json!({})).await;
        users.push((token, conv));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (token, conv) in &users {
        for n in 0..8 {
            let (server, token, conv) = (server.clone(), token.clone(), conv.clone());
            tasks.spawn(async move {
                let (status, turn) = open(&server, &token, &conv, &format!("question {n}")).await;
                assert_eq!(status, StatusCode::CREATED, "{turn}");
                let path = format!(
                    "/api/conversations/{conv}/turns/{}/reply",
                    turn["turn_id"].as_str().unwrap()
                );
                let reply = json!({"content": format!("answer {n}"), "finish_reason": "stop",
                                   "model": "mock", "prompt_tokens": 3, "completion_tokens": 2});
                let (status, record) = server.post_as_gateway(&path, &token, reply).await;
                assert_eq!(status, StatusCode::OK, "{record}");
                messages(&server, &token, &conv).await.len()
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        assert!(done.expect("no request failed") >= 2);
    }
    for (token, conv) in &users {
        assert_eq!(messages(&server, token, conv).await.len(), 16);
    }
    let storage = server.storage.as_ref().unwrap();
    if backend == Backend::Sqlite {
        use sqlx::Row;
        let pool = sqlx::AnyPool::connect(&storage.database_url).await.unwrap();
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), "wal");
    }
}

both_engines!(concurrency, concurrent_turns_and_reads_all_succeed);
