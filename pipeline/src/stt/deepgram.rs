//! Deepgram live streaming STT over WebSocket.
//!
//! Wire format: `wss://api.deepgram.com/v1/listen?encoding=linear16&sample_rate=16000&
//! interim_results=true&...` with `Authorization: Token KEY`; binary frames carry the audio,
//! `{"type":"CloseStream"}` ends it. The server sends `Results` messages (`is_final`,
//! `speech_final`, `channel.alternatives[0].transcript`), `UtteranceEnd`, `SpeechStarted` and
//! `Metadata`, then closes.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::PipelineError;
use crate::config::{DeepgramConfig, Secret};
use crate::http::error_chain;
use crate::pcm::SampleAligner;
use crate::provider::{
    AudioStream, STT_SAMPLE_RATE, ServedModel, SttEvent, SttProvider, SttStream,
};

/// The Deepgram streaming provider.
#[derive(Clone)]
pub struct DeepgramStt {
    name: String,
    config: DeepgramConfig,
    key: Secret,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for DeepgramStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepgramStt")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DeepgramStt {
    /// A provider from its config section and a resolved key.
    pub fn new(name: impl Into<String>, config: &DeepgramConfig, key: Secret) -> Self {
        Self {
            name: name.into(),
            config: config.clone(),
            key,
            tls: tls_config(),
        }
    }

    /// The full listen URL with the query the session needs.
    pub fn listen_url(&self) -> String {
        let c = &self.config;
        format!(
            "{}?encoding=linear16&sample_rate={STT_SAMPLE_RATE}&channels=1&interim_results=true&punctuate=true\
             &smart_format=true&model={}&language={}&endpointing={}",
            c.url, c.model, c.language, c.endpointing_ms
        )
    }

    async fn connect(&self) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, PipelineError> {
        let connect_error = |message: String| PipelineError::Connect {
            provider: self.name.clone(),
            message,
        };
        let mut request = self
            .listen_url()
            .into_client_request()
            .map_err(|e| connect_error(e.to_string()))?;
        let auth = HeaderValue::from_str(&format!("Token {}", self.key.expose()))
            .map_err(|_| connect_error("API key is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", auth);
        let connector = self.tls.clone().map(Connector::Rustls);
        match tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await
        {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                if status == 429 {
                    return Err(PipelineError::RateLimited {
                        provider: self.name.clone(),
                        retry_after: None,
                    });
                }
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
                    .unwrap_or_default();
                Err(PipelineError::Status {
                    provider: self.name.clone(),
                    status,
                    body,
                })
            }
            Err(e) => Err(connect_error(error_chain(&e))),
        }
    }
}

/// TLS with an explicit crypto provider, so a process that links both ring and aws-lc-rs
/// (other crates may) never hits rustls' "no default provider" panic.
fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let built = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map(|b| b.with_no_client_auth());
    match built {
        Ok(config) => Some(Arc::new(config)),
        Err(error) => {
            tracing::error!(%error, "TLS setup for Deepgram failed; wss:// connections will use defaults");
            None
        }
    }
}

impl SttProvider for DeepgramStt {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.config.model, &self.name)]
    }

    fn transcribe(&self, audio: AudioStream) -> SttStream {
        let this = self.clone();
        enum Phase {
            Connect(DeepgramStt, AudioStream),
            Live(Box<Session>),
            Done,
        }
        stream::unfold(Phase::Connect(this, audio), |phase| async move {
            let mut session = match phase {
                Phase::Done => return None,
                Phase::Live(session) => session,
                Phase::Connect(this, audio) => match this.connect().await {
                    Err(e) => return Some((Err(e), Phase::Done)),
                    Ok(ws) => Box::new(Session::new(
                        this.name.clone(),
                        ws,
                        audio,
                        this.config.keepalive_ms,
                    )),
                },
            };
            match session.next().await {
                None => None,
                Some(Err(e)) => Some((Err(e), Phase::Done)),
                Some(Ok(event)) => Some((Ok(event), Phase::Live(session))),
            }
        })
        .boxed()
    }
}

struct Session {
    provider: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    audio: Option<BoxStream<'static, bytes::Bytes>>,
    aligner: SampleAligner,
    assembler: TranscriptAssembler,
    closed: bool,
    /// When we last sent anything: Deepgram closes a socket that hears nothing for 10 s,
    /// and callers skip silent frames, so idle gaps get a `KeepAlive`.
    last_sent: tokio::time::Instant,
    keepalive: std::time::Duration,
}

impl Session {
    fn new(
        provider: String,
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        audio: AudioStream,
        keepalive_ms: u64,
    ) -> Self {
        Self {
            provider,
            ws,
            audio: Some(audio),
            aligner: SampleAligner::new(),
            assembler: TranscriptAssembler::default(),
            closed: false,
            last_sent: tokio::time::Instant::now(),
            keepalive: std::time::Duration::from_millis(keepalive_ms.max(100)),
        }
    }

    fn cut(&self, message: String) -> PipelineError {
        PipelineError::StreamCut {
            provider: self.provider.clone(),
            streamed: self.assembler.streamed,
            message,
        }
    }

