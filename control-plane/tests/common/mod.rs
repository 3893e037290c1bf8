//! Test harness: a control plane on 127.0.0.1:0 over a fresh SQLite file or a fresh PostgreSQL
//! schema, with its own Redis key prefix, and a real HTTP client.
#![allow(dead_code, unreachable_pub, unused_macros)]

pub mod mock_idp;
pub mod mock_stripe;

use std::net::SocketAddr;

use control_plane::{Argon2Config, Config, ControlPlane, EmailConfig, RateLimitRule};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

/// PostgreSQL and Redis the multi-node tests use.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The data plane's credential every test control plane accepts (`service_tokens`).
pub const SERVICE_TOKEN: &str = "test-gateway-service-credential";

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file, limits in process.
    Sqlite,
    /// A fresh PostgreSQL schema, limits in Redis.
    Postgres,
}

/// Runs one test body on both engines: `both_engines!(name, body)` where `body` is an
/// `async fn(Backend)`.
macro_rules! both_engines {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// Storage names carry their creation time, so later runs can remove what is over an hour old.
fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        "{tag}_{}_{}_{}",
        now.as_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn created_secs(name: &str) -> Option<u64> {
    name.split('_').nth(1)?.parse().ok()
}

fn stale(name: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    created_secs(name).is_some_and(|t| t + 3600 < now)
}

/// Removes test databases and schemas older than an hour (left by earlier runs).
async fn sweep(conn: Option<&mut sqlx::PgConnection>) {
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("cp_") && name.contains(".sqlite") && stale(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if let Some(conn) = conn {
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cp\\_%'")
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
        for row in rows {
            let name: String = row.get(0);
            if stale(&name) {
                let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                // Two tests may sweep at once; losing that race is harmless.
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await;
            }
        }
    }
}

/// A storage location for one test; several servers may share it.
#[derive(Debug, Clone)]
pub struct Storage {
    pub backend: Backend,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

impl Storage {
    pub async fn fresh(backend: Backend) -> Self {
        let name = unique("cp");
        match backend {
            Backend::Sqlite => {
                sweep(None).await;
                let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                Self {
                    backend,
                    database_url: format!("sqlite://{}?mode=rwc", path.display()),
                    redis_url: String::new(),
                    redis_prefix: String::new(),
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(POSTGRES_URL)
                    .await
                    .expect("postgres");
                sweep(Some(&mut conn)).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                Self {
                    backend,
                    database_url: format!("{POSTGRES_URL}?options=-c%20search_path%3D{name}"),
                    redis_url: REDIS_URL.to_owned(),
                    redis_prefix: format!("{name}:"),
                }
            }
        }
    }

    /// A configuration with cheap password hashing (tests only; defaults are OWASP's).
    pub fn config(&self) -> Config {
        Config {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_key_prefix: self.redis_prefix.clone(),
            argon2: Argon2Config {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            // Stories sign in more often than a person would; rate_limits.rs tests the limits.
            rate_limits: vec![RateLimitRule {
                name: "auth".to_owned(),
                prefix: "/api/auth".to_owned(),
                limit: 1_000,
                window_secs: 900,
            }],
            service_tokens: vec![protocol::Secret::new(SERVICE_TOKEN)],
            // Verification mail of every test lands here, not in the crate's ./data/outbox;
            // tests that read mail give each server its own folder (`outbox_dir`).
            email: EmailConfig {
                outbox_dir: std::env::temp_dir()
                    .join("cp_test_outbox")
                    .display()
                    .to_string(),
                ..EmailConfig::default()
            },
            ..Config::default()
        }
    }
}

/// A running control plane and a client for it.
pub struct Server {
    pub storage: Option<Storage>,
    pub base: String,
    pub cp: ControlPlane,
    pub http: Client,
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        let storage = Storage::fresh(backend).await;
        let mut server = Self::with_config(storage.config()).await;
        server.storage = Some(storage);
        server
    }

    pub async fn with_config(config: Config) -> Self {
        let cp = ControlPlane::start(config)
            .await
            .expect("control plane starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = cp
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            storage: None,
            base: format!("http://{addr}"),
            cp,
            http: Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(self.send(Method::GET, path, Some(token), None).await).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        read(self.send(Method::POST, path, token, Some(body)).await).await
    }

    /// POSTs as the gateway does on a user's behalf: the user's token and the data plane's
    /// credential.
    pub async fn post_as_gateway(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(control_plane::SERVICE_TOKEN_HEADER, SERVICE_TOKEN)
            .json(&body);
        read(req.send().await.expect("request sent")).await
    }

    /// Signs up `email` and returns (access, refresh).
    pub async fn signup(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/auth/signup",
                None,
                json!({"email": email, "password": "correct horse battery", "birth_year": 1990,
                       "consent_terms": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokens(&body)
    }

    pub async fn login(&self, email: &str) -> (StatusCode, Value) {
        self.post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await
    }
}

pub fn tokens(body: &Value) -> (String, String) {
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

pub async fn read(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts the error shape `{ "error": { "code", "message" } }` and returns the code.
pub fn error_code(body: &Value) -> String {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    code.to_owned()
}

/// A fresh, empty folder for one server's verification mail.
pub fn outbox_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("cp_outbox"));
    std::fs::create_dir_all(&dir).expect("outbox folder");
    dir
}

/// The verification tokens mailed to `email` in `outbox`, oldest first (the `token` parameter
/// of each link).
pub fn mailed_tokens(outbox: &std::path::Path, email: &str) -> Vec<String> {
    let mut mails: Vec<_> = std::fs::read_dir(outbox)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    mails.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    mails.sort();
    mails
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|text| text.lines().any(|l| l == format!("To: {email}")))
        .filter_map(|text| {
            let start = text.find("verify-email?token=")? + "verify-email?token=".len();
            let token: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some(token)
        })
        .collect()
}

/// Runs one SQL statement against the server's database (to age a session in a test).
pub async fn execute_sql(storage: &Storage, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&storage.database_url)
        .await
        .expect("test database");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .expect("test SQL");
    pool.close().await;
}
