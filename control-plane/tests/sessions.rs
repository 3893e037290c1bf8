//! Session hardening: two tabs refreshing at once keep their session, a replay outside the
//! grace still ends it, sessions have an absolute lifetime, token answers are never cached,
//! and password hashing turns a burst away quickly instead of queueing it without end.

mod common;

use common::{Backend, Server, Storage, error_code, tokens};
use control_plane::{Argon2Config, Config};
use reqwest::StatusCode;
use serde_json::json;
use test_support::both_engines;

async fn refresh(server: &Server, token: &str) -> (StatusCode, serde_json::Value) {
    server
        .post("/api/auth/refresh", None, json!({"refresh_token": token}))
        .await
}

async fn two_tabs_refreshing_one_session_at_once_both_stay_signed_in(backend: Backend) {
    let server = Server::start(backend).await;
    let (_, first) = server.signup("tabs@example.com").await;
    let (a, b) = tokio::join!(refresh(&server, &first), refresh(&server, &first));
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(b.0, StatusCode::OK, "{}", b.1);
    let (access_a, refresh_a) = tokens(&a.1);
    let (access_b, refresh_b) = tokens(&b.1);
    assert_ne!(refresh_a, refresh_b);
    // Both tabs go on: their access tokens work and their next refreshes succeed.
    assert_eq!(server.get("/api/me", &access_a).await.0, StatusCode::OK);
    assert_eq!(server.get("/api/me", &access_b).await.0, StatusCode::OK);
    assert_eq!(refresh(&server, &refresh_a).await.0, StatusCode::OK);
    assert_eq!(refresh(&server, &refresh_b).await.0, StatusCode::OK);
}
both_engines!(
    concurrent_refresh,
    two_tabs_refreshing_one_session_at_once_both_stay_signed_in
);

async fn a_refresh_token_replayed_after_the_grace_still_ends_the_session(backend: Backend) {
    let server = Server::start(backend).await;
    let storage = server.storage.clone().unwrap();
    let (_, first) = server.signup("late@example.com").await;
    let (_, body) = refresh(&server, &first).await;
    let (access, second) = tokens(&body);
    // A minute later (beyond the 10 s grace) the first token shows up again: stolen.
    common::execute_sql(
        &storage,
        "UPDATE refresh_tokens SET used_at = used_at - 60 WHERE used_at IS NOT NULL",
    )
    .await;
    let (status, body) = refresh(&server, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "refresh_token_reused");
    assert_eq!(refresh(&server, &second).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get("/api/me", &access).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Within the grace, only the immediately previous token is forgiven: one two refreshes
    // back is a replay.
    let (_, body) = server.login("late@example.com").await;
    let (_, t0) = tokens(&body);
    let (_, body) = refresh(&server, &t0).await;
    let (_, t1) = tokens(&body);
    let (_, body) = refresh(&server, &t1).await;
    let (_, t2) = tokens(&body);
    let (status, body) = refresh(&server, &t0).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "refresh_token_reused");
    assert_eq!(refresh(&server, &t2).await.0, StatusCode::UNAUTHORIZED);
}
both_engines!(
    replay_after_grace,
    a_refresh_token_replayed_after_the_grace_still_ends_the_session
);

async fn a_session_older_than_its_absolute_lifetime_cannot_be_refreshed(backend: Backend) {
    let server = Server::start(backend).await;
    let (_, token) = server.signup("old@example.com").await;
    // Refreshed faithfully every day, the session began 31 days ago (the limit is 30).
    common::execute_sql(
        server.storage.as_ref().unwrap(),
        "UPDATE refresh_tokens SET family_started_us = family_started_us - 2678400000000",
    )
    .await;
    let (status, body) = refresh(&server, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "session_expired");
    // Nothing of it works any more; signing in starts a new one.
    assert_eq!(refresh(&server, &token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.login("old@example.com").await.0, StatusCode::OK);
}
both_engines!(
    session_max_age,
    a_session_older_than_its_absolute_lifetime_cannot_be_refreshed
);

async fn responses_carrying_tokens_are_never_cached(backend: Backend) {
    let server = Server::start(backend).await;
    let signup = server
        .send(
            reqwest::Method::POST,
            "/api/auth/signup",
            None,
            Some(
                json!({"email": "cache@example.com", "password": "correct horse battery",
                        "birth_year": 1990, "consent_terms": true}),
            ),
        )
        .await;
    let login = server
        .send(
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "cache@example.com", "password": "correct horse battery"})),
        )
        .await;
    let headers = login.headers().clone();
    let (_, body) = common::read(login).await;
    let (_, refresh_token) = tokens(&body);
    let refreshed = server
        .send(
            reqwest::Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token})),
        )
        .await;
    for (what, status, headers) in [
        ("signup", signup.status(), signup.headers().clone()),
        ("login", StatusCode::OK, headers),
        ("refresh", refreshed.status(), refreshed.headers().clone()),
    ] {
        assert!(status.is_success(), "{what}: {status}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
        assert_eq!(headers["pragma"], "no-cache", "{what}");
    }
}
both_engines!(no_store, responses_carrying_tokens_are_never_cached);

async fn a_burst_of_sign_ins_gets_quick_503s_instead_of_an_endless_queue(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let config = Config {
        // One hash at a time, each slow (64 MiB, 3 passes); nobody waits more than 10 ms.
        password_hash_concurrency: 1,
        password_hash_queue_ms: 10,
        argon2: Argon2Config {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        },
        ..storage.config()
    };
    let mut server = Server::with_config(config).await;
    server.storage = Some(storage);
    server.signup("burst@example.com").await;

    let started = std::time::Instant::now();
    let attempts = (0..8).map(|_| async {
        let resp = server
            .send(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": "burst@example.com", "password": "correct horse battery"})),
            )
            .await;
        let retry_after = resp.headers().get("retry-after").cloned();
        let (status, body) = common::read(resp).await;
        (status, body, retry_after, started.elapsed())
    });
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.0 == StatusCode::OK).count();
    let busy: Vec<_> = results
        .iter()
        .filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(ok + busy.len(), results.len(), "{results:?}");
    assert!(ok >= 1, "someone gets in: {results:?}");
    assert!(!busy.is_empty(), "the rest are turned away: {results:?}");
    let slowest_ok = results
        .iter()
        .filter(|r| r.0 == StatusCode::OK)
        .map(|r| r.3)
        .max()
        .unwrap();
    for (_, body, retry_after, elapsed) in busy {
        assert_eq!(error_code(body), "busy");
        assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
        // Turned away at the queue deadline, not after waiting for the hashes ahead.
        assert!(*elapsed < slowest_ok, "{elapsed:?} vs {slowest_ok:?}");
    }
}
both_engines!(
    hash_gate,
    a_burst_of_sign_ins_gets_quick_503s_instead_of_an_endless_queue
);

async fn a_dev_account_cannot_be_given_a_password_with_an_old_token(backend: Backend) {
    let server = Server::start(backend).await;
    let token = server.cp.dev_token("dev@example.com").await.unwrap();
    common::execute_sql(
        server.storage.as_ref().unwrap(),
        "UPDATE refresh_tokens SET family_started_us = family_started_us - 3600000000",
    )
    .await;
    let (status, body) = server
        .post(
            "/api/auth/password",
            Some(&token),
            json!({"current_password": "not a real password", "new_password": "taken over now"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "reauthentication_required");
}
both_engines!(
    dev_account_password,
    a_dev_account_cannot_be_given_a_password_with_an_old_token
);
