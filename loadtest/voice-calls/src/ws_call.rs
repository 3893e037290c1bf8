//! One caller over WebSocket (`--transport ws`): `start_session` on `/v1/chat/ws`, the
//! script's Opus frames as binary audio frames in real time, and every reply audio frame
//! decoded and timed as the WebRTC caller times RTP packets, so both transports share the
//! analysis and the report.

use std::{
    sync::{Arc, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use media::{MediaTime, OpusDecoder};
use protocol::{Frame, FrameType};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    analysis::{Rx, analyse},
    call::{AUDIBLE_RMS, CallRecord, CallSpec, ConnectedGuard},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the caller waits for `session_ended` after its `hang_up`.
const HANG_UP_WAIT: Duration = Duration::from_secs(2);

struct Live {
    ws: Ws,
    decoder: OpusDecoder,
    /// Time zero of the call's timeline (the first microphone frame's due time).
    t0: Instant,
    rx: Vec<Rx>,
    /// Lowest and highest reply audio sequence number seen.
    seq: Option<(u64, u64)>,
    /// Reply audio frames received, the empty `END_OF_SEGMENT` markers included.
    audio_frames: u64,
    record: CallRecord,
}

impl Live {
    /// Reads what arrives until `until`.
    async fn pump(&mut self, until: Instant, deadline: Instant) -> Result<(), String> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err("hard timeout".to_owned());
            }
            if now >= until {
                return Ok(());
            }
            let next = tokio::time::timeout_at(until.into(), self.ws.next()).await;
            match next {
                Err(_) => return Ok(()),
                Ok(None) => return Err("the gateway closed the connection".to_owned()),
                Ok(Some(Err(e))) => return Err(format!("websocket: {e}")),
                Ok(Some(Ok(message))) => self.absorb(message, Instant::now()),
            }
        }
    }

    fn absorb(&mut self, message: Message, now: Instant) {
        match message {
            Message::Text(text) => {
                let ty = serde_json::from_str::<serde_json::Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("type")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "<unparsed>".to_owned());
                *self.record.events.entry(ty).or_default() += 1;
            }
            Message::Binary(bytes) => {
                let Ok(frame) = Frame::decode(&bytes) else {
                    self.record.corrupt_in += 1;
                    return;
                };
                if frame.frame_type != FrameType::Audio {
                    return;
                }
                let seq = u64::from(frame.sequence);
                self.audio_frames += 1;
                self.seq = Some(match self.seq {
                    None => (seq, seq),
                    Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
                });
                if frame.payload.is_empty() {
                    return;
                }
                self.record.packets_in += 1;
                let audible = match self.decoder.decode(&frame.payload, MediaTime::ZERO) {
                    Ok(frame) => frame.rms() > AUDIBLE_RMS,
                    Err(_) => {
                        self.record.corrupt_in += 1;
                        false
                    }
                };
                self.rx.push(Rx {
                    at: now.saturating_duration_since(self.t0),
                    audible,
                });
            }
            _ => {}
        }
    }

    fn events(&self, ty: &str) -> u64 {
        self.record.events.get(ty).copied().unwrap_or(0)
    }
}

/// Opens a session, plays the script, hangs up, and reports. Never panics; every failure
/// ends up in [`CallRecord::failure`].
pub async fn place(spec: &CallSpec, connected: &Arc<AtomicUsize>) -> CallRecord {
    let posted = Instant::now();
    let ws = match connect(spec).await {
        Ok(ws) => ws,
        Err(reason) => {
            return CallRecord {
                failure: Some(reason),
                ..CallRecord::default()
            };
        }
    };
    let decoder = match OpusDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            return CallRecord {
                failure: Some(e.to_string()),
                ..CallRecord::default()
            };
        }
    };
    let mut live = Live {
        ws,
        decoder,
        t0: posted,
        rx: Vec::new(),
        seq: None,
        audio_frames: 0,
        record: CallRecord::default(),
    };
    let out = drive(spec, &mut live, posted, connected).await;
    let _ = live.ws.close(None).await;
    let mut record = std::mem::take(&mut live.record);
    if let Some((lo, hi)) = live.seq {
        record.lost_in = (hi - lo + 1).saturating_sub(live.audio_frames);
    }
    record.turns = analyse(&spec.script.turns, &live.rx);
    if let Err(reason) = out {
        record.failure = Some(reason);
    }
    record
}

