//! A client without WebRTC holds a voice conversation over the chat WebSocket: it sends
//! `start_session`, streams its microphone as binary audio frames in real time (the two-turn
//! recording: "hello, what is the weather like today", then "can you help me build a house
//! in Minecraft"), and hears the companion answer in binary audio frames in the format it
//! asked for, with viseme frames and the same JSON events a WebRTC caller gets. Interrupting
//! cuts the answer (the next one starts with `DISCONTINUITY`); `hang_up` ends the session;
//! bad input gets typed errors; one call limit covers WebRTC calls and WebSocket sessions; a
//! draining node says `goodbye` and ends the session at its deadline. After every test the
//! node holds no session, no call slot and no task for them.

// The measured timings go to the test log on purpose.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::voice::{VoiceNode, dial, voice_node};
use futures_util::{SinkExt as _, StreamExt as _};
use gateway::{Config, MediaCensus};
use media::{Frame48, MediaTime, Resampler48To16};
use protocol::{
    Frame, FrameFlags, FrameType, ServerEvent,
    control::ErrorCode,
    viseme::VisemeFrame,
    voice::{AudioCodec, AudioFormat, EndReason},
};
use serde_json::json;
use test_support::ws::{self, Ws};
use tokio_tungstenite::tungstenite::Message;

const TWO_TURNS: &[u8] = include_bytes!("../../media/testdata/call-two-turns.48k.wav");

/// What the mock recogniser hears in every turn.
const HEARD: &str = "hello what is the weather like today";

const PCM_16K: AudioFormat = AudioFormat {
    codec: AudioCodec::PcmS16le,
    sample_rate: 16_000,
    channels: 1,
};
const PCM_24K_STEREO: AudioFormat = AudioFormat {
    codec: AudioCodec::PcmS16le,
    sample_rate: 24_000,
    channels: 2,
};
const OPUS: AudioFormat = AudioFormat {
    codec: AudioCodec::Opus,
    sample_rate: 48_000,
    channels: 1,
};

async fn node() -> VoiceNode {
    voice_node(Config::default(), HEARD).await
}

/// A WebSocket client on `node`'s chat endpoint, past its `hello`.
struct Client {
    ws: Ws,
    events: Vec<ServerEvent>,
    frames: Vec<Frame>,
    /// Index into `frames` of each event's arrival, for ordering checks.
    frames_at_event: Vec<usize>,
}

impl Client {
    async fn connect(node: &VoiceNode, token: &str) -> Self {
        let (ws, _) = ws::connect(&ws::chat_url(&node.url), token).await;
        let mut client = Self {
            ws,
            events: Vec::new(),
            frames: Vec::new(),
            frames_at_event: Vec::new(),
        };
        client
            .until(Duration::from_secs(5), |c| c.count("hello") == 1)
            .await;
        client
    }

    async fn send_json(&mut self, value: serde_json::Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    async fn send_binary(&mut self, bytes: Bytes) {
        self.ws.send(Message::Binary(bytes)).await.expect("send");
    }

    async fn start(&mut self, request_id: &str, input: AudioFormat, output: AudioFormat) {
        self.send_json(json!({
            "type": "start_session",
            "requestId": request_id,
            "inputAudio": input,
            "outputAudio": output,
            "visemes": true,
        }))
        .await;
    }

    /// Reads what arrives for up to `d`.
    async fn read_for(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        loop {
            let message = match tokio::time::timeout_at(end, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(message))) => message,
                Ok(other) => panic!("the connection ended: {other:?}; events {:?}", self.events),
            };
            match message {
                Message::Text(text) => {
                    let event = ServerEvent::from_json_str(text.as_str())
                        .unwrap_or_else(|e| panic!("{text}: {e}"));
                    self.events.push(event);
                    self.frames_at_event.push(self.frames.len());
                }
                Message::Binary(bytes) => {
                    self.frames
                        .push(Frame::decode(&bytes).expect("a valid binary frame"));
                }
                _ => {}
            }
        }
    }

    /// Reads until `done`; panics after `limit`.
    async fn until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        let end = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < end,
                "timed out after {limit:?}: events {:?}",
                self.events
            );
            self.read_for(Duration::from_millis(20)).await;
        }
    }

    fn count(&self, type_name: &str) -> usize {
        self.events
            .iter()
            .filter(|e| e.type_name() == type_name)
            .count()
    }

    fn errors(&self) -> Vec<(ErrorCode, Option<String>, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Error(e) => Some((e.code, e.request_id.clone(), e.message.clone())),
                _ => None,
            })
            .collect()
    }

    fn audio(&self) -> impl Iterator<Item = &Frame> {
        self.frames
            .iter()
            .filter(|f| f.frame_type == FrameType::Audio)
    }

    fn ended(&self) -> Option<EndReason> {
        self.events.iter().find_map(|e| match e {
            ServerEvent::SessionEnded(e) => Some(e.reason),
            _ => None,
        })
    }
}

