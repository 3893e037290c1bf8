//! A voice session on a WebSocket connection as a bridge [`Transport`]: binary `audio`
//! frames in (`ws_input.rs`), binary `audio` / `viseme` frames and JSON text out
//! (`ws_output.rs`), all through the connection's bounded outbound queue.
//!
//! Slow readers: reply audio and visemes are real time, so when the connection's queue is
//! full a frame is dropped (counted; the next audio frame carries `DISCONTINUITY`) instead of
//! delaying every later one. JSON events and `END_OF_SEGMENT` markers wait for room, so the
//! connection's slow-consumer rule (close 4008) applies to them.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use media::Frame48;
use protocol::{
    ServerEvent,
    control::ErrorCode,
    viseme::VisemeFrame,
    voice::{EndReason, SessionStarted, StartSession},
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::core::{
    slots::CallSlot,
    types::{CallId, DrainPhase},
    voice::{
        Admission, AudioIn, AudioOut, Control, Heard, Summary, Transport, VoiceError,
        VoiceSessionFactory, error,
    },
};

/// Client messages queued for the session task; the connection drops audio beyond this
/// (the session's own queue bounds what it keeps).
pub(crate) const INPUT_QUEUE: usize = 32;

/// What the connection hands a running session.
#[derive(Debug)]
pub(crate) enum WsInput {
    /// The payload of one binary `audio` frame.
    Audio(Bytes),
    /// A voice control (`mute`, `configure`, `hang_up`, ...).
    Control(Control),
}

/// What a connection needs to start a session.
#[derive(Debug)]
pub(crate) struct WsStart {
    pub(crate) user_id: String,
    pub(crate) request: StartSession,
    /// The caller's call slot, held until the session ends.
    pub(crate) slot: CallSlot,
    /// The connection's outbound queue for this session's messages.
    pub(crate) out: mpsc::Sender<Message>,
    pub(crate) drain: watch::Receiver<DrainPhase>,
    /// The caller's first block of voice seconds (released if the session does not start).
    pub(crate) admission: Admission,
}

/// A running session, as its connection holds it.
#[derive(Debug)]
pub(crate) struct WsVoice {
    /// The session's id (`ws_…`), for events the connection sends about it.
    pub(crate) session_id: String,
    pub(crate) input: mpsc::Sender<WsInput>,
    pub(crate) task: JoinHandle<()>,
}

/// Starts a voice session on a WebSocket connection (formats already validated).
pub(crate) fn start_session(
    factory: &VoiceSessionFactory,
    start: WsStart,
) -> Result<WsVoice, VoiceError> {
    let request = &start.request;
    let audio_in = AudioIn::new(request.input_audio)?;
    let audio_out = AudioOut::new(request.output_audio, &factory.config().opus)?;
    let session = factory.open_session()?;
    let session_id = format!("ws_{}", CallId::random());
    let started = SessionStarted {
        session_id: session_id.clone(),
        conversation_id: request
            .conversation_id
            .clone()
            .unwrap_or_else(|| session_id.clone()),
        input_audio: request.input_audio,
        output_audio: request.output_audio,
        visemes: request.visemes,
    };
    let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
    // The same message as a WebRTC call's, so log readers count both transports.
    tracing::info!(session = %session_id, user = %start.user_id, transport = "websocket", "voice session started");
    let transport = WebSocketVoice {
        session_id: session_id.clone(),
        user_id: start.user_id,
        input: input_rx,
        out: start.out,
        audio_in,
        audio_out,
        opened: false,
        frames_dropped_out: 0,
        bad_input: 0,
        _slot: start.slot,
    };
    let factory = factory.clone();
    let task = tokio::spawn(async move {
        factory
            .bridge(transport, started, session, start.admission, start.drain)
            .await;
    });
    Ok(WsVoice {
        session_id,
        input,
        task,
    })
}

struct WebSocketVoice {
    session_id: String,
    user_id: String,
    input: mpsc::Receiver<WsInput>,
    out: mpsc::Sender<Message>,
    audio_in: AudioIn,
    audio_out: AudioOut,
    /// `session_started` may go out (reported once, at once: the socket is open).
    opened: bool,
    /// Reply audio and viseme frames dropped because the connection's queue was full.
    frames_dropped_out: u64,
    /// Binary frames refused (not whole samples, not Opus).
    bad_input: u64,
    /// Released when the session ends.
    _slot: CallSlot,
}

impl WebSocketVoice {
    /// Queues a real-time frame, or drops it when the reader is behind.
    fn send_frame(&mut self, frame: Bytes) -> bool {
        match self.out.try_send(Message::Binary(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.frames_dropped_out += 1;
                false
            }
            // The connection is closing; `next` reports it.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }
}

impl Transport for WebSocketVoice {
    const BATCHES_VISEMES: bool = false;

    async fn next(&mut self) -> Heard {
        if !self.opened {
            self.opened = true;
            return Heard::Opened;
        }
        match self.input.recv().await {
            Some(WsInput::Audio(payload)) => match self.audio_in.push(&payload) {
                Ok(()) => Heard::Media,
                Err(e) => {
                    self.bad_input += 1;
                    Heard::Control(error(
                        ErrorCode::BadRequest,
                        e.to_string(),
                        &self.session_id,
                    ))
                }
            },
            Some(WsInput::Control(control)) => Heard::Control(control),
            None => Heard::Closed(EndReason::TransportClosed),
        }
    }

    fn next_frame(&mut self) -> Option<Frame48> {
        self.audio_in.next_frame()
    }

    fn set_muted(&mut self, muted: bool) {
        self.audio_in.set_muted(muted);
    }

    async fn send_audio(&mut self, frame: &Frame48) {
        match self.audio_out.audio(frame) {
            Ok(bytes) => {
                if !self.send_frame(bytes) {
                    self.audio_out.frame_dropped();
                }
            }
            Err(error) => {
                tracing::warn!(session = %self.session_id, %error, "reply frame not encoded");
            }
        }
    }

    async fn send_viseme(&mut self, viseme: &VisemeFrame) {
        match self.audio_out.viseme(viseme) {
            Ok(bytes) => {
                self.send_frame(bytes);
            }
            Err(error) => {
                tracing::warn!(session = %self.session_id, %error, "viseme not encoded");
            }
        }
    }

    async fn segment_end(&mut self, cut: bool) {
        match self.audio_out.end_segment(cut) {
            Some(Ok(bytes)) => {
                let _ = self.out.send(Message::Binary(bytes)).await;
            }
            Some(Err(error)) => {
                tracing::warn!(session = %self.session_id, %error, "segment end not encoded");
            }
            None => {}
        }
    }

    async fn send_event(&mut self, event: &ServerEvent) {
        match event.to_json() {
            Ok(json) => {
                let _ = self.out.send(Message::Text(Utf8Bytes::from(json))).await;
            }
            Err(error) => {
                tracing::warn!(session = %self.session_id, %error, event = event.type_name(), "event not encodable");
            }
        }
    }

    async fn finish(&mut self, _closed: bool) {
        // The connection outlives its session (chat goes on); the slot is released on drop.
    }

    fn report(&self, s: &Summary) {
        let input = self.audio_in.stats();
        tracing::info!(
            session = %self.session_id,
            user = %self.user_id,
            reason = ?s.reason,
            duration_ms = s.duration_ms,
            messages = s.messages,
            frames_in = input.frames,
            input_dropped = input.dropped,
            underruns = input.underruns,
            bad_input = self.bad_input,
            output_dropped = self.frames_dropped_out,
            frames_dropped = s.frames_dropped,
            controls_dropped = s.controls_dropped,
            voice_secs = s.voice_secs,
            transport = "websocket",
            "voice session ended"
        );
    }
}
