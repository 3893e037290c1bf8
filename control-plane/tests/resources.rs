//! Conversations, messages (cursor pagination), companions, usage; and user B never sees
//! user A's things: every one of them answers 404.

mod common;

use common::{Backend, Server, error_code};
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::both_engines;

async fn a_user_builds_a_companion_and_chats_with_it(backend: Backend) {
    let server = Server::start(backend).await;
    let (token, _) = server.signup("ann@example.com").await;

    let (status, companion) = server
        .post(
            "/api/companions",
            Some(&token),
            json!({"name": "Mira", "persona": "a cheerful astronomer",
              "avatar": "builtin:mira", "voice": "en-female-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{companion}");
    let cid = companion["id"].as_str().unwrap().to_owned();

    let (status, conv) = server
        .post(
            "/api/conversations",
            Some(&token),
            json!({"title": "stars", "companion_id": cid}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    let conv_id = conv["id"].as_str().unwrap().to_owned();
    let (status, list) = server.get("/api/conversations", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["conversations"][0]["id"], conv_id.as_str());

    for i in 0..5 {
        let (status, msg) = server
            .post(
                &format!("/api/conversations/{conv_id}/messages"),
                Some(&token),
                json!({"content": format!("hello {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{msg}");
    }
    // The companion's lines are the gateway's to write.
    let (status, _) = server
        .post_as_gateway(
            &format!("/api/conversations/{conv_id}/messages"),
            &token,
            json!({"content": "Hi!", "role": "companion"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Read it back two at a time, following the cursor.
    let mut seen = vec![];
    let mut cursor: Option<i64> = None;
    loop {
        let q = cursor.map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) = server
            .get(
                &format!("/api/conversations/{conv_id}/messages?limit=2{q}"),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for m in page["messages"].as_array().unwrap() {
            seen.push(m["content"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["hello 0", "hello 1", "hello 2", "hello 3", "hello 4", "Hi!"]
    );

    // Only the user's own messages spent quota.
    let (status, usage) = server.get("/api/usage", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["tier"], "free");
    assert_eq!(usage["quotas"][0]["kind"], "messages");
    assert_eq!(usage["quotas"][0]["used"], 5);
    assert_eq!(usage["quotas"][0]["limit"], 50);

    // Companion CRUD.
    let resp = server
        .send(
            Method::PATCH,
            &format!("/api/companions/{cid}"),
            Some(&token),
            Some(json!({"voice": "en-female-2"})),
        )
        .await;
    let (status, updated) = common::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["voice"], "en-female-2");
    assert_eq!(updated["name"], "Mira");
    let (status, one) = server.get(&format!("/api/companions/{cid}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["voice"], "en-female-2");
    let (_, all) = server.get("/api/companions", &token).await;
    assert_eq!(all["companions"].as_array().unwrap().len(), 1);
    let (status, _) = common::read(
        server
            .send(
                Method::DELETE,
                &format!("/api/companions/{cid}"),
                Some(&token),
                None,
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server
            .get(&format!("/api/companions/{cid}"), &token)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The conversation outlives its companion.
    assert_eq!(
        server
            .get(&format!("/api/conversations/{conv_id}/messages"), &token)
            .await
            .0,
        StatusCode::OK
    );
}
both_engines!(
    companion_and_chat,
    a_user_builds_a_companion_and_chats_with_it
);

async fn another_user_gets_404_for_everything_that_is_not_theirs(backend: Backend) {
    let server = Server::start(backend).await;
    let (a, _) = server.signup("alice@example.com").await;
    let (b, _) = server.signup("bob@example.com").await;
    let (_, companion) = server
        .post("/api/companions", Some(&a), json!({"name": "Secret"}))
        .await;
    let cid = companion["id"].as_str().unwrap().to_owned();
    let (_, conv) = server
        .post("/api/conversations", Some(&a), json!({"title": "private"}))
        .await;
    let conv_id = conv["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/conversations/{conv_id}/messages"),
            Some(&a),
            json!({"content": "my diary"}),
        )
        .await;

    let not_found = |(status, body): (StatusCode, serde_json::Value), what: &str| {
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
        assert_eq!(error_code(&body), "not_found");
    };
    not_found(
        server.get(&format!("/api/companions/{cid}"), &b).await,
        "GET companion",
    );
    not_found(
        common::read(
            server
                .send(
                    Method::PATCH,
                    &format!("/api/companions/{cid}"),
                    Some(&b),
                    Some(json!({"name": "Mine"})),
                )
                .await,
        )
        .await,
        "PATCH companion",
    );
    not_found(
        common::read(
            server
                .send(
                    Method::DELETE,
                    &format!("/api/companions/{cid}"),
                    Some(&b),
                    None,
                )
                .await,
        )
        .await,
        "DELETE companion",
    );
    not_found(
        server
            .get(&format!("/api/conversations/{conv_id}/messages"), &b)
            .await,
        "GET messages",
    );
    not_found(
        server
            .post(
                &format!("/api/conversations/{conv_id}/messages"),
                Some(&b),
                json!({"content": "hi"}),
            )
            .await,
        "POST message",
    );
    not_found(
        server
            .post("/api/conversations", Some(&b), json!({"companion_id": cid}))
            .await,
        "conversation with someone else's companion",
    );
    // B's lists are empty, and A's things are untouched.
    assert_eq!(
        server.get("/api/conversations", &b).await.1["conversations"],
        json!([])
    );
    assert_eq!(
        server.get("/api/companions", &b).await.1["companions"],
        json!([])
    );
    let (_, mine) = server.get(&format!("/api/companions/{cid}"), &a).await;
    assert_eq!(mine["name"], "Secret");
    let (_, page) = server
        .get(&format!("/api/conversations/{conv_id}/messages"), &a)
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}
both_engines!(
    isolation,
    another_user_gets_404_for_everything_that_is_not_theirs
);

async fn the_api_describes_itself(backend: Backend) {
    let server = Server::start(backend).await;
    let doc: serde_json::Value = server
        .http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/auth/login",
        "/api/conversations/{id}/messages",
        "/api/companions/{id}",
        "/api/quota/reserve",
        "/.well-known/jwks.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (status, body) = common::read(
        server
            .send(Method::GET, "/api/nothing-here", None, None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}
both_engines!(openapi, the_api_describes_itself);
