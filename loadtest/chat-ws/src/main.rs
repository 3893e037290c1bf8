//! WebSocket chat load client for `/v1/chat/ws`.
//!
//! - `setup`: signs up users over the control plane's API and gives each a conversation;
//!   writes `[{token, conversation}]` for this tool and for `loadtest/k6/chat-ws.js`.
//! - `idle`: opens N connections and reports the gateway's resident memory per connection
//!   (RSS delta of `--pid` / N).
//! - `stream`: C connections each send M messages one after another and read the streamed
//!   replies; reports token deltas per second, per CPU-second of `--pid` (that is, per core),
//!   and the latency added on top of the mock model's emission schedule.
//!
//! Run against a release build on this machine only: `loadtest/chat-ws/run.sh` does it all.
// A load tool's report is its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

#[derive(Parser)]
#[command(about = "WebSocket chat load client")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign up users and create one conversation each.
    Setup {
        /// Service base URL (control plane and gateway in one process).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[arg(long, default_value = "chat-users.json")]
        out: String,
    },
    /// Open idle connections and measure the gateway's memory per connection.
    Idle {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value = "chat-users.json")]
        users: String,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// The gateway's process id (its RSS is read from /proc).
        #[arg(long)]
        pid: u32,
        /// Seconds to hold the connections open after measuring.
        #[arg(long, default_value_t = 2)]
        hold_secs: u64,
    },
    /// Stream replies and measure throughput and added latency.
    Stream {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value = "chat-users.json")]
        users: String,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Messages each connection sends, one after another.
        #[arg(long, default_value_t = 5)]
        messages: usize,
        #[arg(long)]
        pid: u32,
        /// The mock model's time to first token, ms (`MockConfig::ttft_ms`).
        #[arg(long, default_value_t = 30)]
        ttft_ms: u64,
        /// The mock model's interval between tokens, ms (`MockConfig::token_interval_ms`).
        #[arg(long, default_value_t = 5)]
        token_interval_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    token: String,
    conversation: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Setup { url, users, out } => setup(&url, users, &out).await,
        Command::Idle {
            url,
            users,
            connections,
            pid,
            hold_secs,
        } => idle(&url, &load_users(&users)?, connections, pid, hold_secs).await,
        Command::Stream {
            url,
            users,
            connections,
            messages,
            pid,
            ttft_ms,
            token_interval_ms,
        } => {
            let schedule = (ttft_ms as f64, token_interval_ms as f64);
            stream(
                &url,
                &load_users(&users)?,
                connections,
                messages,
                pid,
                schedule,
            )
            .await
        }
    }
}

fn load_users(path: &str) -> anyhow::Result<Vec<User>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let users: Vec<User> = serde_json::from_str(&text)?;
    if users.is_empty() {
        bail!("{path} holds no users; run `setup` first");
    }
    Ok(users)
}

async fn setup(url: &str, users: usize, out: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let run = std::process::id();
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..users {
        let (http, url, limit) = (http.clone(), url.to_owned(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            let body = json!({"email": format!("load-{run}-{i}@example.com"),
                "password": "correct horse battery", "birth_year": 1990, "consent_terms": true});
            let r: Value = http
                .post(format!("{url}/api/auth/signup"))
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token = r["access_token"]
                .as_str()
                .context("access_token")?
                .to_owned();
            let c: Value = http
                .post(format!("{url}/api/conversations"))
                .bearer_auth(&token)
                .json(&json!({"title": "load"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let conversation = c["id"].as_str().context("conversation id")?.to_owned();
            anyhow::Ok(User {
                token,
                conversation,
            })
        }));
    }
    let mut made = Vec::with_capacity(users);
    for t in tasks {
        made.push(t.await??);
    }
    std::fs::write(out, serde_json::to_string(&made)?)?;
    println!("setup: {users} users with a conversation each -> {out}");
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: &str) -> anyhow::Result<Ws> {
    let ws_url = format!("{}/v1/chat/ws", url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("companion.v1"),
    );
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let hello = next_event(&mut ws).await?;
    if hello["type"] != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(ws)
}

async fn next_event(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Text(t) => return Ok(serde_json::from_str(&t)?),
            Message::Close(frame) => bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Resident memory of `pid`, bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// CPU seconds (user + system) `pid` has used.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

async fn open_many(url: &str, users: &[User], n: usize) -> anyhow::Result<Vec<Ws>> {
    let limit = Arc::new(Semaphore::new(200));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (url, token, limit) = (
            url.to_owned(),
            users[i % users.len()].token.clone(),
            limit.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            connect(&url, &token).await
        }));
    }
    let mut open = Vec::with_capacity(n);
    for t in tasks {
        open.push(t.await??);
    }
    Ok(open)
}