/// The two-turn recording as 20 ms frames of 48 kHz samples.
fn recording() -> Vec<Frame48> {
    let (rate, pcm) = pipeline::pcm::parse_wav(TWO_TURNS).expect("a mono 16-bit wav");
    assert_eq!(rate, 48_000);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    samples
        .chunks(960)
        .enumerate()
        .map(|(i, chunk)| {
            let mut full = [0i16; 960];
            full[..chunk.len()].copy_from_slice(chunk);
            Frame48::from_i16(48_000, &full, MediaTime(i as u64 * 960)).unwrap()
        })
        .collect()
}

/// The microphone as binary audio frames in `format` (PCM 16 kHz or Opus).
fn microphone(format: AudioFormat) -> Vec<Bytes> {
    let frames = recording();
    let mut out = Vec::new();
    let mut down = Resampler48To16::new().unwrap();
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    let mut packet = [0u8; 1500];
    for (i, f) in frames.iter().enumerate() {
        let payload = match format.codec {
            AudioCodec::PcmS16le => {
                let low = down.process(f).unwrap();
                let mut bytes = Vec::with_capacity(640);
                for s in low.samples() {
                    bytes.extend_from_slice(&((s * 32_767.0) as i16).to_le_bytes());
                }
                bytes
            }
            AudioCodec::Opus => {
                let mut pcm = [0i16; 960];
                f.write_i16(&mut pcm);
                let n = enc.encode(&pcm, &mut packet).expect("encode");
                packet[..n].to_vec()
            }
        };
        let frame = Frame::audio(i as u32, i as u64 * 20_000, Bytes::from(payload));
        out.push(frame.encode().unwrap());
    }
    out
}

/// One 20 ms frame of digital silence in `format`, as binary frame number `i`.
fn silence(format: AudioFormat, i: usize) -> Bytes {
    let payload = match format.codec {
        AudioCodec::PcmS16le => Bytes::from(vec![0u8; 640]),
        AudioCodec::Opus => {
            let mut enc =
                opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            let mut packet = [0u8; 1500];
            let n = enc.encode(&[0i16; 960], &mut packet).unwrap();
            Bytes::copy_from_slice(&packet[..n])
        }
    };
    Frame::audio(i as u32, i as u64 * 20_000, payload)
        .encode()
        .unwrap()
}

/// Streams the microphone in real time (then silence) until `done`; panics after `limit`.
/// `on_frame` may act between frames (an `interrupt`).
async fn talk(
    client: &mut Client,
    format: AudioFormat,
    limit: Duration,
    mut on_frame: impl FnMut(&Client) -> Option<serde_json::Value>,
    mut done: impl FnMut(&Client) -> bool,
) {
    let mic = microphone(format);
    let quiet = silence(format, 0);
    let began = Instant::now();
    let mut sent = 0usize;
    while !done(client) {
        assert!(
            began.elapsed() < limit,
            "timed out after {limit:?}: {} audio frames, events {:?}",
            client.audio().count(),
            client.events
        );
        let frame = mic.get(sent).cloned().unwrap_or_else(|| quiet.clone());
        client.send_binary(frame).await;
        if let Some(control) = on_frame(client) {
            client.send_json(control).await;
        }
        sent += 1;
        // Keep the 20 ms cadence against the wall clock, not against loop overhead.
        let due = began + Duration::from_millis(20 * sent as u64);
        client
            .read_for(due.saturating_duration_since(Instant::now()))
            .await;
    }
}

/// Waits until the node holds no voice session, call slot or call.
async fn settle(node: &VoiceNode) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let census = node.gateway.media_census().await.expect("endpoint running");
        if node.factory.active_sessions() == 0
            && node.gateway.active_calls() == 0
            && census == MediaCensus::default()
        {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} sessions, {} calls, {census:?}",
            node.factory.active_sessions(),
            node.gateway.active_calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Decodes a reply's audio frames to 48 kHz samples (Opus) or takes the PCM's left channel.
