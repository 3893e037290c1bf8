//! The voice bridge: every WebRTC call, and every `start_session` on a WebSocket, talks to
//! its own voice pipeline session.
//!
//! ```text
//! caller ─RTP Opus─▶ jitter buffer ─20 ms tick─▶ Opus decode (FEC/PLC) ─Frame48─▶ session
//! caller ◀─RTP Opus── Opus encode ◀──────── SessionOutput::Audio (already paced) ◀─┘
//! caller ◀─`events`── JSON: session_started, the session's events, `visemes` batches, session_ended
//! caller ──`events`─▶ hang_up / interrupt / mute / unmute / configure / ping / auth (else: `error`)
//!
//! socket ─binary audio frames─▶ Opus decode / PCM downmix + resample ─bounded queue─▶ session
//! socket ◀─binary audio + viseme frames, JSON text── the same session output
//! ```
//!
//! [`VoiceSessionFactory`] holds what every session shares (providers, the Silero model, the
//! settings); the WebRTC edge installs it as the node's call handler and other transports'
//! edges start their sessions from the same factory: [`open_session`] makes the pipeline
//! session, [`bridge`] runs a transport's session to its end. Per session one task with one
//! 20 ms interval: `bridge.rs` is that task's core (held events, viseme batching, drain
//! phases, end reasons) over a small [`Transport`] seam, implemented by each edge. The sans-IO
//! parts here are `outbound.rs` (Opus packets from one reused buffer), `frame_input.rs`
//! (binary audio frames to 20 ms frames), `frame_output.rs` (binary frames out), `events.rs`
//! (client controls, viseme batching), `refresh.rs` (who may refresh a session's token) and
//! `meter.rs` (when to reserve the caller's next block of voice seconds, when the session must
//! end, what to settle); `quota.rs` makes its control-plane calls. The first block is reserved
//! before a session starts ([`VoiceSessionFactory::admit`]).
//!
//! [`open_session`]: VoiceSessionFactory::open_session
//! [`bridge`]: VoiceSessionFactory::bridge

mod bridge;
mod events;
mod frame_input;
mod frame_output;
mod meter;
mod outbound;
mod quota;
mod refresh;

pub(crate) use bridge::{Heard, Summary, Transport};
pub(crate) use events::{Control, client_message, error};
pub(crate) use frame_input::AudioIn;
pub(crate) use frame_output::AudioOut;
pub(crate) use outbound::Packetizer;
pub use quota::VoiceQuotaConfig;
pub(crate) use quota::{Admission, Refusal};
pub(crate) use refresh::refused as refresh_refused;

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicUsize, Ordering::Relaxed},
};

use media::{JitterConfig, OpusConfig, OpusEncoder, SileroModel};
use pipeline::{
    config::PipelineConfig,
    latency::LatencyMetrics,
    session::{Providers, SessionConfig},
};
use serde::{Deserialize, Serialize};

use pipeline::session::{SessionHandle, spawn_session};
use protocol::voice::SessionStarted;
use tokio::sync::watch;

use self::bridge::Bridge;
use super::{Node, auth::Caller, control_plane::quota::QuotaClient, types::DrainPhase};

/// How calls are bridged to voice sessions.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    /// The session engine: persona, turn detection, VAD, queues (pipeline's defaults).
    pub session: SessionConfig,
    /// The reply's Opus encoder (media's defaults: 32 kbit/s, complexity 5, in-band FEC).
    pub opus: OpusConfig,
    /// The caller's jitter buffer (media's defaults: 40..200 ms adaptive, 1 s of packets).
    pub jitter: JitterConfig,
    /// Longest a viseme waits, in ms of reply audio, to share a `visemes` event with the
    /// next ones. The session emits each viseme just before the audio frame it falls in and
    /// the browser plays audio through its own jitter buffer, so a batch this late still
    /// arrives about when its mouth shape is due. Default 100 (20 = one event per frame).
    pub viseme_batch_ms: u16,
    /// How sessions spend the caller's daily voice seconds (blocks reserved from the control
    /// plane). See [`VoiceQuotaConfig`].
    pub quota: VoiceQuotaConfig,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            opus: OpusConfig::default(),
            jitter: JitterConfig::default(),
            viseme_batch_ms: 100,
            quota: VoiceQuotaConfig::default(),
        }
    }
}

