//! Measures what the pipeline itself adds to a voice turn, against the mock providers with
//! known delays: speech end -> STT final -> LLM first token -> first chunk -> first TTS audio.
//!
//! ```text
//! cargo run --release -p pipeline --example turn_latency -- 30
//! ```
//! Prints p50/p90/p99/max of each hop's overhead (measured time minus the mock's configured
//! delay) and the Prometheus export of the turn records.
#![allow(clippy::print_stdout)] // a command-line report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use pipeline::chunker::SentenceChunker;
use pipeline::failover::{build_llm, build_stt, build_tts};
use pipeline::latency::{LatencyMetrics, Mark, TurnLatency, encode_text};
use pipeline::mock::{MockConfig, MockServer};
use pipeline::pcm::parse_wav;
use pipeline::{
    ChatMessage, LlmEvent, LlmProvider, LlmRequest, Role, SttEvent, SttProvider, TtsProvider,
    TtsRequest,
};

const HELLO_WAV: &[u8] = include_bytes!("../tests/data/hello.16k.wav");
const TTFT: u64 = 200;
const TOKEN_INTERVAL: u64 = 20;
const TTS_TTFB: u64 = 100;
const STT_LATENCY: u64 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let turns: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mock = MockServer::start(MockConfig {
        ttft_ms: TTFT,
        token_interval_ms: TOKEN_INTERVAL,
        tts_ttfb_ms: TTS_TTFB,
        stt_latency_ms: STT_LATENCY,
        ..MockConfig::default()
    })
    .await?;
    let cfg = mock.pipeline_config();
    let (stt, llm, tts) = (build_stt(&cfg)?, build_llm(&cfg)?, build_tts(&cfg)?);
    llm.warm_up_all().await;

    let metrics = LatencyMetrics::new();
    let mut hops: [Vec<f64>; 4] = Default::default();
    for _ in 0..turns {
        let turn = one_turn(&stt, &llm, &tts).await?;
        metrics.observe(&turn);
        let ms = |from, to| {
            turn.between(from, to)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        let first_chunk_tokens = 8.0; // the mock's opening clause ends at the 8th token (a comma)
        hops[0].push(ms(Mark::SpeechEnd, Mark::SttFinal) - STT_LATENCY as f64);
        hops[1].push(ms(Mark::SttFinal, Mark::LlmFirstToken) - TTFT as f64);
        hops[2].push(
            ms(Mark::LlmFirstToken, Mark::FirstSentence)
                - (first_chunk_tokens - 1.0) * TOKEN_INTERVAL as f64,
        );
        hops[3].push(ms(Mark::FirstSentence, Mark::TtsFirstAudio) - TTS_TTFB as f64);
    }
    println!("{turns} turns; overhead beyond the mock's configured delays, ms:");
    println!(
        "{:<34} {:>7} {:>7} {:>7} {:>7}",
        "hop", "p50", "p90", "p99", "max"
    );
    let names = [
        "speech end -> STT final",
        "STT final -> LLM first token",
        "first token -> first chunk",
        "first chunk -> first TTS audio",
    ];
    for (name, mut v) in names.into_iter().zip(hops) {
        v.sort_by(f64::total_cmp);
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<34} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            p(0.5),
            p(0.9),
            p(0.99),
            p(1.0)
        );
    }
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    println!("\n{}", encode_text(&registry));
    Ok(())
}

async fn one_turn(
    stt: &impl SttProvider,
    llm: &impl LlmProvider,
    tts: &impl TtsProvider,
) -> anyhow::Result<TurnLatency> {
    let mut turn = TurnLatency::new();
    let (_, pcm) = parse_wav(HELLO_WAV).ok_or_else(|| anyhow::anyhow!("bad test wav"))?;
    let chunks: Vec<Bytes> = pcm.chunks(640).map(Bytes::copy_from_slice).collect();
    let ended = Arc::new(Mutex::new(None));
    let ended_in = ended.clone();
    let audio = stream::iter(chunks)
        .chain(stream::once(async move {
            *ended_in
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            Bytes::new()
        }))
        .boxed();
    let mut transcript = String::new();
    let mut events = stt.transcribe(audio);
    while let Some(event) = events.next().await {
        if let SttEvent::Final(text) = event? {
            turn.mark(Mark::SttFinal, Instant::now());
            transcript = text;
        }
    }
    let speech_end = ended
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unwrap_or_else(Instant::now);
    turn.mark(Mark::SpeechEnd, speech_end);
    turn.mark(Mark::EndOfTurn, speech_end);

    let request = LlmRequest::new(vec![ChatMessage::new(Role::User, transcript)]);
    let mut answer = llm.stream(request);
    let mut chunker = SentenceChunker::default();
    let first_chunk = loop {
        match answer.next().await {
            Some(Ok(LlmEvent::Token(t))) => {
                turn.mark(Mark::LlmFirstToken, Instant::now());
                chunker.push(&t);
                if let Some(chunk) = chunker.pop() {
                    break chunk;
                }
            }
            Some(Ok(LlmEvent::Finished { .. })) | None => {
                break chunker.finish().unwrap_or_default();
            }
            Some(Err(e)) => return Err(e.into()),
        }
    };
    turn.mark(Mark::FirstSentence, Instant::now());
    drop(answer); // the rest of the answer is not needed for this measurement
    let mut audio = tts.synthesize(TtsRequest::new(first_chunk));
    if let Some(chunk) = audio.next().await {
        chunk?;
        turn.mark(Mark::TtsFirstAudio, Instant::now());
        turn.mark(Mark::FirstAudioOut, Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(turn)
}