fn rms(format: AudioFormat, frames: &[&Frame]) -> f64 {
    let mut samples = Vec::new();
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = [0i16; 5760];
    for f in frames.iter().filter(|f| !f.payload.is_empty()) {
        match format.codec {
            AudioCodec::Opus => {
                let n = dec.decode(&f.payload, &mut pcm, false).expect("valid Opus");
                assert_eq!(n, 960, "20 ms per frame");
                samples.extend_from_slice(&pcm[..n]);
            }
            AudioCodec::PcmS16le => {
                let step = 2 * usize::from(format.channels);
                assert_eq!(
                    f.payload.len(),
                    format.sample_rate as usize / 50 * step,
                    "20 ms per frame"
                );
                for s in f.payload.chunks_exact(step) {
                    samples.push(i16::from_le_bytes([s[0], s[1]]));
                }
            }
        }
    }
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (energy / samples.len().max(1) as f64).sqrt()
}

/// What every full conversation shows, whatever the formats.
fn assert_conversation(client: &Client, input: AudioFormat, output: AudioFormat) {
    let ServerEvent::SessionStarted(started) = &client.events[1] else {
        panic!("after hello: {:?}", client.events[1]);
    };
    assert_eq!((started.input_audio, started.output_audio), (input, output));
    assert!(started.visemes);
    let finals: Vec<&str> = client
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::TranscriptFinal(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(finals, [HEARD, HEARD], "two turns");
    for ty in [
        "speech_started",
        "response_started",
        "audio_started",
        "turn_metrics",
    ] {
        assert!(client.count(ty) >= 2, "{ty}: {:?}", client.events);
    }
    assert!(client.count("text_delta") > 0);

    // Audio frames: per-type sequence numbers without gaps, timestamps that never go back
    // and move 20 ms per frame within a reply, audible speech.
    let audio: Vec<&Frame> = client.audio().collect();
    for (i, f) in audio.iter().enumerate() {
        assert_eq!(f.sequence, i as u32, "audio sequence");
    }
    for pair in audio.windows(2) {
        assert!(
            pair[1].media_time_us >= pair[0].media_time_us,
            "time went back"
        );
        if !pair[0].payload.is_empty() && !pair[1].payload.is_empty() {
            assert!(
                pair[1].media_time_us > pair[0].media_time_us,
                "time stood still"
            );
        }
    }
    let level = rms(output, &audio);
    assert!(level > 300.0, "the reply is near silence: rms {level}");

    // Every reply ends with an empty END_OF_SEGMENT frame sent before its
    // `audio_ended` / `interrupted` event.
    let ends: Vec<usize> = client
        .frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.flags.contains(FrameFlags::END_OF_SEGMENT))
        .map(|(i, _)| i)
        .collect();
    let edges: Vec<usize> = client
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, ServerEvent::AudioEnded(_) | ServerEvent::Interrupted(_)))
        .map(|(i, _)| client.frames_at_event[i])
        .collect();
    assert!(client.count("audio_ended") >= 1, "{:?}", client.events);
    assert_eq!(ends.len(), edges.len(), "one END_OF_SEGMENT per reply end");
    for (end, seen_by) in ends.iter().zip(&edges) {
        assert!(end < seen_by, "END_OF_SEGMENT before the event");
        assert!(client.frames[*end].payload.is_empty());
    }

    // Visemes come as binary frames with their own sequence, on the output clock.
    let visemes: Vec<&Frame> = client
        .frames
        .iter()
        .filter(|f| f.frame_type == FrameType::Viseme)
        .collect();
    assert!(visemes.len() > 10, "{} viseme frames", visemes.len());
    for (i, v) in visemes.iter().enumerate() {
        assert_eq!(v.sequence, i as u32);
        VisemeFrame::from_frame(v).expect("a valid viseme");
    }
    assert_eq!(client.count("visemes"), 0, "no JSON visemes on a WebSocket");
}

