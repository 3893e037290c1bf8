//! An in-process stand-in for the parts of Stripe's API the control plane calls. Like Stripe it
//! refuses a request without the secret key, without an `Idempotency-Key`, or missing a
//! required form field, and answers a repeated idempotency key with the first answer (or an
//! error when the parameters differ). Every request is recorded for the test to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

/// The secret key the mock accepts.
pub const SECRET_KEY: &str = "sk_test_mock_secret_key";
/// Prices the mock knows.
pub const PRICE_PLUS: &str = "price_plus_monthly";
pub const PRICE_PRO: &str = "price_pro_monthly";

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub idempotency_key: String,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The value of form field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Seen {
    requests: Vec<Recorded>,
    /// Idempotency key -> (form, answer), as Stripe keeps them for 24 hours.
    answers: HashMap<String, (Vec<(String, String)>, Value)>,
    sessions: u32,
}

/// A running mock; `base` goes into `stripe.api_base`.
pub struct MockStripe {
    pub base: String,
    seen: Arc<Mutex<Seen>>,
}

impl MockStripe {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(checkout))
            .route("/v1/billing_portal/sessions", post(portal))
            .route("/v1/subscriptions/{id}", post(subscription))
            .fallback(any(|| async {
                error(StatusCode::NOT_FOUND, "Unrecognized request URL")
            }))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, seen }
    }

    /// Every request received so far (including refused ones).
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().requests.clone()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response()
}

type Form = Vec<(String, String)>;

/// Checks what Stripe checks on every call; returns the form, or the refusal.
fn admit(
    seen: &Mutex<Seen>,
    path: String,
    headers: &HeaderMap,
    body: &str,
) -> Result<(Form, String), (StatusCode, &'static str)> {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap_or_default();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.lock().unwrap().requests.push(Recorded {
        path,
        idempotency_key: key.clone(),
        form: form.clone(),
    });
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SECRET_KEY}")) {
        return Err((StatusCode::UNAUTHORIZED, "Invalid API Key provided"));
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err((StatusCode::BAD_REQUEST, "expected a form body"));
    }
    // Stripe treats the key as optional; for us a missing one is a bug (a retry could pay twice).
    if key.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "missing Idempotency-Key"));
    }
    Ok((form, key))
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Answers from the idempotency store, or computes, stores and answers.
fn once(
    seen: &Mutex<Seen>,
    key: String,
    form: Vec<(String, String)>,
    make: impl FnOnce(u32) -> Value,
) -> Response {
    let mut seen = seen.lock().unwrap();
    if let Some((first_form, answer)) = seen.answers.get(&key) {
        if *first_form != form {
            return error(
                StatusCode::BAD_REQUEST,
                "Keys for idempotent requests can only be used with the same parameters",
            );
        }
        return axum::Json(answer.clone()).into_response();
    }
    seen.sessions += 1;
    let answer = make(seen.sessions);
    seen.answers.insert(key, (form, answer.clone()));
    axum::Json(answer).into_response()
}

async fn checkout(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (form, key) = match admit(&seen, "/v1/checkout/sessions".into(), &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message),
    };
    let f = |name: &str| field(&form, name);
    let reference = f("client_reference_id");
    let checks = [
        (
            f("mode") == Some("subscription"),
            "mode must be subscription",
        ),
        (
            matches!(f("line_items[0][price]"), Some(PRICE_PLUS | PRICE_PRO)),
            "No such price",
        ),
        (
            f("line_items[0][quantity]") == Some("1"),
            "quantity must be 1",
        ),
        (
            f("success_url").is_some_and(|u| u.starts_with("http")),
            "success_url required",
        ),
        (
            f("cancel_url").is_some_and(|u| u.starts_with("http")),
            "cancel_url required",
        ),
        (reference.is_some(), "client_reference_id required"),
        (
            f("metadata[profile_id]") == reference,
            "metadata[profile_id] must name the account",
        ),
        (
            f("subscription_data[metadata][profile_id]") == reference,
            "subscription_data[metadata][profile_id] must name the account",
        ),
        (
            f("customer").is_some() != f("customer_email").is_some(),
            "exactly one of customer and customer_email",
        ),
    ];
    if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
        return error(StatusCode::BAD_REQUEST, message);
    }
    once(&seen, key, form, |n| {
        json!({"id": format!("cs_test_{n}"), "object": "checkout.session", "mode": "subscription",
               "url": format!("https://checkout.stripe.com/c/pay/cs_test_{n}")})
    })
}

async fn portal(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (form, key) = match admit(&seen, "/v1/billing_portal/sessions".into(), &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message),
    };
    if !field(&form, "customer").is_some_and(|c| c.starts_with("cus_")) {
        return error(StatusCode::BAD_REQUEST, "No such customer");
    }
    if !field(&form, "return_url").is_some_and(|u| u.starts_with("http")) {
        return error(StatusCode::BAD_REQUEST, "return_url required");
    }
    once(&seen, key, form, |n| {
        json!({"id": format!("bps_{n}"), "object": "billing_portal.session",
               "url": format!("https://billing.stripe.com/p/session/bps_{n}")})
    })
}

async fn subscription(
    State(seen): State<Arc<Mutex<Seen>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (form, key) = match admit(&seen, format!("/v1/subscriptions/{id}"), &headers, &body) {
        Ok(v) => v,
        Err((status, message)) => return error(status, message),
    };
    if field(&form, "cancel_at_period_end") != Some("true") || form.len() != 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "expected cancel_at_period_end=true alone",
        );
    }
    once(&seen, key, form, |_| {
        json!({"id": id, "object": "subscription", "status": "active",
               "cancel_at_period_end": true})
    })
}
