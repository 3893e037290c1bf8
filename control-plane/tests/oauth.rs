//! Sign-in with Google and Discord through the authorization-code flow with PKCE, against the
//! in-tree mock identity provider.

mod common;

use common::mock_idp::{CLIENT_ID, CLIENT_SECRET, MockIdp, Person};
use common::{Backend, Server, Storage, error_code};
use control_plane::{Config, EmailConfig, OAuthProvider};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::json;
use test_support::both_engines;

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
    let (server, idp, _) = server_with_idp_and_outbox(backend).await;
    (server, idp)
}

/// Also returns the folder the server's verification mail goes to.
async fn server_with_idp_and_outbox(backend: Backend) -> (Server, MockIdp, std::path::PathBuf) {
    let idp = MockIdp::start().await;
    let storage = Storage::fresh(backend).await;
    let outbox = common::outbox_dir();
    let config = Config {
        oauth_providers: vec![provider("google", &idp), provider("discord", &idp)],
        email: EmailConfig {
            outbox_dir: outbox.display().to_string(),
            ..EmailConfig::default()
        },
        ..storage.config()
    };
    let mut server = Server::with_config(config).await;
    server.storage = Some(storage);
    (server, idp, outbox)
}

/// What a browser holds after the provider sent it back: the callback's query string and the
/// nonce cookie `/start` set (`name=value`).
struct Return {
    query: String,
    cookie: String,
}

/// Plays the browser: start -> provider -> back with code and state.
async fn browser_round_trip(server: &Server, provider: &str, start_query: &str) -> Return {
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
    let set_cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        &format!("Path=/api/auth/oauth/{provider}/callback"),
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
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
    Return {
        query: query.to_owned(),
        cookie,
    }
}

/// The browser arriving at the callback with the provider's query and `cookie` (if any).
async fn callback_with(
    server: &Server,
    provider: &str,
    query: &str,
    cookie: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let url = format!("{}/api/auth/oauth/{provider}/callback?{query}", server.base);
    let mut req = server.http.get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    common::read(req.send().await.unwrap()).await
}

/// The browser that started the sign-in finishing it.
async fn callback(
    server: &Server,
    provider: &str,
    back: &Return,
) -> (StatusCode, serde_json::Value) {
    callback_with(server, provider, &back.query, Some(&back.cookie)).await
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
    let back = browser_round_trip(&server, "google", "").await;
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "signup_incomplete");

    let back = browser_round_trip(&server, "google", "?birth_year=1995&consent_terms=true").await;
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access, _) = common::tokens(&body);
    let (_, me) = server.get("/api/me", &access).await;
    assert_eq!(me["email"], "gina@example.com");
    assert_eq!(me["birth_year"], 1995);

    // The same state cannot be used twice.
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_oauth_state");

    // Later: a plain sign-in finds the same account.
    let back = browser_round_trip(&server, "google", "").await;
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (again, _) = common::tokens(&body);
    assert_eq!(server.get("/api/me", &again).await.1["id"], me["id"]);
    assert_eq!(idp.successful_exchanges(), 3);
}
both_engines!(google, a_new_user_signs_up_with_google_and_comes_back_later);

