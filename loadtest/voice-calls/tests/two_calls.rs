//! The generator against a real, in-process gateway whose voice sessions run on the mock
//! providers: two callers say the first turn of `call-two-turns.48k.wav`, both are answered
//! and measured, the report adds up, and the gateway frees both calls afterwards; once as
//! WebRTC calls, once as WebSocket voice sessions (`--transport ws`).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use gateway::{Config, Gateway, VoiceConfig};
use media::RuntimePaths;
use pipeline::mock::MockConfig;
use test_support::providers;
use voice_calls::{
    call::Transport,
    report::{self, Setup},
    run::{Options, run},
    script::Script,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_against_an_in_process_gateway_are_each_answered_and_measured() {
    two_calls(Transport::Webrtc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_websocket_sessions_are_each_answered_and_measured() {
    two_calls(Transport::Ws).await;
}

async fn two_calls(transport: Transport) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let deps = RuntimePaths::from_env_or(&root);

    // The companion: mock STT/LLM/TTS, Silero VAD, development tokens.
    let mock = providers::mock_server(MockConfig::default()).await;
    let factory = providers::voice_factory(&mock, VoiceConfig::default());
    let gateway = Gateway::new(Config {
        udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
        dev_tokens: true,
        dev_max_concurrent_calls: 1,
        ..Config::default()
    })
    .with_call_handler(factory.clone());
    gateway.start().await.expect("media endpoint");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway.router();
    tokio::spawn(async move { axum_serve(listener, app).await });

    // Two callers, the first 4 s of the recording (one turn), 2.5 s to hear the answer.
    let script = Arc::new(
        Script::load(
            &root.join("media/testdata/call-two-turns.48k.wav"),
            Some(Duration::from_secs(4)),
            None,
            &deps,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(script.turns.len(), 1);
    let options = Options {
        base_url: url.clone(),
        transport,
        token: "dev:ci-caller-{i}".into(),
        concurrency: 2,
        total: 2,
        ramp: Duration::from_millis(200),
        tail: Duration::from_millis(2500),
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(25),
        // The gateway runs in this process: measure this process.
        gateway_pid: Some(std::process::id()),
        sample_every: Duration::from_millis(100),
    };
    let result = run(&options, &script).await;
    let setup = Setup {
        base_url: url,
        wav: "call-two-turns.48k.wav".into(),
        turns: script.turns.clone(),
        audio_ms: 4000,
        tail_ms: 2500,
        concurrency: 2,
        total: 2,
        ramp_ms: 200,
    };
    let r = report::build(setup, &result, None);
    let text = report::human(&r);

    assert_eq!((r.calls.ok, r.calls.failed), (2, 0), "{text}");
    assert!(!r.timed_out, "{text}");
    let first = r.turns[0].first_audio_ms.expect("a reply latency");
    assert_eq!(first.n, 2, "both calls measured: {text}");
    // Wall-clock bound with 10x headroom over the ~1 s a reply takes here.
    assert!(first.max > 0.0 && first.max < 10_000.0, "{text}");
    assert_eq!(r.packets.out, 2 * (200 + 125), "{text}");
    assert!(r.packets.r#in >= 50, "the answers were heard: {text}");
    assert_eq!(r.packets.corrupt, 0, "{text}");
    for ty in ["session_started", "transcript_final", "audio_started"] {
        assert!(r.events.get(ty).copied().unwrap_or(0) >= 2, "{ty}: {text}");
    }
    let g = r.gateway.as_ref().expect("process measured");
    assert!(g.cpu_s > 0.0 && g.rss_peak_kib > 0, "{text}");
    assert_eq!(g.peak_concurrency, 2, "{text}");

    // The caller hung up with DELETE: the gateway frees both calls and sessions.
    let hung_up = Instant::now();
    while gateway.active_calls() > 0 || factory.active_sessions() > 0 {
        assert!(
            hung_up.elapsed() < Duration::from_secs(5),
            "{} calls, {} sessions still live",
            gateway.active_calls(),
            factory.active_sessions()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(factory.sessions_started(), 2);
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}
