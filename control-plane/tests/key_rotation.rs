//! Signing keys across nodes: several control planes share one database; a node that starts
//! after the rotation period rotates the key, and its running siblings must follow it rather
//! than keep signing with the retired key until their tokens are refused everywhere. Keys are
//! encrypted at rest when a secret is set.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, Server, Storage};
use reqwest::StatusCode;
use sqlx::Row;
use test_support::both_engines;

/// The key id in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn pool(storage: &Storage) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&storage.database_url).await.unwrap()
}

/// Makes every stored key look `secs` older, as if the nodes had run that long.
async fn age_keys(storage: &Storage, secs: i64) {
    sqlx::query("UPDATE signing_keys SET created_at = created_at - $1")
        .bind(secs)
        .execute(&pool(storage).await)
        .await
        .unwrap();
}

async fn unretired_keys(storage: &Storage) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM signing_keys WHERE retired_at IS NULL")
        .fetch_one(&pool(storage).await)
        .await
        .unwrap();
    row.get::<i64, _>("n")
}

/// Signs in at `server` and returns the new access token.
async fn token_from(server: &Server, email: &str) -> String {
    let (status, body) = server.login(email).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    common::tokens(&body).0
}

/// Waits (a few reload intervals at most) until `node` signs with `kid`.
async fn until_signing_with(node: &Server, kid: &str) {
    for _ in 0..50 {
        if node.cp.signing_key_id() == kid {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the node still signs with {} instead of {kid}",
        node.cp.signing_key_id()
    );
}

async fn a_node_started_after_the_rotation_period_does_not_break_its_siblings(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let mut config = storage.config();
    config.signing_key_rotation_secs = 3600;
    config.signing_key_reload_secs = 1;
    let a = Server::with_config(config.clone()).await;
    let b = Server::with_config(config.clone()).await;
    a.signup("ana@example.com").await;
    let first = a.cp.signing_key_id();
    assert_eq!(b.cp.signing_key_id(), first, "one key for every node");
    let before = token_from(&a, "ana@example.com").await;

    // The nodes have run past the rotation period; node C starts (or B restarts) and
    // rotates. A and B go on running.
    age_keys(&storage, 7200).await;
    let c = Server::with_config(config.clone()).await;
    let rotated = c.cp.signing_key_id();
    assert_ne!(rotated, first);
    until_signing_with(&a, &rotated).await;
    until_signing_with(&b, &rotated).await;

    // A's new tokens are signed with the key every node signs with, and all accept them.
    let after = token_from(&a, "ana@example.com").await;
    assert_eq!(kid(&after), rotated);
    for node in [&a, &b, &c] {
        assert_eq!(node.get("/api/me", &after).await.0, StatusCode::OK);
        // The token signed before the rotation is still valid until it expires.
        assert_eq!(node.get("/api/me", &before).await.0, StatusCode::OK);
    }
    assert_eq!(unretired_keys(&storage).await, 1);

    // While running, the key ages out again: the nodes notice at their next reload, all at
    // about the same moment, and rotate it exactly once.
    age_keys(&storage, 7200).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let third = a.cp.signing_key_id();
    assert_ne!(third, rotated, "rotated without a restart");
    until_signing_with(&b, &third).await;
    until_signing_with(&c, &third).await;
    assert_eq!(unretired_keys(&storage).await, 1, "one rotation, not three");
    let latest = token_from(&b, "ana@example.com").await;
    for node in [&a, &b, &c] {
        assert_eq!(node.get("/api/me", &latest).await.0, StatusCode::OK);
    }
}
both_engines!(
    siblings,
    a_node_started_after_the_rotation_period_does_not_break_its_siblings
);

async fn signing_keys_are_encrypted_at_rest_with_the_configured_secret(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let mut config = storage.config();
    // A node from before the secret was set stored its key in plain form.
    let plain = Server::with_config(config.clone()).await;
    let (token, _) = plain.signup("eve@example.com").await;
    drop(plain);
    let stored = |storage: &Storage| {
        let storage = storage.clone();
        async move {
            let row = sqlx::query("SELECT private_der FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&pool(&storage).await)
                .await
                .unwrap();
            row.get::<String, _>("private_der")
        }
    };
    assert!(!stored(&storage).await.starts_with("enc:"));

    config.signing_key_secret = protocol::Secret::new("a secret from the environment");
    let sealed = Server::with_config(config.clone()).await;
    let at_rest = stored(&storage).await;
    assert!(at_rest.starts_with("enc:v1:"), "sealed in place: {at_rest}");
    // Still the same key: tokens signed before keep working, new ones verify too.
    assert_eq!(sealed.get("/api/me", &token).await.0, StatusCode::OK);
    let fresh = token_from(&sealed, "eve@example.com").await;
    assert_eq!(sealed.get("/api/me", &fresh).await.0, StatusCode::OK);
    let rotated = sealed.cp.rotate_signing_key().await.unwrap();
    assert!(stored(&storage).await.starts_with("enc:v1:"), "{rotated}");
    // Retired keys keep no private half in the database.
    let row = sqlx::query("SELECT COUNT(*) AS n FROM signing_keys WHERE private_der <> ''")
        .fetch_one(&pool(&storage).await)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 1);

    // Without the secret (or with another one) a node refuses to start rather than sign
    // with keys nobody else has.
    for secret in ["", "not the secret"] {
        config.signing_key_secret = protocol::Secret::new(secret);
        let err = control_plane::ControlPlane::start(config.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("signing_key_secret"), "{err}");
    }
}
both_engines!(
    at_rest,
    signing_keys_are_encrypted_at_rest_with_the_configured_secret
);
