//! A stand-in voice session for shell tests: it plays a tone to the caller (20 ms Opus frames
//! paced in real time), listens to the caller's Opus, echoes `events` messages, and reports
//! what it heard when the call ends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::{CallHandle, CloseReason};

use super::{decoded_rms, tone_frames};

#[derive(Debug)]
pub struct SessionReport {
    pub connected_after: Option<Duration>,
    pub audio_packets: usize,
    pub audio_bytes: usize,
    /// RMS of the decoded caller audio.
    pub rms: f64,
    pub frames_sent: usize,
    pub messages: Vec<String>,
    pub closed: CloseReason,
    pub stats: gateway::CallStats,
    /// Process CPU time per second of connected call (gateway, session and runtime).
    pub cpu_share: f64,
}

pub async fn tone_and_echo(call: CallHandle) -> SessionReport {
    let answered = Instant::now();
    let (mut audio, mut messages, sender) = call.split();
    let connected = sender.connected().await;
    let connected_after = connected.is_ok().then(|| answered.elapsed());
    let (cpu_at_connect, wall_at_connect) = (super::process_cpu(), Instant::now());

    // The tone: 2 s of frames, looped, paced by one interval (no timer per frame).
    let speaker = sender.clone();
    let tone = tokio::spawn(async move {
        let frames: Vec<Bytes> = tone_frames(100).into_iter().map(Bytes::from).collect();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut sent = 0usize;
        for frame in frames.iter().cycle() {
            tick.tick().await;
            if speaker.send_audio(frame.clone(), 960).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });

    let mut heard = Vec::new();
    let mut bytes = 0;
    let mut texts = Vec::new();
    let mut audio_open = true;
    let mut messages_open = true;
    while audio_open || messages_open {
        tokio::select! {
            packet = audio.recv(), if audio_open => match packet {
                Some(p) => {
                    bytes += p.payload.len();
                    heard.push(p.payload.to_vec());
                }
                None => audio_open = false,
            },
            text = messages.recv(), if messages_open => match text {
                Some(t) => {
                    let _ = sender.send_message(format!("{{\"type\":\"echo\",\"of\":{t}}}")).await;
                    texts.push(t);
                }
                None => messages_open = false,
            },
        }
    }
    let closed = sender.closed().await;
    let cpu_share = (super::process_cpu() - cpu_at_connect).as_secs_f64()
        / wall_at_connect.elapsed().as_secs_f64();
    let frames_sent = tone.await.unwrap_or(0);
    SessionReport {
        connected_after,
        audio_packets: heard.len(),
        audio_bytes: bytes,
        rms: decoded_rms(&heard),
        frames_sent,
        messages: texts,
        closed,
        stats: sender.stats(),
        cpu_share,
    }
}