/// Why the voice bridge could not start or run a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    /// An audio component refused its settings or failed to start (Opus, jitter buffer, VAD).
    #[error("voice media: {0}")]
    Media(#[from] media::MediaError),
    /// The pipeline refused its settings (providers, session config).
    #[error("voice pipeline: {0}")]
    Pipeline(#[from] pipeline::PipelineError),
    /// A binary frame could not be built (a viseme out of range).
    #[error("voice frame: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    /// A setting is out of range (names the key).
    #[error("voice.{0}")]
    Config(&'static str),
}

/// Counters over every call this factory has bridged.
#[derive(Debug, Default)]
struct Counters {
    active: AtomicUsize,
    started: AtomicUsize,
    failed: AtomicUsize,
}

struct Shared {
    config: VoiceConfig,
    providers: Providers,
    vad: SileroModel,
    metrics: Option<LatencyMetrics>,
    counters: Counters,
    /// The HTTP client for the control plane's quota API, built on first use from the
    /// configuration of the gateway the factory serves.
    quota: OnceLock<QuotaClient>,
}

/// Starts a voice session for every call and every WebSocket `start_session`; cheap to clone.
#[derive(Clone)]
pub struct VoiceSessionFactory {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VoiceSessionFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceSessionFactory")
            .field("providers", &self.shared.providers)
            .field("active", &self.active_sessions())
            .finish_non_exhaustive()
    }
}

impl VoiceSessionFactory {
    /// A factory over `providers` (usually pipeline's failover wrappers) and the process-wide
    /// Silero model. The settings are checked now (an encoder, a jitter buffer and a VAD
    /// handle are built once), so a bad config fails at start-up, not on the first call.
    pub fn new(
        config: VoiceConfig,
        providers: Providers,
        vad: SileroModel,
    ) -> Result<Self, VoiceError> {
        if config.quota.block_secs == 0 {
            return Err(VoiceError::Config(
                "quota.block_secs: expected at least 1 second",
            ));
        }
        OpusEncoder::new(&config.opus)?;
        media::JitterBuffer::new(config.jitter.clone())?;
        vad.for_call()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                providers,
                vad,
                metrics: None,
                counters: Counters::default(),
                quota: OnceLock::new(),
            }),
        })
    }

    /// A factory whose providers are pipeline's failover chains built from `pipeline`.
    pub fn from_pipeline_config(
        config: VoiceConfig,
        pipeline: &PipelineConfig,
        vad: SileroModel,
    ) -> Result<Self, VoiceError> {
        let providers = Providers {
            stt: Arc::new(pipeline::failover::build_stt(pipeline)?),
            llm: Arc::new(pipeline::failover::build_llm(pipeline)?),
            tts: Arc::new(pipeline::failover::build_tts(pipeline)?),
        };
        Self::new(config, providers, vad)
    }

    /// Records every finished turn's latency marks in `metrics`. Call before installing.
    #[must_use]
    pub fn with_metrics(self, metrics: LatencyMetrics) -> Self {
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|s| Shared {
            config: s.config.clone(),
            providers: s.providers.clone(),
            vad: s.vad.clone(),
            metrics: None,
            counters: Counters::default(),
            quota: OnceLock::new(),
        });
        Self {
            shared: Arc::new(Shared {
                metrics: Some(metrics),
                ..shared
            }),
        }
    }

    /// Sessions (WebRTC calls and WebSocket sessions) whose task is still running.
    pub fn active_sessions(&self) -> usize {
        self.shared.counters.active.load(Relaxed)
    }

    /// Sessions started since the factory was built.
    pub fn sessions_started(&self) -> usize {
        self.shared.counters.started.load(Relaxed)
    }

    /// Reserves the first block of voice seconds for a session of `caller` (holding `token`)
    /// from `node`'s control plane (see `quota.rs` for who is metered). The session checks
    /// the client's refreshed tokens with `node`'s verifier.
    pub(crate) async fn admit(
        &self,
        node: &Node,
        caller: &Caller,
        token: &str,
    ) -> Result<Admission, Refusal> {
        let quota = self
            .shared
            .quota
            .get_or_init(|| QuotaClient::new(node.config()))
            .clone();
        let auth = refresh::SessionAuth::new(node.shared_verifier(), caller.user_id.clone());
        let config = self.shared.config.quota.clone();
        let (caller, token) = (caller.clone(), token.to_owned());
        // In its own task: should the request that asked go away mid-call (an HTTP client
        // hanging up), the reservation still completes and is released by its `Drop`.
        let reserve =
            tokio::spawn(async move { Admission::reserve(&quota, &config, &caller, &token).await });
        let admission = reserve.await.unwrap_or(Err(Refusal::Unavailable))?;
        Ok(admission.with_auth(auth))
    }

    /// Calls whose session could not start (the caller got an `error` and was hung up on).
    pub fn sessions_failed(&self) -> usize {
        self.shared.counters.failed.load(Relaxed)
    }

    /// The voice settings every session runs with.
    pub(crate) fn config(&self) -> &VoiceConfig {
        &self.shared.config
    }

    /// A fresh pipeline session for one caller: every transport's first step.
    pub(crate) fn open_session(&self) -> Result<SessionHandle, VoiceError> {
        let shared = &self.shared;
        Ok(spawn_session(
            shared.config.session.clone(),
            shared.providers.clone(),
            shared.vad.for_call()?,
            shared.metrics.clone(),
        )?)
    }

    /// A session that could not start (its caller was told and hung up on).
    pub(crate) fn count_failed(&self) {
        self.shared.counters.failed.fetch_add(1, Relaxed);
    }

    /// Runs `transport`'s `session` to its end: metered from `admission`, following the
    /// node's `drain`, counted as active meanwhile.
    pub(crate) async fn bridge<T: Transport>(
        &self,
        transport: T,
        started: SessionStarted,
        session: SessionHandle,
        mut admission: Admission,
        drain: watch::Receiver<DrainPhase>,
    ) {
        let counters = &self.shared.counters;
        counters.active.fetch_add(1, Relaxed);
        counters.started.fetch_add(1, Relaxed);
        let config = &self.shared.config;
        let auth = admission.take_auth();
        let metering = admission.start(&config.quota, std::time::Instant::now());
        Bridge::new(transport, started, config.viseme_batch_ms)
            .metered(metering)
            .authorized(auth)
            .run(session, drain)
            .await;
        counters.active.fetch_sub(1, Relaxed);
    }
}
