//! A control plane for gateway tests: its configuration on fresh storage (a new SQLite file,
//! or a new PostgreSQL schema with Redis limits) with cheap password hashing, and a server.
//! Shared by `mod common` tests and, through `#[path]`, the chat and QUIC support modules.

use std::net::SocketAddr;

use control_plane::{Argon2Config, RateLimitRule};

pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The data plane's credential: the control plane accepts it, the test gateways send it.
pub const SERVICE_TOKEN: &str = "gateway-tests-service-credential";

/// The gateway side of [`SERVICE_TOKEN`].
pub fn service_token() -> protocol::Secret {
    protocol::Secret::new(SERVICE_TOKEN)
}

/// A name no other test (or test process) uses: `tag`, the time, the process and a counter.
pub fn unique(tag: &str) -> String {
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

/// A control-plane configuration on fresh storage named after `tag`. Password hashing is
/// cheap (tests sign up accounts, they do not test argon2) and sign-ins are not rate limited
/// in practice (1,000 per 15 minutes).
pub async fn config(tag: &str, postgres: bool) -> control_plane::Config {
    let name = unique(tag);
    let mut config = control_plane::Config {
        argon2: Argon2Config {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        rate_limits: vec![RateLimitRule {
            name: "auth".to_owned(),
            prefix: "/api/auth".to_owned(),
            limit: 1_000,
            window_secs: 900,
        }],
        service_tokens: vec![service_token()],
        ..control_plane::Config::default()
    };
    if postgres {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(POSTGRES_URL)
            .await
            .expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        config.database_url = format!("{POSTGRES_URL}?options=-c%20search_path%3D{name}");
        config.redis_url = REDIS_URL.to_owned();
        config.redis_key_prefix = format!("{name}:");
    } else {
        let path = std::env::temp_dir().join(format!("{name}.sqlite"));
        config.database_url = format!("sqlite://{}?mode=rwc", path.display());
    }
    config
}

/// Serves `app` on a free loopback port, with the peer address the rate limiter needs.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
