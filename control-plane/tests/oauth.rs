//! Sign-in with Google and Discord through the authorization-code flow with PKCE, against the
//! in-tree mock identity provider.

#[macro_use]
mod common;

use common::mock_idp::{CLIENT_ID, CLIENT_SECRET, MockIdp, Person};
use common::{Backend, Server, Storage, error_code};
use control_plane::{Config, OAuthProvider};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

const REDIRECT: &str = "http://app.example/oauth/callback";

fn provider(name: &str, idp: &MockIdp) -> OAuthProvider {
    OAuthProvider {
        name: name.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: protocol::Secret::new(CLIENT_SECRET),
        redirect_uri: REDIRECT.to_owned(),
        authorize_url: format!("{}/authorize", idp.base),
        token_url: format!("{}/token", idp.base),
        userinfo_url: format!("{}/userinfo", idp.base),
        scopes: Vec::new(),
    }
}

async fn server_with_idp(backend: Backend) -> (Server, MockIdp) {
    let idp = MockIdp::start().await;
    let storage = Storage::fresh(backend).await;
    let config = Config {
        oauth_providers: vec![provider("google", &idp), provider("discord", &idp)],
        ..storage.config()
    };
    let mut server = Server::with_config(config).await;
    server.storage = Some(storage);
    (server, idp)
}

/// Plays the browser: start -> provider -> back with code and state. Returns the callback's
/// query string.
async fn browser_round_trip(server: &Server, provider: &str, start_query: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(format!(
            "{}/api/auth/oauth/{provider}/start{start_query}",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let to_idp = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_idp.contains("code_challenge_method=S256") && to_idp.contains("scope="),
        "{to_idp}"
    );
    let back = browser.get(&to_idp).send().await.unwrap();
    let to_app = back.headers()["location"].to_str().unwrap().to_owned();
    let query = to_app
        .strip_prefix(&format!("{REDIRECT}?"))
        .expect("redirected to our callback");
    query.to_owned()
}

async fn callback(server: &Server, provider: &str, query: &str) -> (StatusCode, serde_json::Value) {
    let url = format!("{}/api/auth/oauth/{provider}/callback?{query}", server.base);
    common::read(server.http.get(url).send().await.unwrap()).await
}

async fn a_new_user_signs_up_with_google_and_comes_back_later(backend: Backend) {
    let (server, idp) = server_with_idp(backend).await;
    idp.sign_in_as(Person {
        subject: "g-123".into(),
        email: "Gina@Example.com".into(),
        verified: true,
        discord_style: false,
    });

    // New identity without sign-up details: refused, nothing created.
    let query = browser_round_trip(&server, "google", "").await;
    let (status, body) = callback(&server, "google", &query).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "signup_incomplete");

    let query = browser_round_trip(&server, "google", "?birth_year=1995&consent_terms=true").await;
    let (status, body) = callback(&server, "google", &query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access, _) = common::tokens(&body);
    let (_, me) = server.get("/api/me", &access).await;
    assert_eq!(me["email"], "gina@example.com");
    assert_eq!(me["birth_year"], 1995);

    // The same state cannot be used twice.
    let (status, body) = callback(&server, "google", &query).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_oauth_state");

    // Later: a plain sign-in finds the same account.
    let query = browser_round_trip(&server, "google", "").await;
    let (status, body) = callback(&server, "google", &query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (again, _) = common::tokens(&body);
    assert_eq!(server.get("/api/me", &again).await.1["id"], me["id"]);
    assert_eq!(idp.successful_exchanges(), 3);
}
both_engines!(google, a_new_user_signs_up_with_google_and_comes_back_later);

async fn discord_links_to_the_account_with_the_same_verified_email(backend: Backend) {
    let (server, idp) = server_with_idp(backend).await;
    let (password_token, _) = server.signup("dora@example.com").await;
    let account = server.get("/api/me", &password_token).await.1["id"].clone();

    // An unverified e-mail is not enough to take over an account.
    idp.sign_in_as(Person {
        subject: "80351110224678912".into(),
        email: "dora@example.com".into(),
        verified: false,
        discord_style: true,
    });
    let query = browser_round_trip(&server, "discord", "").await;
    let (status, body) = callback(&server, "discord", &query).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "email_unverified");

    idp.sign_in_as(Person {
        subject: "80351110224678912".into(),
        email: "dora@example.com".into(),
        verified: true,
        discord_style: true,
    });
    let query = browser_round_trip(&server, "discord", "").await;
    let (status, body) = callback(&server, "discord", &query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access, _) = common::tokens(&body);
    assert_eq!(server.get("/api/me", &access).await.1["id"], account);
}
both_engines!(
    discord,
    discord_links_to_the_account_with_the_same_verified_email
);

async fn forged_or_refused_callbacks_do_not_sign_anyone_in(backend: Backend) {
    let (server, idp) = server_with_idp(backend).await;
    idp.sign_in_as(Person {
        subject: "s".into(),
        email: "x@example.com".into(),
        verified: true,
        discord_style: false,
    });
    // A made-up state.
    let (status, body) = callback(&server, "google", "code=anything&state=made-up").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_oauth_state");
    // A real state with a code the provider never issued (or an attacker's code).
    let query = browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let state = query
        .split('&')
        .find(|kv| kv.starts_with("state="))
        .unwrap();
    let (status, body) = callback(&server, "google", &format!("code=stolen&{state}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "oauth_code_rejected");
    // The user pressed "cancel".
    let (status, body) = callback(&server, "google", "error=access_denied&state=x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "oauth_denied");
    // The state belongs to one provider only.
    let query = browser_round_trip(&server, "google", "").await;
    let (status, _) = callback(&server, "discord", &query).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unknown providers do not exist.
    let (status, body) = common::read(
        server
            .http
            .get(format!("{}/api/auth/oauth/myspace/start", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    assert_eq!(idp.successful_exchanges(), 0);
}
both_engines!(
    forged_callbacks,
    forged_or_refused_callbacks_do_not_sign_anyone_in
);
