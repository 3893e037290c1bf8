//! The async shell around [`SessionCore`]: one tokio task per call that owns the provider
//! streams and the channels, and does what the core asks.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use media::{Frame48, SpeechModel};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::SessionConfig;
use super::core::{Action, SessionCore};
use super::{SessionControl, SessionOutput};
use crate::PipelineError;
use crate::latency::LatencyMetrics;
use crate::provider::{ChatMessage, LlmProvider, SttProvider, TtsProvider};

/// The three provider stages a session talks to (usually the failover wrappers from
/// [`crate::failover`], so a session never sees the provider list).
#[derive(Clone)]
pub struct Providers {
    /// Speech to text.
    pub stt: Arc<dyn SttProvider>,
    /// The language model.
    pub llm: Arc<dyn LlmProvider>,
    /// Text to speech.
    pub tts: Arc<dyn TtsProvider>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("stt", &self.stt.name())
            .field("llm", &self.llm.name())
            .field("tts", &self.tts.name())
            .finish()
    }
}

/// A running session, as the transport sees it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Inbound audio: decoded 20 ms 48 kHz frames stamped on the input media clock, in order.
    /// Dropping it ends the session.
    pub input: mpsc::Sender<Frame48>,
    /// Client controls (`interrupt`). Dropping it does not end the session; the input does.
    pub control: mpsc::Sender<SessionControl>,
    /// What to send to the caller, in order: audio frames are released in real time (one per
    /// 20 ms slot), so the transport sends each as it arrives.
    pub output: mpsc::Receiver<SessionOutput>,
    /// Finishes when the input is closed (or the output dropped); yields the conversation.
    pub done: JoinHandle<Vec<ChatMessage>>,
}

/// Starts a session task on the current tokio runtime. `model` is this call's VAD handle
/// (`SileroModel::for_call`); `metrics` receives every finished turn.
pub fn spawn_session<M>(
    config: SessionConfig,
    providers: Providers,
    model: M,
    metrics: Option<LatencyMetrics>,
) -> Result<SessionHandle, PipelineError>
where
    M: SpeechModel + Send + 'static,
{
    let (input, input_rx) = mpsc::channel(config.input_capacity.max(1));
    // Controls are rare and each one is idempotent; a few slots absorb a burst of clicks.
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (output_tx, output) = mpsc::channel(config.output_capacity.max(1));
    let stt_queue = config.stt_queue_frames.max(1);
    let core = SessionCore::new(config, model, metrics, Instant::now())?;
    // Connect now, not when the first turn ends.
    let warm = providers.clone();
    tokio::spawn(async move {
        let (a, b, c) = tokio::join!(warm.stt.warm_up(), warm.llm.warm_up(), warm.tts.warm_up());
        for error in [a.err(), b.err(), c.err()].into_iter().flatten() {
            tracing::info!(%error, "provider warm-up failed");
        }
    });
    let channels = Channels {
        input: input_rx,
        control: Some(control_rx),
        output: output_tx,
    };
    let done = tokio::spawn(run(core, providers, channels, stt_queue));
    Ok(SessionHandle {
        input,
        control,
        output,
        done,
    })
}

async fn next_of<S: Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Controls queued before `SessionHandle::control` senders wait.
const CONTROL_QUEUE: usize = 8;

/// The session task's ends of its channels.
struct Channels {
    input: mpsc::Receiver<Frame48>,
    /// `None` once every control sender is gone (the session goes on listening).
    control: Option<mpsc::Receiver<SessionControl>>,
    output: mpsc::Sender<SessionOutput>,
}

async fn next_control(
    control: &mut Option<mpsc::Receiver<SessionControl>>,
) -> Option<SessionControl> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run<M: SpeechModel>(
    mut core: SessionCore<M>,
    providers: Providers,
    channels: Channels,
    stt_queue: usize,
) -> Vec<ChatMessage> {
    let Channels {
        mut input,
        mut control,
        output,
    } = channels;
    let mut stt_audio: Option<mpsc::Sender<Bytes>> = None;
    let mut stt = None;
    let mut llm = None;
    let mut tts = None;
    loop {
        while let Some(action) = core.poll_action() {
            match action {
                Action::SttStart => {
                    let (tx, rx) = mpsc::channel::<Bytes>(stt_queue);
                    stt_audio = Some(tx);
                    let audio = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|b| (b, rx))
                    });
                    stt = Some(providers.stt.transcribe(audio.boxed()));
                }
                Action::SttAudio(bytes) => {
                    if let Some(tx) = &stt_audio
                        && tx.try_send(bytes).is_err()
                    {
                        tracing::warn!("speech recognition is not keeping up; audio dropped");
                    }
                }
                Action::SttEnd => stt_audio = None,
                Action::SttCancel => {
                    stt_audio = None;
                    stt = None;
                }
                Action::LlmStart(request) => llm = Some(providers.llm.stream(request)),
                Action::LlmCancel => llm = None,
                Action::TtsStart(request) => tts = Some(providers.tts.synthesize(request)),
                Action::TtsCancel => tts = None,
                Action::Output(o) => {
                    if output.send(o).await.is_err() {
                        return core.history();
                    }
                }
            }
        }
        let deadline = core.poll_timeout();
        let wants_audio = core.wants_tts_audio();
        tokio::select! {
            biased;
            request = next_control(&mut control) => match request {
                Some(SessionControl::Interrupt) => {
                    core.interrupt(Instant::now());
                }
                None => control = None,
            },
            frame = input.recv() => match frame {
                Some(frame) => core.handle_audio(&frame, Instant::now()),
                None => return core.history(),
            },
            () = sleep_until(deadline) => core.handle_timeout(Instant::now()),
            event = next_of(&mut stt) => match event {
                Some(event) => core.handle_stt(event, Instant::now()),
                None => {
                    stt = None;
                    core.handle_stt_end();
                }
            },
            event = next_of(&mut llm) => match event {
                Some(event) => core.handle_llm(event, Instant::now()),
                None => {
                    llm = None;
                    core.handle_llm_end(Instant::now());
                }
            },
            chunk = next_of(&mut tts), if wants_audio => match chunk {
                Some(Ok(chunk)) => core.handle_tts(&chunk, Instant::now()),
                Some(Err(error)) => {
                    tracing::warn!(%error, "speech synthesis failed; chunk skipped");
                    tts = None;
                    core.handle_tts_end(Instant::now());
                }
                None => {
                    tts = None;
                    core.handle_tts_end(Instant::now());
                }
            },
        }
    }
}
