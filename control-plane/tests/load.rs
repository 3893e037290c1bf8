//! Load run (ignored by default): latency percentiles for sign-in, token refresh and listing
//! messages, over SQLite and PostgreSQL, with OWASP-default password hashing.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/cache/target-control-plane \
//!   cargo test --release -p control-plane --test load -- --ignored --nocapture --test-threads 1
//! ```
//! Client and server share the machine, so numbers are an upper bound on server latency.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Server, Storage};
use control_plane::{Argon2Config, Config};
use serde_json::json;

fn percentiles(name: &str, backend: Backend, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {backend:?} | {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(*samples.last().unwrap()),
        samples.len() as f64 / wall.as_secs_f64(),
    );
}

/// Runs `total` requests made by `make(i)` with `concurrency` in flight; returns latencies.
async fn drive<F, Fut>(total: usize, concurrency: usize, make: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = std::sync::Arc::new(make);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return out;
                }
                let t = Instant::now();
                make(i).await;
                out.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    (all, start.elapsed())
}

async fn load(backend: Backend) {
    let storage = Storage::fresh(backend).await;
    let config = Config {
        argon2: Argon2Config::default(),
        rate_limits: Vec::new(),
        tier_api_limits: false,
        max_sessions: 1_000,
        ..storage.config()
    };
    let server = std::sync::Arc::new(Server::with_config(config).await);
    let users = 16;
    for u in 0..users {
        server.signup(&format!("load{u}@example.com")).await;
    }

    let s = server.clone();
    let (samples, wall) = drive(200, 4, move |i| {
        let s = s.clone();
        async move {
            let (status, _) = s.login(&format!("load{}@example.com", i % users)).await;
            assert_eq!(status, 200);
        }
    })
    .await;
    percentiles("login (argon2id 19 MiB, t=2)", backend, samples, wall);

    // One refresh chain per worker: each refresh uses the token the previous one returned.
    let chains = {
        let mut v = Vec::new();
        for u in 0..users {
            let (_, body) = server.login(&format!("load{u}@example.com")).await;
            v.push(tokio::sync::Mutex::new(common::tokens(&body).1));
        }
        std::sync::Arc::new(v)
    };
    let s = server.clone();
    let (samples, wall) = drive(2_000, 16, move |i| {
        let s = s.clone();
        let chains = chains.clone();
        async move {
            let mut slot = chains[i % users].lock().await;
            let (status, body) = s
                .post("/api/auth/refresh", None, json!({"refresh_token": *slot}))
                .await;
            assert_eq!(status, 200, "{body}");
            *slot = common::tokens(&body).1;
        }
    })
    .await;
    percentiles("token refresh", backend, samples, wall);

    let token = server.cp.dev_token("reader@example.com").await.unwrap();
    let (_, conv) = server
        .post("/api/conversations", Some(&token), json!({}))
        .await;
    let path = format!(
        "/api/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    for i in 0..40 {
        server
            .post(
                &path,
                Some(&token),
                json!({"content": format!("message {i}: some typical chat text")}),
            )
            .await;
    }
    let s = server.clone();
    let (samples, wall) = drive(5_000, 16, move |_| {
        let s = s.clone();
        let (path, token) = (path.clone(), token.clone());
        async move {
            let (status, _) = s.get(&format!("{path}?limit=20"), &token).await;
            assert_eq!(status, 200);
        }
    })
    .await;
    percentiles("list messages (20 of 40)", backend, samples, wall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load run: release build, prints a table"]
async fn load_run() {
    println!("| engine | operation | requests | p50 ms | p95 ms | p99 ms | max ms | req/s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    load(Backend::Sqlite).await;
    load(Backend::Postgres).await;
}
