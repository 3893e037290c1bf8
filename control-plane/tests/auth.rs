//! Accounts and sessions: sign up, sign in, refresh rotation, reuse detection, the session cap,
//! password change, sign-out, published keys.

mod common;

use common::{Backend, Server, error_code, tokens};
use control_plane::token::Verifier;
use reqwest::StatusCode;
use serde_json::json;
use test_support::both_engines;

async fn a_new_user_signs_up_and_sees_their_account(backend: Backend) {
    let server = Server::start(backend).await;
    let (access, _) = server.signup("Ada@Example.com").await;
    let (status, me) = server.get("/api/me", &access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["tier"], "free");
    assert_eq!(me["limits"]["messages_per_day"], 50);
    assert_eq!(me["consent_terms"], true);

    // The same address cannot sign up twice.
    let (status, body) = server
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "ada@example.com", "password": "another password",
              "birth_year": 1990, "consent_terms": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "conflict");
}
both_engines!(signup_and_me, a_new_user_signs_up_and_sees_their_account);

async fn children_under_13_and_refusals_of_terms_are_turned_away(backend: Backend) {
    let server = Server::start(backend).await;
    let year = 1970 + (control_plane_now() / 31_556_952);
    let (status, body) = server
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "kid@example.com", "password": "long enough pw",
              "birth_year": year - 10, "consent_terms": true}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "age_restricted");
    let (status, body) = server
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "adult@example.com", "password": "long enough pw",
              "birth_year": 1980, "consent_terms": false}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "invalid_body");
    // Neither attempt left an account behind.
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "adult@example.com", "password": "long enough pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_engines!(
    age_gate,
    children_under_13_and_refusals_of_terms_are_turned_away
);

fn control_plane_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn a_wrong_password_is_refused_without_saying_which_part_was_wrong(backend: Backend) {
    let server = Server::start(backend).await;
    server.signup("bob@example.com").await;
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "bob@example.com", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_credentials");
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_credentials");
    let (status, _) = server.login("bob@example.com").await;
    assert_eq!(status, StatusCode::OK);
}
both_engines!(
    login,
    a_wrong_password_is_refused_without_saying_which_part_was_wrong
);

