//! A whole run: `concurrency` callers started over a ramp, each placing calls back to back
//! until `total` calls were placed, under one hard deadline; meanwhile the gateway's CPU time
//! and memory are sampled.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use crate::{
    call::{CallRecord, CallSpec, Transport, place},
    procstat::Proc,
    script::Script,
};

/// How to load the gateway.
#[derive(Debug, Clone)]
pub struct Options {
    /// Gateway base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// WebRTC calls or WebSocket voice sessions.
    pub transport: Transport,
    /// Bearer token per call; `{i}` is replaced by the call's index (so `dev:load-{i}` gives
    /// every call its own development user).
    pub token: String,
    /// Calls live at once.
    pub concurrency: usize,
    /// Calls placed in all (at least `concurrency`); beyond it, callers redial in waves.
    pub total: usize,
    /// The first wave's calls start evenly spread over this.
    pub ramp: Duration,
    /// Silence after the recording, while the last reply plays.
    pub tail: Duration,
    /// Time a call gets from POST to connected.
    pub connect_timeout: Duration,
    /// The run stops here whatever happens.
    pub timeout: Duration,
    /// The gateway process to measure, if any.
    pub gateway_pid: Option<u32>,
    /// How often CPU and memory are sampled.
    pub sample_every: Duration,
}

/// One reading of the gateway process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Since the run started.
    pub at: Duration,
    /// Gateway CPU time so far.
    pub cpu: Duration,
    /// Gateway resident memory, KiB.
    pub rss_kib: u64,
    /// Calls connected at that moment.
    pub connected: usize,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// One per call placed.
    pub calls: Vec<CallRecord>,
    /// Wall time of the run.
    pub wall: Duration,
    /// Gateway readings (empty without a pid).
    pub samples: Vec<Sample>,
    /// Gateway RSS after the calls ended and a short settle, KiB.
    pub rss_after_kib: Option<u64>,
    /// This generator's own CPU time (it shares the machine with the gateway).
    pub client_cpu: Option<Duration>,
    /// Whether the hard timeout cut the run short.
    pub timed_out: bool,
}

/// Places the calls and waits for them (or the deadline).
pub async fn run(options: &Options, script: &Arc<Script>) -> RunResult {
    let start = Instant::now();
    let deadline = start + options.timeout;
    let me = Proc::this();
    let client_cpu0 = me.cpu().ok();
    let connected = Arc::new(AtomicUsize::new(0));
    let gateway = options.gateway_pid.map(Proc::pid);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = gateway.clone().map(|proc| {
        tokio::spawn(sample(
            proc,
            start,
            options.sample_every,
            connected.clone(),
            stop_rx,
        ))
    });

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(options.concurrency)
        .build()
        .unwrap_or_default();
    let next = Arc::new(AtomicUsize::new(0));
    let concurrency = options.concurrency.max(1);
    let total = options.total.max(concurrency);
    let mut callers = tokio::task::JoinSet::new();
    for slot in 0..concurrency {
        let delay = options.ramp.mul_f64(slot as f64 / concurrency as f64);
        let (http, next, connected, script) = (
            http.clone(),
            next.clone(),
            connected.clone(),
            script.clone(),
        );
        let options = options.clone();
        callers.spawn(async move {
            tokio::time::sleep(delay).await;
            let mut records = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let spec = CallSpec {
                    base_url: options.base_url.clone(),
                    transport: options.transport,
                    token: options.token.replace("{i}", &i.to_string()),
                    script: script.clone(),
                    tail: options.tail,
                    connect_timeout: options.connect_timeout,
                    deadline,
                };
                records.push(place(&spec, &http, &connected).await);
            }
            records
        });
    }
    let mut calls = Vec::with_capacity(total);
    while let Some(done) = callers.join_next().await {
        match done {
            Ok(records) => calls.extend(records),
            Err(e) => calls.push(CallRecord {
                failure: Some(format!("caller task failed: {e}")),
                ..CallRecord::default()
            }),
        }
    }
    let wall = start.elapsed();
    let timed_out = Instant::now() >= deadline;
    let client_cpu = client_cpu0.and_then(|c0| Some(me.cpu().ok()?.saturating_sub(c0)));

    // Let the gateway release what the calls held before reading its memory again.
    let mut rss_after_kib = None;
    if let Some(proc) = &gateway {
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss_after_kib = proc.rss_kib().ok();
    }
    let _ = stop_tx.send(true);
    let samples = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    RunResult {
        calls,
        wall,
        samples,
        rss_after_kib,
        client_cpu,
        timed_out,
    }
}

async fn sample(
    proc: Proc,
    start: Instant,
    every: Duration,
    connected: Arc<AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        let (Ok(cpu), Ok(rss_kib)) = (proc.cpu(), proc.rss_kib()) else {
            break;
        };
        out.push(Sample {
            at: start.elapsed(),
            cpu,
            rss_kib,
            connected: connected.load(Relaxed),
        });
        if *stop.borrow() {
            break;
        }
    }
    out
}
