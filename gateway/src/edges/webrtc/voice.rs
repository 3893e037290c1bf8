//! A WebRTC call as a bridge [`Transport`]: Opus over RTP through the jitter buffer in,
//! Opus packets out through the media endpoint, JSON on the `events` data channel, visemes
//! batched into `visemes` events.

use media::Frame48;
use protocol::{
    ServerEvent,
    viseme::VisemeFrame,
    voice::{AudioCodec, AudioFormat, EndReason, SessionStarted},
};
use tokio::sync::mpsc;

use super::{
    handle::{CallHandle, CallHandler, CallSender, SendError},
    inbound::Inbound,
    types::{CloseReason, InboundOpus},
};
use crate::core::voice::{
    Admission, Heard, Packetizer, Summary, Transport, VoiceError, VoiceSessionFactory,
    client_message,
};

const OPUS_48K_MONO: AudioFormat = AudioFormat {
    codec: AudioCodec::Opus,
    sample_rate: 48_000,
    channels: 1,
};

/// The voice sessions are the node's call handler: every call gets its own session.
impl CallHandler for VoiceSessionFactory {
    fn on_call(&self, call: CallHandle) {
        let factory = self.clone();
        tokio::spawn(async move { run(&factory, call).await });
    }

    fn voice_sessions(&self) -> Option<&VoiceSessionFactory> {
        Some(self)
    }
}

/// Runs one call to its end.
async fn run(factory: &VoiceSessionFactory, mut call: CallHandle) {
    // Released (settled at 0) when dropped, should the session not start.
    let admission = std::mem::replace(&mut call.admission, Admission::unmetered());
    let id = call.id();
    let user = call.caller().user_id.clone();
    let (audio, messages, sender) = call.split();
    let (inbound, packetizer, session) = match start(factory) {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(call = %id, %user, %error, "voice session did not start; hanging up");
            factory.count_failed();
            let _ = sender.hang_up().await;
            return;
        }
    };
    tracing::info!(call = %id, %user, "voice session started");
    let notices = sender.drain_notices();
    let transport = WebRtc {
        session_id: id.to_string(),
        user,
        sender,
        audio,
        messages,
        inbound,
        packetizer,
        opened: false,
    };
    let started = SessionStarted {
        session_id: id.to_string(),
        conversation_id: id.to_string(),
        input_audio: OPUS_48K_MONO,
        output_audio: OPUS_48K_MONO,
        visemes: true,
    };
    factory
        .bridge(transport, started, session, admission, notices)
        .await;
}

fn start(
    factory: &VoiceSessionFactory,
) -> Result<(Inbound, Packetizer, pipeline::session::SessionHandle), VoiceError> {
    let config = factory.config();
    let inbound = Inbound::new(&config.jitter)?;
    let packetizer = Packetizer::new(&config.opus)?;
    Ok((inbound, packetizer, factory.open_session()?))
}

struct WebRtc {
    session_id: String,
    user: String,
    sender: CallSender,
    audio: mpsc::Receiver<InboundOpus>,
    messages: mpsc::Receiver<String>,
    inbound: Inbound,
    packetizer: Packetizer,
    /// The caller's `events` channel has opened (reported once).
    opened: bool,
}

/// How a closed call ends its session.
fn end_reason(reason: &CloseReason) -> EndReason {
    match reason {
        CloseReason::CallerHungUp | CloseReason::ServerHungUp => EndReason::HangUp,
        CloseReason::Shutdown => EndReason::ServerShutdown,
        _ => EndReason::TransportClosed,
    }
}

impl Transport for WebRtc {
    const BATCHES_VISEMES: bool = true;

    async fn next(&mut self) -> Heard {
        tokio::select! {
            biased;
            reason = self.sender.closed() => Heard::Closed(end_reason(&reason)),
            opened = self.sender.events_opened(), if !self.opened => match opened {
                Ok(()) => {
                    self.opened = true;
                    Heard::Opened
                }
                Err(reason) => Heard::Closed(end_reason(&reason)),
            },
            packet = self.audio.recv() => match packet {
                Some(p) => {
                    self.inbound.push(p.seq, p.rtp_timestamp, &p.payload, p.arrival);
                    Heard::Media
                }
                None => Heard::Closed(end_reason(&self.sender.closed().await)),
            },
            text = self.messages.recv() => match text {
                Some(text) => Heard::Control(client_message(&text, &self.session_id)),
                None => Heard::Closed(end_reason(&self.sender.closed().await)),
            },
        }
    }

    fn next_frame(&mut self) -> Option<Frame48> {
        self.inbound.next_frame()
    }

    fn set_muted(&mut self, muted: bool) {
        self.inbound.set_muted(muted);
    }

    async fn send_audio(&mut self, frame: &Frame48) {
        let payload = match self.packetizer.encode(frame) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(call = %self.sender.id(), %error, "reply frame not encoded");
                return;
            }
        };
        if let Err(SendError::EndpointGone) = self.sender.send_audio(payload, 960).await {
            tracing::debug!(call = %self.sender.id(), "endpoint gone; frame dropped");
        }
    }

    async fn send_viseme(&mut self, _viseme: &VisemeFrame) {
        // Batched by the core into `visemes` events (`BATCHES_VISEMES`).
    }

    async fn segment_end(&mut self, _cut: bool) {
        // RTP marks talkspurts itself (the endpoint's talkspurt gap); nothing to send.
    }

    async fn send_event(&mut self, event: &ServerEvent) {
        match event.to_json() {
            Ok(json) => {
                if let Err(error) = self.sender.send_message(json).await {
                    tracing::debug!(call = %self.sender.id(), %error, "event not sent");
                }
            }
            Err(error) => {
                tracing::warn!(call = %self.sender.id(), %error, event = event.type_name(), "event not encodable");
            }
        }
    }

    async fn finish(&mut self, closed: bool) {
        if !closed {
            let _ = self.sender.hang_up().await;
        }
    }

    fn report(&self, s: &Summary) {
        let jitter = self.inbound.jitter_stats();
        let decoder = self.inbound.decoder_stats();
        tracing::info!(
            call = %self.sender.id(),
            user = %self.user,
            reason = ?s.reason,
            duration_ms = s.duration_ms,
            messages = s.messages,
            lost = jitter.lost,
            late = jitter.late,
            fec_recovered = decoder.fec_recovered,
            concealed = decoder.concealed,
            malformed = self.inbound.malformed(),
            frames_dropped = s.frames_dropped,
            controls_dropped = s.controls_dropped,
            voice_secs = s.voice_secs,
            "voice session ended"
        );
    }
}