async fn conversation(input: AudioFormat, output: AudioFormat, interrupt: bool) -> Client {
    let node = node().await;
    let mut client = Client::connect(&node, "load:ws").await;
    client.start("voice-1", input, output).await;
    client
        .until(Duration::from_secs(5), |c| c.count("session_started") == 1)
        .await;
    assert_eq!(node.factory.active_sessions(), 1);
    assert_eq!(
        node.gateway.active_calls(),
        1,
        "the session holds a call slot"
    );

    let mut interrupted = false;
    let began = Instant::now();
    talk(
        &mut client,
        input,
        Duration::from_secs(60),
        |c| {
            // Stop the first answer once a little of it has played.
            if interrupt && !interrupted && c.audio().count() >= 25 {
                interrupted = true;
                return Some(json!({"type": "interrupt"}));
            }
            None
        },
        // Both turns answered, the second to its end.
        |c| {
            c.count("transcript_final") == 2
                && c.count("audio_ended") >= 1
                && c.count("turn_metrics") >= 2
        },
    )
    .await;
    println!(
        "voice-ws {:?} in, {:?} out: two turns in {:?}, {} audio frames, {} events",
        input.codec,
        output.codec,
        began.elapsed(),
        client.audio().count(),
        client.events.len()
    );
    assert_conversation(&client, input, output);

    client.send_json(json!({"type": "hang_up"})).await;
    client
        .until(Duration::from_secs(5), |c| c.ended().is_some())
        .await;
    assert_eq!(client.ended(), Some(EndReason::HangUp));
    settle(&node).await;
    // Chat goes on on the same connection after the session.
    client.send_json(json!({"type": "ping", "nonce": 9})).await;
    client
        .until(Duration::from_secs(5), |c| c.count("pong") == 1)
        .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm_16k_in_opus_out_two_turns() {
    conversation(PCM_16K, OPUS, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_in_pcm_24k_out_two_turns_with_an_interrupt() {
    let client = conversation(OPUS, PCM_24K_STEREO, true).await;
    // The client's stop: `interrupted` with what was heard, then the next reply's first
    // frame says the clock jumped.
    let (cut_at, heard) = client
        .events
        .iter()
        .enumerate()
        .find_map(|(i, e)| match e {
            ServerEvent::Interrupted(x) => Some((i, x.heard_text.clone())),
            _ => None,
        })
        .expect("interrupted");
    assert!(!heard.is_empty(), "some of the answer was heard");
    let after = client.frames_at_event[cut_at];
    let next = client.frames[after..]
        .iter()
        .find(|f| f.frame_type == FrameType::Audio && !f.payload.is_empty())
        .expect("a next reply");
    assert!(
        next.flags.contains(FrameFlags::DISCONTINUITY),
        "{:?}",
        next.flags
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_the_connection_stays_open() {
    let node = node().await;
    let mut client = Client::connect(&node, "alice-token").await;

    // Audio before start_session, garbage, a viseme frame from the client.
    client.send_binary(silence(PCM_16K, 0)).await;
    client
        .send_binary(Bytes::from_static(b"definitely not a frame"))
        .await;
    let viseme = VisemeFrame {
        media_time_us: 0,
        viseme_id: 3,
        weights: Vec::new(),
    };
    client
        .send_binary(viseme.to_frame(0).unwrap().encode().unwrap())
        .await;
    // Formats the protocol does not allow, each named.
    let bad_rate = AudioFormat {
        sample_rate: 44_100,
        ..PCM_16K
    };
    client.start("bad-rate", bad_rate, OPUS).await;
    let bad_channels = AudioFormat {
        channels: 3,
        ..PCM_16K
    };
    client.start("bad-channels", PCM_16K, bad_channels).await;
    client.send_json(json!({"type": "mute"})).await;
    client
        .until(Duration::from_secs(5), |c| c.errors().len() == 6)
        .await;
    let errors = client.errors();
    assert!(
        errors.iter().all(|e| e.0 == ErrorCode::BadRequest),
        "{errors:?}"
    );
    assert!(errors[0].2.contains("start_session"), "{}", errors[0].2);
    assert!(errors[1].2.contains("binary message"), "{}", errors[1].2);
    assert!(errors[2].2.contains("audio frames only"), "{}", errors[2].2);
    // The event decoder checks formats: its message names the field.
    assert!(errors[3].2.contains("start_session") && errors[3].2.contains("sampleRate"));
    assert!(errors[4].2.contains("start_session") && errors[4].2.contains("channels"));
    assert!(errors[5].2.contains("no voice session"), "{}", errors[5].2);
    assert_eq!(node.factory.active_sessions(), 0);

    // A session starts; a second one on the same connection is a conflict.
    client.start("one", PCM_16K, OPUS).await;
    client.start("two", PCM_16K, OPUS).await;
    // Half a stereo sample is not whole samples; `configure` cannot change the voice.
    client
        .send_binary(
            Frame::audio(0, 0, Bytes::from_static(&[1, 2, 3]))
                .encode()
                .unwrap(),
        )
        .await;
    client
        .send_json(json!({"type": "configure", "visemes": false, "voice": "aria"}))
        .await;
    client
        .until(Duration::from_secs(5), |c| c.errors().len() == 9)
        .await;
    assert_eq!(client.count("session_started"), 1);
    let errors = client.errors();
    assert_eq!(
        (errors[6].0, errors[6].1.as_deref()),
        (ErrorCode::Conflict, Some("two"))
    );
    let rest: Vec<&str> = errors[7..].iter().map(|e| e.2.as_str()).collect();
    assert!(rest.iter().any(|m| m.contains("whole samples")), "{rest:?}");
    assert!(
        rest.iter().any(|m| m.contains("configure.voice")),
        "{rest:?}"
    );

    // One call limit for both transports: alice may hold one call, and her WebSocket
    // session is it, so a WebRTC call and another WebSocket session are refused.
    let refused = dial(&node.url, "alice-token").await.err().expect("refused");
    assert_eq!(refused.0, 429, "{}", refused.2);
    assert!(refused.2.contains("too_many_calls"), "{}", refused.2);
    let mut second = Client::connect(&node, "alice-token").await;
    second.start("elsewhere", PCM_16K, OPUS).await;
    second
        .until(Duration::from_secs(5), |c| c.errors().len() == 1)
        .await;
    assert_eq!(
        (second.errors()[0].0, second.errors()[0].1.as_deref()),
        (ErrorCode::RateLimited, Some("elsewhere"))
    );

    // Closing the socket ends the session and frees the slot: now the WebRTC call goes in.
    client.ws.close(None).await.expect("close");
    drop(client);
    settle(&node).await;
    let call = dial(&node.url, "alice-token").await.expect("a call now");
    // ... and, the other way round, her WebRTC call keeps a WebSocket session out.
    second.start("after-call", PCM_16K, OPUS).await;
    second
        .until(Duration::from_secs(5), |c| c.errors().len() == 2)
        .await;
    assert_eq!(second.errors()[1].0, ErrorCode::RateLimited);
    let hung_up = reqwest::Client::new()
        .delete(format!("{}{}", node.url, call.location))
        .bearer_auth("alice-token")
        .send()
        .await
        .expect("DELETE the call");
    assert!(hung_up.status().is_success(), "{}", hung_up.status());
    drop(second);
    settle(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_says_goodbye_and_ends_the_session_at_the_deadline() {
    let node = node().await;
    let mut client = Client::connect(&node, "bob-token").await;
    client.start("live", PCM_16K, OPUS).await;
    client
        .until(Duration::from_secs(5), |c| c.count("session_started") == 1)
        .await;
    let mut late = Client::connect(&node, "load:late").await;

    let gateway = node.gateway.clone();
    let deadline = Duration::from_secs(2);
    let drain = tokio::spawn(async move { gateway.drain(deadline).await });
    client
        .until(Duration::from_secs(5), |c| c.count("goodbye") == 1)
        .await;
    late.start("too-late", PCM_16K, OPUS).await;
    late.until(Duration::from_secs(5), |c| c.errors().len() == 1)
        .await;
    assert_eq!(
        (late.errors()[0].0, late.errors()[0].1.as_deref()),
        (ErrorCode::ServerDraining, Some("too-late"))
    );

    // The session runs until the deadline (the client keeps talking), then ends.
    talk(
        &mut client,
        PCM_16K,
        Duration::from_secs(15),
        |_| None,
        |c| c.ended().is_some(),
    )
    .await;
    assert_eq!(client.ended(), Some(EndReason::ServerShutdown));
    let report = tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .expect("the drain finishes")
        .unwrap();
    assert_eq!((report.calls_at_start, report.left), (1, 0), "{report:?}");
    settle(&node).await;
}

/// Starts a session, talks until the answer plays, then vanishes without a close frame.
async fn drop_mid_reply(node: &VoiceNode) {
    let mut client = Client::connect(node, "alice-token").await;
    client.start("gone", PCM_16K, OPUS).await;
    talk(
        &mut client,
        PCM_16K,
        Duration::from_secs(30),
        |_| None,
        |c| c.audio().count() >= 10,
    )
    .await;
    drop(client);
    settle(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_dropped_mid_reply_leaves_no_session_slot_or_task_behind() {
    let node = node().await;
    // The first session warms the provider connection pools, which a node keeps (with a
    // task per pooled connection on each side of the in-process mock) whatever the count.
    drop_mid_reply(&node).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let baseline = runtime.num_alive_tasks();
    // The pools may end up a connection or two (two tasks each) richer than after the first
    // session, once; a task leaked per session would grow with each of these five.
    for _ in 0..5 {
        drop_mid_reply(&node).await;
    }
    let limit = baseline + 4;
    let end = Instant::now() + Duration::from_secs(10);
    while runtime.num_alive_tasks() > limit {
        assert!(
            Instant::now() < end,
            "{} tasks alive, {baseline} after the first session",
            runtime.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The slot is free again: the same caller (one call allowed) may start a session.
    let mut again = Client::connect(&node, "alice-token").await;
    again.start("again", PCM_16K, OPUS).await;
    again
        .until(Duration::from_secs(5), |c| c.count("session_started") == 1)
        .await;
}