async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session(backend: Backend) {
    // Without the concurrent-refresh grace, so an immediate replay counts as one (the grace is
    // tested in tests/sessions.rs).
    let storage = common::Storage::fresh(backend).await;
    let config = control_plane::Config {
        refresh_reuse_grace_secs: 0,
        ..storage.config()
    };
    let server = Server::with_config(config).await;
    let (_, first) = server.signup("carol@example.com").await;
    let (status, body) = server
        .post("/api/auth/refresh", None, json!({"refresh_token": first}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access2, second) = tokens(&body);
    assert_ne!(first, second);
    assert_eq!(server.get("/api/me", &access2).await.0, StatusCode::OK);

    // An attacker replays the first token: refused, and the whole family is revoked...
    let (status, body) = server
        .post("/api/auth/refresh", None, json!({"refresh_token": first}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "refresh_token_reused");
    // ...so the legitimate holder's newer token no longer works, nor does its access token.
    let (status, body) = server
        .post("/api/auth/refresh", None, json!({"refresh_token": second}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        server.get("/api/me", &access2).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Signing in again works.
    assert_eq!(server.login("carol@example.com").await.0, StatusCode::OK);
}
both_engines!(
    refresh_rotation,
    refresh_tokens_rotate_and_a_reused_one_ends_the_session
);

async fn a_fourth_sign_in_ends_the_oldest_session(backend: Backend) {
    let server = Server::start(backend).await;
    let (a1, r1) = server.signup("dan@example.com").await;
    let mut sessions = vec![];
    for _ in 0..2 {
        let (status, body) = server.login("dan@example.com").await;
        assert_eq!(status, StatusCode::OK);
        sessions.push(tokens(&body));
    }
    assert_eq!(
        server.get("/api/me", &a1).await.0,
        StatusCode::OK,
        "three sessions are allowed"
    );
    let (status, body) = server.login("dan@example.com").await;
    assert_eq!(status, StatusCode::OK);
    let (a4, _) = tokens(&body);
    assert_eq!(server.get("/api/me", &a1).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .post("/api/auth/refresh", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_refresh_token");
    for (access, _) in &sessions {
        assert_eq!(server.get("/api/me", access).await.0, StatusCode::OK);
    }
    assert_eq!(server.get("/api/me", &a4).await.0, StatusCode::OK);
}
both_engines!(session_cap, a_fourth_sign_in_ends_the_oldest_session);

async fn changing_the_password_ends_every_session(backend: Backend) {
    let server = Server::start(backend).await;
    let (a1, r1) = server.signup("eve@example.com").await;
    let (_, body) = server.login("eve@example.com").await;
    let (a2, _) = tokens(&body);
    let (status, body) = server
        .post(
            "/api/auth/password",
            Some(&a1),
            json!({"current_password": "wrong one!!", "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = server
        .post("/api/auth/password", Some(&a1), json!({"current_password": "correct horse battery", "new_password": "a brand new password"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(server.get("/api/me", &a1).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get("/api/me", &a2).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server
            .post("/api/auth/refresh", None, json!({"refresh_token": r1}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("eve@example.com").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "eve@example.com", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
both_engines!(password_change, changing_the_password_ends_every_session);

async fn signing_out_ends_the_session(backend: Backend) {
    let server = Server::start(backend).await;
    let (access, refresh) = server.signup("fay@example.com").await;
    let (status, _) = server
        .post("/api/auth/logout", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get("/api/me", &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = server
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_engines!(logout, signing_out_ends_the_session);

async fn a_gateway_verifies_tokens_from_the_published_keys_across_rotation(backend: Backend) {
    let server = Server::start(backend).await;
    let (old_token, _) = server.signup("gus@example.com").await;
    let jwks = server
        .http
        .get(format!("{}/.well-known/jwks.json", server.base))
        .send()
        .await
        .unwrap();
    let jwks = jwks.text().await.unwrap();
    let verifier = Verifier::from_jwks_json(&jwks, "companion-control-plane", "companion").unwrap();
    let claims = verifier.verify(&old_token).unwrap();
    assert_eq!(claims.email, "gus@example.com");
    assert_eq!(claims.tier, "free");
    assert!(
        claims.exp > claims.iat
            && !claims.jti.is_empty()
            && claims.permissions.contains(&"chat".to_owned())
    );

    // After rotation both keys are published: old tokens keep working until they expire.
    let new_kid = server.cp.rotate_signing_key().await.unwrap();
    let (_, body) = server.login("gus@example.com").await;
    let (new_token, _) = tokens(&body);
    let jwks: serde_json::Value = server
        .http
        .get(format!("{}/.well-known/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], new_kid);
    let verifier =
        Verifier::from_jwks_json(&jwks.to_string(), "companion-control-plane", "companion")
            .unwrap();
    assert!(verifier.verify(&old_token).is_ok());
    assert!(verifier.verify(&new_token).is_ok());
    assert_eq!(server.get("/api/me", &old_token).await.0, StatusCode::OK);
    assert_eq!(server.get("/api/me", &new_token).await.0, StatusCode::OK);
}
both_engines!(
    jwks_rotation,
    a_gateway_verifies_tokens_from_the_published_keys_across_rotation
);

async fn the_signing_key_survives_a_restart(backend: Backend) {
    let first = Server::start(backend).await;
    let config = first.storage.as_ref().unwrap().config();
    let token = first.cp.dev_token("demo@example.com").await.unwrap();
    let second = Server::with_config(config).await;
    assert_eq!(second.get("/api/me", &token).await.0, StatusCode::OK);
    let v1 = first.cp.verifier().await.unwrap();
    let v2 = second.cp.verifier().await.unwrap();
    assert_eq!(v1.verify(&token).unwrap(), v2.verify(&token).unwrap());
}
both_engines!(key_persists, the_signing_key_survives_a_restart);
