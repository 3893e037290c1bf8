//! What the session engine adds to a voice turn, as percentiles over 100 turns (a perf
//! program in the style of quinn's, not a criterion micro-benchmark: a turn is a chain of
//! network round trips, and the number that matters is its distribution).
//!
//! A caller says "Hello! What is the weather like today?" (the test recording) into a live
//! session whose STT (Deepgram streaming), LLM (OpenAI SSE) and TTS (ElevenLabs) are the mock
//! server over real localhost sockets. For each turn the session's own `turn_metrics` give
//! end-of-turn decision -> first audio frame out; the mock's configured delays (STT final,
//! time to first token, TTS time to first byte; tokens arrive together so the first chunk is
//! ready with the first token) are subtracted. What is left is the pipeline's share: HTTP and
//! WebSocket client work, chunking, resampling, scheduling hops, playout. The end-of-turn
//! silence is not in it (the clock starts at the decision). Frames are fed faster than real
//! time, so 100 turns take seconds; each new question cuts the previous answer (barge-in).
//!
//! `cargo bench -p companion-benches --bench pipeline` (see `benches/README.md`).
#![allow(missing_docs, clippy::print_stdout)] // a program that prints its report

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use media::{Frame48, MediaTime, RuntimePaths, SileroModel};
use pipeline::mock::{MockConfig, MockServer};
use pipeline::session::{Providers, SessionConfig, SessionOutput, spawn_session};
use protocol::ServerEvent;

const TURNS: usize = 100;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches sits in the workspace root")
}

/// The recording as 20 ms frames, then 800 ms of silence (the turn ends after 550 ms).
fn utterance() -> Vec<[i16; 960]> {
    let path = workspace_root().join("media/testdata/hello.48k.wav");
    let mut reader = hound::WavReader::open(path).expect("media/testdata/hello.48k.wav");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("wav sample"))
        .collect();
    let mut frames: Vec<[i16; 960]> = samples
        .chunks(960)
        .map(|c| {
            let mut f = [0i16; 960];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect();
    frames.extend(std::iter::repeat_n([0i16; 960], 40));
    frames
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs one quick turn.
    let quick = !std::env::args().any(|a| a == "--bench");
    let turns = if quick { 1 } else { TURNS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(turns));
}

async fn run(turns: usize) {
    let mock_config = MockConfig {
        token_interval_ms: 0,
        ..MockConfig::default()
    };
    let mock_delay_ms =
        (mock_config.stt_latency_ms + mock_config.ttft_ms + mock_config.tts_ttfb_ms) as f64;
    let mock = MockServer::start(mock_config).await.expect("mock server");
    let mut config = mock.pipeline_config();
    config.stt.order = vec!["deepgram".into()];
    config.llm.order = vec!["openai".into()];
    config.tts.order = vec!["elevenlabs".into()];
    let providers = Providers {
        stt: Arc::new(pipeline::failover::build_stt(&config).expect("stt")),
        llm: Arc::new(pipeline::failover::build_llm(&config).expect("llm")),
        tts: Arc::new(pipeline::failover::build_tts(&config).expect("tts")),
    };
    let silero = SileroModel::load(&RuntimePaths::from_env_or(workspace_root()))
        .unwrap_or_else(|e| panic!("{e}"));
    let vad = silero.for_call().expect("per-call VAD");
    let mut session =
        spawn_session(SessionConfig::default(), providers, vad, None).expect("session");
    let utterance = utterance();
    let input = session.input.clone();
    drop(session.input);
    let mut t = 0u64;
    let mut added = Vec::with_capacity(turns);
    let mut totals = Vec::with_capacity(turns);
    for turn in 1..=turns as u64 {
        for samples in &utterance {
            let frame = Frame48::from_i16(48_000, samples, MediaTime(t)).expect("frame");
            t += 960;
            input.send(frame).await.expect("session alive");
        }
        // Read until this turn's metrics (earlier answers' audio is drained on the way).
        let latency = loop {
            let out = tokio::time::timeout(Duration::from_secs(10), session.output.recv())
                .await
                .expect("a turn within 10 s")
                .expect("session alive");
            if let SessionOutput::Event(ServerEvent::TurnMetrics(m)) = out
                && m.turn_id == turn
            {
                break m.latency;
            }
        };
        let (Some(eot), Some(out)) = (latency.end_of_turn_ms, latency.first_audio_out_ms) else {
            panic!("turn {turn} has no first audio: {latency:?}");
        };
        let total = f64::from(out - eot);
        totals.push(total);
        added.push(total - mock_delay_ms);
    }
    drop(input);
    while session.output.recv().await.is_some() {}
    let _ = session.done.await;

    for v in [&mut added, &mut totals] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "end of turn -> first audio out over {turns} turns (mock delays {mock_delay_ms} ms): \
         p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&totals, 0.5),
        percentile(&totals, 0.95),
        percentile(&totals, 0.99),
        totals[totals.len() - 1],
    );
    println!(
        "pipeline-added (minus mock delays): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&added, 0.5),
        percentile(&added, 0.95),
        percentile(&added, 0.99),
        added[added.len() - 1],
    );
}