async fn discord_links_to_the_account_with_the_same_verified_email(backend: Backend) {
    let (server, idp, outbox) = server_with_idp_and_outbox(backend).await;
    let (password_token, _) = server.signup("dora@example.com").await;
    let account = server.get("/api/me", &password_token).await.1["id"].clone();
    // Linking needs the account holder to have proven the address too (the link in the mail).
    let token = common::mailed_tokens(&outbox, "dora@example.com").remove(0);
    let (status, body) = server
        .post("/api/auth/verify-email", None, json!({"token": token}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An unverified e-mail is not enough to take over an account.
    idp.sign_in_as(Person {
        subject: "80351110224678912".into(),
        email: "dora@example.com".into(),
        verified: false,
        discord_style: true,
    });
    let back = browser_round_trip(&server, "discord", "").await;
    let (status, body) = callback(&server, "discord", &back).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "email_unverified");

    idp.sign_in_as(Person {
        subject: "80351110224678912".into(),
        email: "dora@example.com".into(),
        verified: true,
        discord_style: true,
    });
    let back = browser_round_trip(&server, "discord", "").await;
    let (status, body) = callback(&server, "discord", &back).await;
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
    let (status, body) =
        callback_with(&server, "google", "code=anything&state=made-up", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_oauth_state");
    // A real state with a code the provider never issued (or an attacker's code).
    let back = browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let state = back
        .query
        .split('&')
        .find(|kv| kv.starts_with("state="))
        .unwrap();
    let (status, body) = callback_with(
        &server,
        "google",
        &format!("code=stolen&{state}"),
        Some(&back.cookie),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "oauth_code_rejected");
    // The user pressed "cancel".
    let (status, body) =
        callback_with(&server, "google", "error=access_denied&state=x", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "oauth_denied");
    // The state belongs to one provider only.
    let back = browser_round_trip(&server, "google", "").await;
    let (status, _) = callback(&server, "discord", &back).await;
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

fn google_person(subject: &str, email: &str) -> Person {
    Person {
        subject: subject.into(),
        email: email.into(),
        verified: true,
        discord_style: false,
    }
}

async fn an_attacker_who_signs_up_first_with_the_victims_address_does_not_get_their_google_sign_in(
    backend: Backend,
) {
    let (server, idp) = server_with_idp(backend).await;
    // The attacker registers the victim's address with a password of their own choosing.
    let (attacker, _) = server.signup("victim@example.com").await;
    let (_, me) = server.get("/api/me", &attacker).await;
    assert_eq!(me["email_verified"], false, "{me}");

    // Later the victim signs in with Google, which confirms the address is theirs.
    idp.sign_in_as(google_person("g-victim", "victim@example.com"));
    for _ in 0..2 {
        let back =
            browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
        let (status, body) = callback(&server, "google", &back).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(error_code(&body), "account_exists_unverified");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("password"),
            "{body}"
        );
    }
    // Nothing was linked: the attacker's account has no Google identity, so the victim's next
    // attempt is refused the same way instead of landing in the attacker's account.
    let storage = server.storage.as_ref().unwrap();
    let pool = {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&storage.database_url).await.unwrap()
    };
    let linked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oauth_identities")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(linked, 0);
}
both_engines!(
    presignup_takeover,
    an_attacker_who_signs_up_first_with_the_victims_address_does_not_get_their_google_sign_in
);

async fn a_new_user_confirms_their_address_from_the_mailed_link_and_then_links_google(
    backend: Backend,
) {
    let (server, idp, outbox) = server_with_idp_and_outbox(backend).await;
    let (access, _) = server.signup("Hana@Example.com").await;
    let (_, me) = server.get("/api/me", &access).await;
    assert_eq!(me["email_verified"], false);

    // The mail is in the outbox folder; asking again at once is refused.
    let tokens = common::mailed_tokens(&outbox, "hana@example.com");
    assert_eq!(tokens.len(), 1, "one mail");
    let (status, body) = server
        .post("/api/auth/verify-email/resend", Some(&access), json!({}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "rate_limited");

    // Opening the link (as a mail scanner does before the person sees the mail) shows a page
    // asking to confirm; it verifies nothing by itself.
    let link = format!("{}/api/auth/verify-email?token={}", server.base, tokens[0]);
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let page = page.text().await.unwrap();
    assert!(
        page.contains("method=post") && page.contains(&tokens[0]),
        "{page}"
    );
    assert_eq!(
        server.get("/api/me", &access).await.1["email_verified"],
        false
    );

    // The person presses the button: the page's form posts the token.
    let confirmed = server
        .http
        .post(format!("{}/api/auth/verify-email", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", tokens[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    let (_, me) = server.get("/api/me", &access).await;
    assert_eq!(me["email_verified"], true);
    // Presenting the token again (an app posting JSON) answers the same and changes nothing.
    let (status, body) = server
        .post("/api/auth/verify-email", None, json!({"token": tokens[0]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "hana@example.com");
    assert_eq!(body["email_verified"], true);
    let (status, body) = server
        .post("/api/auth/verify-email/resend", Some(&access), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "already_verified");

    // Now Google sign-in with the same (confirmed) address lands in this account.
    idp.sign_in_as(google_person("g-hana", "hana@example.com"));
    let back = browser_round_trip(&server, "google", "").await;
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (google_access, _) = common::tokens(&body);
    assert_eq!(
        server.get("/api/me", &google_access).await.1["id"],
        me["id"]
    );
}
both_engines!(
    verification_happy_path,
    a_new_user_confirms_their_address_from_the_mailed_link_and_then_links_google
);

async fn a_verification_link_is_bound_to_its_address_and_expires(backend: Backend) {
    let (server, _idp, outbox) = server_with_idp_and_outbox(backend).await;
    let storage = server.storage.clone().unwrap();
    let (ivy, _) = server.signup("ivy@example.com").await;
    let (jon, _) = server.signup("jon@example.com").await;
    let ivy_token = common::mailed_tokens(&outbox, "ivy@example.com").remove(0);
    let jon_token = common::mailed_tokens(&outbox, "jon@example.com").remove(0);

    // Ivy's address changes after the mail went out: the old link verifies nothing.
    common::execute_sql(
        &storage,
        "UPDATE profiles SET email = 'ivy.new@example.com' WHERE email = 'ivy@example.com'",
    )
    .await;
    let (status, body) = server
        .post("/api/auth/verify-email", None, json!({"token": ivy_token}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_verification_token");
    assert_eq!(server.get("/api/me", &ivy).await.1["email_verified"], false);

    // Jon's link has expired.
    common::execute_sql(&storage, "UPDATE email_verifications SET expires_at = 0").await;
    let (status, body) = server
        .post("/api/auth/verify-email", None, json!({"token": jon_token}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_verification_token");
    assert_eq!(server.get("/api/me", &jon).await.1["email_verified"], false);

    // A made-up token.
    let (status, _) = server
        .post("/api/auth/verify-email", None, json!({"token": "made-up"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Markup in a link's token is never echoed into the page.
    let link = format!(
        "{}/api/auth/verify-email?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        server.base
    );
    let (status, body) = common::read(server.http.get(&link).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_verification_token");
}
both_engines!(
    verification_binding,
    a_verification_link_is_bound_to_its_address_and_expires
);

async fn a_callback_without_the_starting_browsers_cookie_is_refused(backend: Backend) {
    let (server, idp) = server_with_idp(backend).await;
    // Login CSRF: the attacker starts a sign-in with their own Google account, stops at the
    // redirect back, and makes the victim's browser open that callback URL.
    idp.sign_in_as(google_person("g-attacker", "attacker@example.com"));
    let attackers =
        browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let (status, body) = callback_with(&server, "google", &attackers.query, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "oauth_browser_mismatch");

    // The victim's browser holds its own nonce from a sign-in it started: still refused.
    let attackers =
        browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let victims = browser_round_trip(&server, "google", "").await;
    let (status, body) =
        callback_with(&server, "google", &attackers.query, Some(&victims.cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "oauth_browser_mismatch");
    // The code was never exchanged, so no one was signed in.
    assert_eq!(idp.successful_exchanges(), 0);

    // The browser that started a sign-in finishes it; the answer clears the cookie and is
    // not cached.
    let mine = browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let url = format!(
        "{}/api/auth/oauth/google/callback?{}",
        server.base, mine.query
    );
    let resp = server
        .http
        .get(url)
        .header("cookie", &mine.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("cp_oauth_nonce=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
}
both_engines!(
    login_csrf,
    a_callback_without_the_starting_browsers_cookie_is_refused
);

async fn a_stolen_access_token_of_an_oauth_account_cannot_set_a_password(backend: Backend) {
    let (server, idp) = server_with_idp(backend).await;
    idp.sign_in_as(google_person("g-kim", "kim@example.com"));
    let back = browser_round_trip(&server, "google", "?birth_year=1990&consent_terms=true").await;
    let (status, body) = callback(&server, "google", &back).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (stolen, _) = common::tokens(&body);
    assert_eq!(
        server.get("/api/me", &stolen).await.1["email_verified"],
        true
    );

    // The session was signed into an hour ago; a thief holds a current access token of it.
    common::execute_sql(
        server.storage.as_ref().unwrap(),
        "UPDATE refresh_tokens SET family_started_us = family_started_us - 3600000000",
    )
    .await;
    for attempt in [
        json!({"new_password": "the thief's password"}),
        // The constant passwordless accounts used to be checked against.
        json!({"current_password": "not a real password", "new_password": "the thief's password"}),
    ] {
        let (status, body) = server
            .post("/api/auth/password", Some(&stolen), attempt)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error_code(&body), "reauthentication_required");
    }
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "kim@example.com", "password": "the thief's password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Kim signs in again with Google and sets a password within the window.
    let back = browser_round_trip(&server, "google", "").await;
    let (_, body) = callback(&server, "google", &back).await;
    let (fresh, _) = common::tokens(&body);
    let (status, body) = server
        .post(
            "/api/auth/password",
            Some(&fresh),
            json!({"new_password": "kim's own password"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "kim@example.com", "password": "kim's own password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
both_engines!(
    passwordless_password,
    a_stolen_access_token_of_an_oauth_account_cannot_set_a_password
);
