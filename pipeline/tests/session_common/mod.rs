//! Helpers for the session tests: a caller who plays a recording into a live session that
//! talks to the mock providers over real sockets, and a log of everything that came back.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use media::{Frame48, MediaTime, RuntimePaths, SileroModel};
use pipeline::latency::{LatencyMetrics, encode_text};
use pipeline::mock::{MockConfig, MockServer};
use pipeline::pcm::parse_wav;
use pipeline::session::{Providers, SessionConfig, SessionOutput, spawn_session};
use pipeline::{AudioStream, ChatMessage, SttProvider, SttStream};
use protocol::ServerEvent;
use tokio::sync::oneshot;

/// What the mock recogniser hears in each turn, in order (the mock answers with a configured
/// transcript, so each turn gets its own mock server).
pub struct TurnByTurnStt {
    voices: Vec<Arc<dyn SttProvider>>,
    next: AtomicUsize,
}

impl SttProvider for TurnByTurnStt {
    fn name(&self) -> &str {
        "turn-by-turn"
    }

    fn transcribe(&self, audio: AudioStream) -> SttStream {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.voices.len();
        self.voices[i].transcribe(audio)
    }
}

/// The shared Silero model from `.deps` (or `$COMPANION_DEPS_DIR`).
pub fn silero() -> SileroModel {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("pipeline sits in the workspace root");
    match SileroModel::load(&RuntimePaths::from_env_or(root)) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// A 48 kHz recording cut into 20 ms frames on the input media clock.
pub fn frames(wav: &[u8]) -> Vec<Frame48> {
    let (rate, pcm) = parse_wav(wav).expect("test recording is a mono 16-bit wav");
    assert_eq!(rate, 48_000);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    samples
        .chunks(960)
        .enumerate()
        .map(|(i, chunk)| {
            let mut buf = [0i16; 960];
            buf[..chunk.len()].copy_from_slice(chunk);
            Frame48::from_i16(48_000, &buf, MediaTime(i as u64 * 960)).expect("a 20 ms frame")
        })
        .collect()
}

/// One output item and when the test received it.
pub struct Received {
    pub at: Instant,
    pub output: SessionOutput,
}

/// Everything a call produced.
pub struct CallLog {
    pub received: Vec<Received>,
    pub history: Vec<ChatMessage>,
    pub mocks: Vec<MockServer>,
    /// The Prometheus exposition of the session's turn histograms.
    pub metrics_text: String,
}

impl CallLog {
    pub fn events(&self) -> impl Iterator<Item = &ServerEvent> {
        self.received.iter().filter_map(|r| match &r.output {
            SessionOutput::Event(e) => Some(e),
            _ => None,
        })
    }
}

/// Short, known provider delays (the mock's defaults: 20 ms STT, 30 ms to the first token,
/// 5 ms per token, 30 ms to the first TTS audio).
pub fn mock_config(transcript: &str) -> MockConfig {
    MockConfig {
        transcript: transcript.into(),
        ..MockConfig::default()
    }
}

/// Plays `wav` into a session in real time (20 ms per frame), then silence, until `enough`
/// says the log is complete or `limit` passes; the recogniser hears `transcripts` in turn.
pub async fn call(
    wav: &[u8],
    transcripts: &[&str],
    limit: Duration,
    enough: impl Fn(&[Received]) -> bool,
) -> CallLog {
    let mut mocks = Vec::new();
    for t in transcripts {
        mocks.push(
            MockServer::start(mock_config(t))
                .await
                .expect("mock starts"),
        );
    }
    let mut voices: Vec<Arc<dyn SttProvider>> = Vec::new();
    for m in &mocks {
        let mut c = m.pipeline_config();
        c.stt.order = vec!["deepgram".into()];
        voices.push(Arc::new(pipeline::failover::build_stt(&c).expect("stt")));
    }
    let mut c = mocks[0].pipeline_config();
    c.llm.order = vec!["openai".into()];
    c.tts.order = vec!["elevenlabs".into()];
    let providers = Providers {
        stt: Arc::new(TurnByTurnStt {
            voices,
            next: AtomicUsize::new(0),
        }),
        llm: Arc::new(pipeline::failover::build_llm(&c).expect("llm")),
        tts: Arc::new(pipeline::failover::build_tts(&c).expect("tts")),
    };
    let vad = silero().for_call().expect("per-call VAD");
    let metrics = LatencyMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut session = spawn_session(SessionConfig::default(), providers, vad, Some(metrics))
        .expect("session starts");

    let recording = frames(wav);
    let input = session.input.clone();
    drop(session.input);
    let (stop, mut stopped) = oneshot::channel::<()>();
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0.. {
            tick.tick().await;
            if stopped.try_recv().is_ok() || i > 60_000 {
                break;
            }
            let frame = match recording.get(i as usize) {
                Some(f) => *f,
                None => Frame48::silence(MediaTime(i * 960)),
            };
            if input.send(frame).await.is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut received = Vec::new();
    let mut stop = Some(stop);
    loop {
        let timeout = tokio::time::sleep(Duration::from_millis(100));
        tokio::select! {
            out = session.output.recv() => match out {
                Some(output) => received.push(Received { at: Instant::now(), output }),
                None => break,
            },
            () = timeout => {}
        }
        if stop.is_some() && (enough(&received) || started.elapsed() > limit) {
            let _ = stop.take().map(|s| s.send(()));
        }
    }
    let _ = feeder.await;
    let history = session.done.await.expect("session task ends cleanly");
    CallLog {
        received,
        history,
        mocks,
        metrics_text: encode_text(&registry),
    }
}