async fn idle(url: &str, users: &[User], n: usize, pid: u32, hold: u64) -> anyhow::Result<()> {
    let before = rss(pid)?;
    let started = Instant::now();
    let open = open_many(url, users, n).await?;
    let opened_in = started.elapsed();
    // Let allocators settle before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(pid)?;
    let per = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "idle: {n} connections opened in {:.1} s; gateway RSS {:.1} MiB -> {:.1} MiB; {:.1} KiB per idle connection",
        opened_in.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per / 1024.0
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(open);
    Ok(())
}

struct Sample {
    /// Send to first delta, minus the mock's time to first token, ms.
    first_extra_ms: f64,
    /// Each later delta's lateness against the mock's pace from the first delta, ms.
    lag_ms: Vec<f64>,
    deltas: usize,
}

async fn one_connection(
    url: String,
    user: User,
    messages: usize,
    interval: f64,
    ttft: f64,
) -> anyhow::Result<Vec<Sample>> {
    let mut ws = connect(&url, &user.token).await?;
    let mut samples = Vec::with_capacity(messages);
    for m in 0..messages {
        let request = json!({"type": "send_message", "requestId": format!("r{m}"),
            "conversationId": user.conversation, "content": format!("load message number {m}")});
        let sent = Instant::now();
        ws.send(Message::text(request.to_string())).await?;
        let mut first: Option<Instant> = None;
        let mut lag = Vec::new();
        let mut deltas = 0;
        loop {
            let e = next_event(&mut ws).await?;
            match e["type"].as_str() {
                Some("message_delta") => {
                    let now = Instant::now();
                    let f = *first.get_or_insert(now);
                    let expected = deltas as f64 * interval;
                    lag.push(((now - f).as_secs_f64() * 1000.0 - expected).max(0.0));
                    deltas += 1;
                }
                Some("error") => bail!("error event: {e}"),
                Some("typing_stop") => break,
                _ => {}
            }
        }
        let first_extra_ms = first.map_or(f64::NAN, |f| (f - sent).as_secs_f64() * 1000.0 - ttft);
        samples.push(Sample {
            first_extra_ms,
            lag_ms: lag,
            deltas,
        });
    }
    Ok(samples)
}

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "n/a".to_owned();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

async fn stream(
    url: &str,
    users: &[User],
    connections: usize,
    messages: usize,
    pid: u32,
    (ttft, interval): (f64, f64),
) -> anyhow::Result<()> {
    let cpu_before = cpu_secs(pid)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        // One connection per user: a user's turns are serialised by its conversation.
        let user = users[i % users.len()].clone();
        tasks.push(tokio::spawn(one_connection(
            url.to_owned(),
            user,
            messages,
            interval,
            ttft,
        )));
    }
    let mut samples = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Ok(s) => samples.extend(s),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("connection failed: {e:#}");
                }
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid)? - cpu_before;
    let deltas: usize = samples.iter().map(|s| s.deltas).sum();
    println!(
        "stream: {connections} connections x {messages} messages: {} replies, {deltas} deltas in {wall:.1} s ({failed} connections failed)",
        samples.len()
    );
    println!(
        "  {:.0} deltas/s; service CPU {cpu:.2} s -> {:.0} deltas per CPU-second (per core); {:.1} % of one core per streaming reply",
        deltas as f64 / wall,
        deltas as f64 / cpu.max(0.001),
        cpu / wall * 100.0 / connections as f64
    );
    println!(
        "  send -> first delta, beyond the mock's {ttft} ms TTFT (control-plane turn + gateway): {}",
        percentiles(
            samples
                .iter()
                .map(|s| s.first_extra_ms)
                .filter(|v| v.is_finite())
                .collect()
        )
    );
    println!(
        "  later deltas, lateness against the mock's {interval} ms pace: {}",
        percentiles(
            samples
                .iter()
                .flat_map(|s| s.lag_ms.iter().copied())
                .collect()
        )
    );
    Ok(())
}