async fn connect(spec: &CallSpec) -> Result<Ws, String> {
    let base = spec.base_url.trim_end_matches('/');
    let url = match base.strip_prefix("http") {
        Some(rest) => format!("ws{rest}/v1/chat/ws"),
        None => format!("{base}/v1/chat/ws"),
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("bad URL: {e}"))?;
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(protocol::WS_SUBPROTOCOL),
    );
    let bearer = HeaderValue::from_str(&format!("Bearer {}", spec.token))
        .map_err(|_| "the token is not a header value".to_owned())?;
    headers.insert("authorization", bearer);
    let limit = spec
        .connect_timeout
        .min(spec.deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(limit, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err("connect timeout".to_owned()),
        Ok(Err(e)) => Err(format!("WebSocket refused: {e}")),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

async fn drive(
    spec: &CallSpec,
    live: &mut Live,
    posted: Instant,
    connected: &Arc<AtomicUsize>,
) -> Result<(), String> {
    let deadline = spec.deadline;
    let start = serde_json::json!({
        "type": "start_session",
        "requestId": "load",
        "inputAudio": {"codec": "opus", "sampleRate": 48000, "channels": 1},
        "outputAudio": {"codec": "opus", "sampleRate": 48000, "channels": 1},
        "visemes": true,
    });
    send(live, Message::text(start.to_string())).await?;
    let give_up = (posted + spec.connect_timeout).min(deadline);
    while live.events("session_started") == 0 {
        if live.events("error") > 0 {
            return Err("start_session refused".to_owned());
        }
        if Instant::now() >= give_up {
            return Err("connect timeout".to_owned());
        }
        live.pump(Instant::now() + Duration::from_millis(10), give_up)
            .await?;
    }
    live.record.setup = Some(posted.elapsed());
    connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _guard = ConnectedGuard(connected.clone());

    // The microphone: one frame every 20 ms against the wall clock, then the tail.
    let script = &spec.script;
    let frames = script.speech.len() + (spec.tail.as_millis() / 20) as usize;
    let t0 = Instant::now();
    live.t0 = t0;
    for k in 0..frames {
        let due = t0 + Duration::from_millis(20 * k as u64);
        live.pump(due, deadline).await?;
        let now = Instant::now();
        live.record.max_send_lag = live
            .record
            .max_send_lag
            .max(now.saturating_duration_since(due));
        let payload = script.speech.get(k).unwrap_or(&script.silence).clone();
        let frame = Frame::audio(k as u32, k as u64 * 20_000, payload)
            .encode()
            .map_err(|e| e.to_string())?;
        send(live, Message::Binary(frame)).await?;
        live.record.frames_out += 1;
        if live.events("session_ended") > 0 {
            return Err("session ended by the gateway mid-call".to_owned());
        }
    }
    let end = t0 + Duration::from_millis(20 * frames as u64);
    live.pump(end, deadline).await?;
    live.record.connected_for = t0.elapsed();
    send(live, Message::text(r#"{"type":"hang_up"}"#)).await?;
    let ended_by = (Instant::now() + HANG_UP_WAIT).min(deadline);
    while live.events("session_ended") == 0 && Instant::now() < ended_by {
        live.pump(Instant::now() + Duration::from_millis(20), deadline)
            .await?;
    }
    if live.events("session_ended") == 0 {
        return Err("no session_ended after hang_up".to_owned());
    }
    Ok(())
}

async fn send(live: &mut Live, message: Message) -> Result<(), String> {
    live.ws
        .send(message)
        .await
        .map_err(|e| format!("websocket send: {e}"))
}