    async fn next(&mut self) -> Option<Result<SttEvent, PipelineError>> {
        loop {
            if let Some(event) = self.assembler.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.closed {
                return None;
            }
            let step = {
                let audio = &mut self.audio;
                let ws = &mut self.ws;
                let audio_open = audio.is_some();
                tokio::select! {
                    chunk = async move {
                        match audio {
                            Some(a) => a.next().await,
                            None => std::future::pending().await,
                        }
                    }, if audio_open => Step::Audio(chunk),
                    message = ws.next() => Step::Server(message),
                    () = tokio::time::sleep_until(self.last_sent + self.keepalive), if audio_open => Step::Idle,
                }
            };
            match step {
                Step::Idle => {
                    self.last_sent = tokio::time::Instant::now();
                    if let Err(e) = self.ws.send(Message::text(r#"{"type":"KeepAlive"}"#)).await {
                        return Some(Err(
                            self.cut(format!("sending KeepAlive failed: {}", error_chain(&e)))
                        ));
                    }
                }
                Step::Audio(chunk) => {
                    self.last_sent = tokio::time::Instant::now();
                    let sent = match chunk {
                        Some(bytes) => {
                            let whole = self.aligner.push(bytes);
                            if whole.is_empty() {
                                Ok(())
                            } else {
                                self.ws.send(Message::Binary(whole)).await
                            }
                        }
                        None => {
                            self.audio = None;
                            self.ws
                                .send(Message::text(r#"{"type":"CloseStream"}"#))
                                .await
                        }
                    };
                    if let Err(e) = sent {
                        return Some(Err(
                            self.cut(format!("sending audio failed: {}", error_chain(&e)))
                        ));
                    }
                }
                Step::Server(message) => match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(message) = self.assembler.on_message(&text) {
                            return Some(Err(PipelineError::Protocol {
                                provider: self.provider.clone(),
                                streamed: self.assembler.streamed,
                                message,
                            }));
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        self.closed = true;
                        let abnormal = frame.as_ref().filter(|f| f.code != CloseCode::Normal);
                        if let Some(f) = abnormal {
                            return Some(Err(self.cut(format!(
                                "server closed: {} {}",
                                u16::from(f.code),
                                f.reason
                            ))));
                        }
                        if self.audio.is_some() {
                            return Some(Err(
                                self.cut("server closed before the audio ended".into())
                            ));
                        }
                        self.assembler.flush();
                    }
                    None => {
                        self.closed = true;
                        if self.audio.is_some() {
                            return Some(Err(
                                self.cut("connection ended before the audio ended".into())
                            ));
                        }
                        self.assembler.flush();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        self.closed = true;
                        return Some(Err(self.cut(error_chain(&e))));
                    }
                },
            }
        }
    }
}

enum Step {
    Idle,
    Audio(Option<bytes::Bytes>),
    Server(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
}

#[derive(Deserialize)]
struct ServerMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    /// An object in `Results`, but an array of channel indexes in `UtteranceEnd`.
    #[serde(default)]
    channel: serde_json::Value,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
}

/// Turns Deepgram's segment-level results into whole-utterance partials and finals (sans-IO).
#[derive(Debug, Default)]
pub(crate) struct TranscriptAssembler {
    /// Finalised segments of the utterance in progress.
    utterance: String,
    pending: VecDeque<SttEvent>,
    streamed: bool,
}

impl TranscriptAssembler {
    pub(crate) fn on_message(&mut self, text: &str) -> Result<(), String> {
        let message: ServerMessage =
            serde_json::from_str(text).map_err(|e| format!("bad message: {e}"))?;
        match message.kind.as_str() {
            "Results" => {
                let channel: Channel = serde_json::from_value(message.channel)
                    .map_err(|e| format!("bad Results channel: {e}"))?;
                let transcript = channel
                    .alternatives
                    .into_iter()
                    .next()
                    .map(|a| a.transcript)
                    .unwrap_or_default();
                if message.is_final {
                    join(&mut self.utterance, &transcript);
                    if message.speech_final {
                        self.flush();
                    } else if !self.utterance.is_empty() {
                        self.emit(SttEvent::Partial(self.utterance.clone()));
                    }
                } else if !transcript.is_empty() {
                    let mut guess = self.utterance.clone();
                    join(&mut guess, &transcript);
                    self.emit(SttEvent::Partial(guess));
                }
            }
            "UtteranceEnd" => self.flush(),
            _ => {} // Metadata, SpeechStarted
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) {
        if !self.utterance.is_empty() {
            let text = std::mem::take(&mut self.utterance);
            self.emit(SttEvent::Final(text));
        }
    }

    fn emit(&mut self, event: SttEvent) {
        self.streamed = true;
        self.pending.push_back(event);
    }

    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> Vec<SttEvent> {
        self.pending.drain(..).collect()
    }
}

fn join(acc: &mut String, segment: &str) {
    let segment = segment.trim();
    if segment.is_empty() {
        return;
    }
    if !acc.is_empty() {
        acc.push(' ');
    }
    acc.push_str(segment);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(transcript: &str, is_final: bool, speech_final: bool) -> String {
        serde_json::json!({
            "type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
            "is_final": is_final, "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.98, "words": []}]}
        })
        .to_string()
    }

    #[test]
    fn interim_and_final_segments_build_one_utterance() {
        let mut a = TranscriptAssembler::default();
        a.on_message(&results("hello", false, false)).unwrap();
        a.on_message(&results("hello there", true, false)).unwrap();
        a.on_message(&results("how", false, false)).unwrap();
        a.on_message(&results("how are you", true, true)).unwrap();
        a.on_message(r#"{"type":"Metadata","request_id":"x"}"#)
            .unwrap();
        assert_eq!(
            a.drain(),
            [
                SttEvent::Partial("hello".into()),
                SttEvent::Partial("hello there".into()),
                SttEvent::Partial("hello there how".into()),
                SttEvent::Final("hello there how are you".into()),
            ]
        );
    }

    #[test]
    fn utterance_end_flushes_what_was_final() {
        let mut a = TranscriptAssembler::default();
        a.on_message(&results("yes", true, false)).unwrap();
        a.on_message(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":1.2}"#)
            .unwrap();
        assert_eq!(a.drain().last(), Some(&SttEvent::Final("yes".into())));
        assert!(a.on_message("not json").is_err());
    }
}
