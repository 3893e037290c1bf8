//! Storage: one `sqlx::AnyPool` over SQLite or PostgreSQL, migrated at start-up.
//!
//! Every query is written once in the SQL both engines accept (`$n` placeholders, integers for
//! times and flags), so the same repository code passes the same tests on both.

pub(crate) mod billing;
pub(crate) mod companions;
pub(crate) mod conversations;
pub(crate) mod oauth;
pub(crate) mod profiles;
pub(crate) mod sessions;
pub(crate) mod turns;
pub(crate) mod usage;
pub(crate) mod verifications;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::{Error, redact_url};

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// An open, migrated database.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) pool: AnyPool,
    pub(crate) engine: Engine,
    /// SQLite write transactions queue here, first come first served. Left to SQLite, a
    /// transaction that finds the write lock taken sleeps in its busy handler (up to 100 ms a
    /// time): measured refresh p95 0.9 s under 16 concurrent refreshes, against ~20 ms queued.
    write_gate: Arc<Mutex<()>>,
    /// SQLite's one writer connection, apart from the readers' pool: a write that took its
    /// turn at the gate would otherwise still queue for a connection behind every waiting
    /// reader (500 chat turns at once: first reply token p95 2.5 s). `None` on PostgreSQL,
    /// and for an in-memory SQLite database, which exists once per connection pool.
    writer: Option<AnyPool>,
}

/// A transaction that writes; on SQLite it holds the write gate until it ends.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Db {
    /// Connects to `url` and applies the migrations for its engine.
    pub(crate) async fn open(
        url: &str,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let fail = |reason: String| Error::Database {
            url: redact_url(url),
            reason,
        };
        let engine = if url.starts_with("sqlite:") {
            create_sqlite_parent_dir(url).map_err(|e| fail(e.to_string()))?;
            Engine::Sqlite
        } else {
            Engine::Postgres
        };
        // SQLite: readers run in parallel (WAL), writes take the one writer connection.
        let max = if engine == Engine::Sqlite { 4 } else { 16 };
        let pool = Self::pool_options(engine, max, connect_timeout)
            .connect(url)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let migrated = match engine {
            Engine::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await,
            Engine::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await,
        };
        migrated.map_err(|e| fail(format!("migration failed: {e}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer = if engine == Engine::Sqlite && !in_memory {
            let writer = Self::pool_options(engine, 1, connect_timeout)
                .connect(url)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Some(writer)
        } else {
            None
        };
        Ok(Self {
            pool,
            engine,
            write_gate: Arc::new(Mutex::new(())),
            writer,
        })
    }

    fn pool_options(
        engine: Engine,
        max: u32,
        connect_timeout: std::time::Duration,
    ) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(connect_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers never block the writer nor wait for it. sqlx leaves the
                        // journal mode alone, and in the default rollback mode a steady stream
                        // of readers (chat turns under load) starved the writer until its busy
                        // timeout ran out ("database is locked"). The mode is stored in the
                        // file, so only the first connection to a new database changes it.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        // With WAL, NORMAL means a commit no longer waits for an fsync (the WAL
                        // is synced at checkpoints); an application crash loses nothing, a
                        // power cut may lose the last commits. FULL measured ~13 ms per commit.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
    }

    /// Begins a transaction that will write (dropping it without `commit` rolls back). Every
    /// write goes through here, single statements too: in WAL mode a transaction that read
    /// and then writes fails at once (`SQLITE_BUSY_SNAPSHOT`, no busy wait) if another
    /// connection committed in between, which the gate rules out.
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let gate = match self.engine {
            Engine::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Engine::Postgres => None,
        };
        let pool = self.writer.as_ref().unwrap_or(&self.pool);
        Ok(WriteTx {
            tx: pool.begin().await?,
            _gate: gate,
        })
    }

    /// Answers whether the database takes a trivial query.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// `sqlite://data/x.sqlite?mode=rwc` needs `data/` to exist before SQLite can create the file.
fn create_sqlite_parent_dir(url: &str) -> std::io::Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// A fresh random id: 16 random bytes, hex.
pub(crate) fn new_id() -> String {
    hex(&random_bytes::<16>())
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0_u8; N];
    // The system generator only fails if the OS has no entropy source at all.
    aws_lc_rs::rand::fill(&mut buf).expect("the operating system random source failed");
    buf
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
