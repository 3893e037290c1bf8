//! Forged and altered access tokens are refused with 401: `alg: none`, HS256 signed with the
//! public key, a wrong audience, an expired token, a tampered payload, an unknown key.

mod common;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Backend, Server, error_code};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use test_support::both_engines;

/// The server's own signing key, read from its database, to make tokens that are validly
/// signed but wrong in one other way.
async fn server_key(server: &Server) -> (String, EncodingKey, String) {
    sqlx::any::install_default_drivers();
    let url = &server.storage.as_ref().unwrap().database_url;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let row =
        sqlx::query("SELECT kid, private_der, public_x FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    let der = STANDARD
        .decode(row.get::<String, _>("private_der"))
        .unwrap();
    (
        row.get("kid"),
        EncodingKey::from_ed_der(&der),
        row.get("public_x"),
    )
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn assert_refused(server: &Server, token: &str, why: &str) {
    let (status, body) = server.get("/api/me", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_eq!(error_code(&body), "unauthorized", "{why}");
}

async fn forged_tokens_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let (good, _) = server.signup("victim@example.com").await;
    assert_eq!(server.get("/api/me", &good).await.0, StatusCode::OK);
    let (kid, key, public_x) = server_key(&server).await;
    let claims = payload(&good);

    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&claims)
    );
    assert_refused(&server, &none, "alg none").await;

    // HS256 "signed" with the public key, the classic algorithm-confusion attack.
    for secret in [
        public_x.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(&public_x).unwrap(),
    ] {
        let signing_input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            b64(&claims)
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            signing_input.as_bytes(),
        );
        let hs = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_refused(&server, &hs, "HS256 with the public key").await;
    }

    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let sign = |c: &Value| jsonwebtoken::encode(&header, c, &key).unwrap();
    // Properly signed, to prove the forging helper itself is sound.
    assert_eq!(
        server.get("/api/me", &sign(&claims)).await.0,
        StatusCode::OK
    );

    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_refused(&server, &sign(&wrong_aud), "wrong aud").await;

    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil-issuer");
    assert_refused(&server, &sign(&wrong_iss), "wrong iss").await;

    let mut expired = claims.clone();
    let now = claims["iat"].as_u64().unwrap();
    expired["iat"] = json!(now - 7_200);
    expired["exp"] = json!(now - 3_600);
    assert_refused(&server, &sign(&expired), "expired").await;

    // Tampered payload: the tier upgraded to pro without re-signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut upgraded = claims.clone();
    upgraded["tier"] = json!("pro");
    parts[1] = b64(&upgraded);
    assert_refused(&server, &parts.join("."), "tampered payload").await;

    // A key id nobody published.
    let mut other = Header::new(Algorithm::EdDSA);
    other.kid = Some("not-a-key".to_owned());
    let unknown = jsonwebtoken::encode(&other, &claims, &key).unwrap();
    assert_refused(&server, &unknown, "unknown kid").await;

    // Garbage and missing tokens.
    assert_refused(&server, "not.a.jwt", "garbage").await;
    let (status, body) = common::read(
        server
            .send(reqwest::Method::GET, "/api/me", None, None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");
}
both_engines!(forged, forged_tokens_are_refused);
