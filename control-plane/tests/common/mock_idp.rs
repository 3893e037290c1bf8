//! A small OAuth2 / OIDC identity provider for tests: `/authorize` approves at once and
//! redirects with a code, `/token` checks client credentials, redirect URI and the PKCE
//! verifier (S256), `/userinfo` returns the configured person in Google or Discord style.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";

/// Who the provider says is signing in.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub email: String,
    pub verified: bool,
    /// Answer user info the way Discord does (`id`, `verified`) instead of OIDC.
    pub discord_style: bool,
}

#[derive(Default)]
struct Inner {
    person: Option<Person>,
    codes: HashMap<String, (String, String)>,
    tokens: HashMap<String, Person>,
    exchanges: u32,
}

#[derive(Clone)]
pub struct MockIdp {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockIdp {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, inner }
    }

    pub fn sign_in_as(&self, person: Person) {
        self.inner.lock().unwrap().person = Some(person);
    }

    pub fn successful_exchanges(&self) -> u32 {
        self.inner.lock().unwrap().exchanges
    }
}

async fn authorize(
    State(s): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = format!("code-{}", rand_suffix());
    let challenge = q["code_challenge"].clone();
    let redirect = q["redirect_uri"].clone();
    s.lock()
        .unwrap()
        .codes
        .insert(code.clone(), (challenge, redirect.clone()));
    let query =
        serde_urlencoded::to_string([("code", code.as_str()), ("state", q["state"].as_str())])
            .unwrap();
    Redirect::to(&format!("{redirect}?{query}")).into_response()
}

async fn token(
    State(s): State<Arc<Mutex<Inner>>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let refuse = || {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    let mut inner = s.lock().unwrap();
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        || f.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return refuse();
    }
    // Codes are single use.
    let Some((challenge, redirect)) = f.get("code").and_then(|c| inner.codes.remove(c)) else {
        return refuse();
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed =
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    if computed != challenge || f.get("redirect_uri") != Some(&redirect) {
        return refuse();
    }
    let Some(person) = inner.person.clone() else {
        return refuse();
    };
    let access = format!("at-{}", rand_suffix());
    inner.tokens.insert(access.clone(), person);
    inner.exchanges += 1;
    Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn userinfo(State(s): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(p) = s.lock().unwrap().tokens.get(token).cloned() else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let body: Value = if p.discord_style {
        json!({"id": p.subject, "username": "player", "email": p.email, "verified": p.verified})
    } else {
        json!({"sub": p.subject, "email": p.email, "email_verified": p.verified})
    };
    Json(body).into_response()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
