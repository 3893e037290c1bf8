//! How much CPU the gateway spends per call: N str0m peers talk to one gateway for a few
//! seconds, full duplex (a 20 ms Opus frame each way every 20 ms, as in a voice call). The
//! gateway (HTTP, media endpoint and a minimal session per call) runs alone on one OS thread,
//! so its CPU time is measured apart from the peers'.
//!
//! Not part of the normal run (it takes ~15 s): run it in release for real numbers:
//!
//! ```sh
//! cargo test -p gateway --release --test load -- --ignored --nocapture
//! ```

// The measurements go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::{
    sync::{Arc, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{RecordingPeer, tone_frames};
use gateway::{AuthError, CallHandle, Caller, CallerVerifier, Config, Gateway};
use reqwest::StatusCode;
use test_support::webrtc::post_offer;
use tokio::net::UdpSocket;

const CALLS: usize = 20;
const MEASURE: Duration = Duration::from_secs(8);

/// Every token is a user allowed many calls.
struct LoadVerifier;

impl CallerVerifier for LoadVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        Ok(Caller {
            user_id: token.to_owned(),
            tier: "load".to_owned(),
            max_concurrent_calls: 1000,
        })
    }
}

/// CPU time of one thread, from /proc (nanoseconds).
fn thread_cpu(tid_path: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("{tid_path}/schedstat")).unwrap_or_default();
    Duration::from_nanos(
        stat.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Resident memory of this process.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A minimal voice session: plays pre-encoded frames every 20 ms and drains what it hears.
async fn session(call: CallHandle) {
    let (mut audio, _messages, sender) = call.split();
    if sender.connected().await.is_err() {
        return;
    }
    let frames: Vec<Bytes> = tone_frames(50).into_iter().map(Bytes::from).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut i = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if sender.send_audio(frames[i % frames.len()].clone(), 960).await.is_err() {
                    return;
                }
                i += 1;
            }
            packet = audio.recv() => if packet.is_none() { return },
        }
    }
}

/// One peer: connects, then sends a frame every 20 ms and takes whatever arrives.
async fn peer(url: String, token: &'static str, stop: Instant) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut peer, offer, pending) =
        RecordingPeer::offer(Instant::now(), socket.local_addr().unwrap());
    let res = post_offer(&url, token, offer).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    peer.accept_answer(pending, &res.text().await.unwrap());
    let frames = tone_frames(50);
    let mut buf = vec![0u8; 2048];
    let mut next_frame = Instant::now();
    let mut sent = 0;
    while Instant::now() < stop {
        for t in std::mem::take(&mut peer.outbox) {
            let _ = socket.send_to(&t.contents, t.destination).await;
        }
        let now = Instant::now();
        if peer.seen.connected && now >= next_frame {
            peer.write_opus(now, &frames[sent % frames.len()]);
            peer.seen.audio_payloads.clear();
            sent += 1;
            next_frame += Duration::from_millis(20);
            continue;
        }
        let wake = peer.drain().min(next_frame).max(now);
        match tokio::time::timeout(wake - now, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => peer.receive(Instant::now(), from, &buf[..n]),
            Ok(Err(_)) => {}
            Err(_) => peer.tick(Instant::now()),
        }
    }
    peer.seen.audio_packets
}

#[test]
#[ignore = "a measurement, not a check: run with --release --ignored --nocapture"]
fn cpu_per_full_duplex_call() {
    // The gateway on its own thread and runtime.
    let (ready_tx, ready_rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        // `/proc/thread-self` links to `<pid>/task/<tid>`, relative to /proc.
        let tid =
            std::path::Path::new("/proc").join(std::fs::read_link("/proc/thread-self").unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let config = Config {
                udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
                ..Config::default()
            };
            let gateway = Gateway::new(config)
                .with_verifier(Arc::new(LoadVerifier))
                .with_call_handler(|call: CallHandle| {
                    tokio::spawn(session(call));
                });
            gateway.start().await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            ready_tx
                .send((url, tid.to_string_lossy().into_owned(), gateway.clone()))
                .unwrap();
            axum::serve(listener, gateway.router()).await.unwrap();
        });
    });
    let (url, tid, gateway) = ready_rx.recv().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let rss0 = rss_kib();
        let warmup = Duration::from_secs(3);
        let stop = Instant::now() + warmup + MEASURE;
        let peers: Vec<_> = (0..CALLS)
            .map(|_| tokio::spawn(peer(url.clone(), "load", stop)))
            .collect();
        tokio::time::sleep(warmup).await;
        assert_eq!(gateway.active_calls(), CALLS, "all calls connected");
        let (cpu0, t0) = (thread_cpu(&tid), Instant::now());
        // Both ends of every call live in this process and hold about the same str0m state.
        let per_side = (rss_kib().saturating_sub(rss0)) as f64 / (2 * CALLS) as f64;
        tokio::time::sleep(MEASURE).await;
        let (cpu1, t1) = (thread_cpu(&tid), Instant::now());
        let mut received = 0;
        for p in peers {
            received += p.await.unwrap();
        }
        let share = (cpu1 - cpu0).as_secs_f64() / (t1 - t0).as_secs_f64();
        println!(
            "load: {CALLS} full-duplex calls: gateway thread {:.2} % of a core in total, \
             {:.3} % per call; ~{per_side:.0} KiB resident per call side; \
             peers received {received} packets",
            share * 100.0,
            share * 100.0 / CALLS as f64
        );
        assert!(received > 0);
    });
}
