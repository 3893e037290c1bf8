//! Voice sessions spend the caller's daily voice seconds: the async shell around the voice
//! meter (`meter.rs`). It makes the control plane's quota calls (`POST /api/quota/reserve`,
//! `/api/quota/settle`, with the caller's own bearer token, kind `voice_seconds`); every
//! decision about when to call and what to settle is the meter's.
//!
//! Not metered: callers with development tokens (`gateway.dev_tokens`, tier `dev`; they have
//! no control-plane account) and every caller of a gateway without a control plane
//! (`gateway.control_plane_url` empty, as in library tests; `companion` always sets it).
//!
//! Reservations never leak: the control plane keeps an unsettled reservation counted for its
//! day (it has no expiry), so every block asked for is settled when the session ends, from
//! `Drop` in the background if the session task is torn down, and retried a few times when
//! the control plane is unreachable. Keys are idempotent: a retried reserve or settle is
//! answered, never counted twice.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{
    meter::{Cutoff, MeterConfig, Next, VoiceMeter},
    refresh::SessionAuth,
};
use crate::core::{
    auth::Caller,
    control_plane::quota::{Grant, GrantError, QuotaClient, QuotaKind, random_hex},
};

/// The token tier of development callers, who are never metered.
const DEV_TIER: &str = "dev";

/// Waits before retrying a settle the control plane did not answer.
const SETTLE_RETRIES: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// How voice sessions reserve the caller's daily voice seconds (`voice.quota`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceQuotaConfig {
    /// Seconds reserved per block: one at the start of a session, the next before it runs
    /// out. Larger blocks mean fewer control-plane calls; each running session holds up to
    /// one block the caller cannot spend elsewhere until it is settled. Default: `60`.
    pub block_secs: u64,
    /// Seconds before a block runs out that the next one is reserved, so a slow control
    /// plane does not cut a call. Default: `15`.
    pub renew_lead_secs: u64,
    /// Seconds between attempts while the control plane is unreachable mid-session (the call
    /// goes on until its granted time runs out). Default: `5`.
    pub retry_secs: u64,
}

impl Default for VoiceQuotaConfig {
    fn default() -> Self {
        Self {
            block_secs: 60,
            renew_lead_secs: 15,
            retry_secs: 5,
        }
    }
}

impl VoiceQuotaConfig {
    /// The meter's settings; `block_secs` is at least 1 (checked at start-up).
    pub(super) fn meter(&self) -> MeterConfig {
        MeterConfig {
            block_secs: self.block_secs.max(1),
            renew_lead: Duration::from_secs(self.renew_lead_secs),
            retry: Duration::from_secs(self.retry_secs.max(1)),
        }
    }
}

/// Why a voice session may not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No voice seconds are left today; they reset in this many seconds.
    Exhausted { resets_in_secs: u64 },
    /// The control plane could not be asked; retrying shortly may help.
    Unavailable,
    /// The control plane's rate limiter refused the reservation.
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// The control plane does not accept the caller's token.
    Unauthorized(String),
    /// The caller's account may not use voice.
    Forbidden(String),
}

/// The first block of a session, reserved before the session starts. Released (settled at
/// 0) when dropped unused, e.g. when the call could not be set up.
#[derive(Debug)]
pub(crate) struct Admission {
    account: Option<Account>,
    granted: u64,
    resets_in_secs: u64,
    /// How the session checks the client's refreshed tokens (`auth`); `None` when nobody
    /// set it (a placeholder admission). Boxed: admissions travel in the media endpoint's
    /// commands, which stay small.
    auth: Option<Box<SessionAuth>>,
}

/// Whom a session's reservations belong to and how to reach the control plane.
#[derive(Debug, Clone)]
struct Account {
    quota: QuotaClient,
    token: String,
    user: String,
    /// Keys are `<prefix>-<block number>`.
    prefix: String,
}

impl Account {
    fn key(&self, seq: u32) -> String {
        format!("{}-{seq}", self.prefix)
    }

    async fn reserve(self, seq: u32, amount: u64) -> Result<Grant, GrantError> {
        self.quota
            .grant(&self.token, QuotaKind::VoiceSeconds, &self.key(seq), amount)
            .await
    }

    /// Settles `(block, used)` pairs now; on failure keeps trying in the background.
    async fn settle(self, blocks: Vec<(u32, u64)>) {
        if !self.try_settle(&blocks).await {
            tokio::spawn(async move {
                for wait in SETTLE_RETRIES {
                    tokio::time::sleep(wait).await;
                    if self.try_settle(&blocks).await {
                        return;
                    }
                }
                tracing::error!(user = %self.user, key = %self.prefix, "voice quota never settled: its blocks stay counted today");
            });
        }
    }

    async fn try_settle(&self, blocks: &[(u32, u64)]) -> bool {
        let keys: Vec<(String, u64)> = blocks
            .iter()
            .map(|&(seq, used)| (self.key(seq), used))
            .collect();
        let items: Vec<(&str, u64)> = keys.iter().map(|(k, u)| (k.as_str(), *u)).collect();
        self.quota.settle_all(&self.token, &items).await
    }

    /// Settles from a destructor: in the background, if a runtime is still there.
    fn settle_detached(self, blocks: Vec<(u32, u64)>) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.settle(blocks));
            }
            Err(_) => {
                tracing::warn!(user = %self.user, key = %self.prefix, "no runtime to settle voice quota");
            }
        }
    }
}

impl Admission {
    /// A session nobody meters (development tokens, no control plane).
    pub(crate) fn unmetered() -> Self {
        Self {
            account: None,
            granted: 0,
            resets_in_secs: 0,
            auth: None,
        }
    }

    /// Reserves the first block for `caller` (holding `token`) through `quota`.
    pub(crate) async fn reserve(
        quota: &QuotaClient,
        config: &VoiceQuotaConfig,
        caller: &Caller,
        token: &str,
    ) -> Result<Self, Refusal> {
        if caller.tier == DEV_TIER || !quota.is_configured() {
            return Ok(Self::unmetered());
        }
        let account = Account {
            quota: quota.clone(),
            token: token.to_owned(),
            user: caller.user_id.clone(),
            prefix: format!("voice-{}", random_hex()),
        };
        let amount = config.meter().block_secs;
        match account.clone().reserve(0, amount).await {
            Ok(grant) if grant.granted > 0 => Ok(Self {
                account: Some(account),
                granted: grant.granted,
                resets_in_secs: grant.resets_in_secs,
                auth: None,
            }),
            Ok(grant) => {
                // An empty grant reserved nothing; its record is closed all the same.
                account.settle(vec![(0, 0)]).await;
                Err(Refusal::Exhausted {
                    resets_in_secs: grant.resets_in_secs,
                })
            }
            Err(GrantError::RateLimited {
                message,
                retry_after,
            }) => Err(Refusal::RateLimited {
                message,
                retry_after,
            }),
            Err(GrantError::Unauthorized(m)) => Err(Refusal::Unauthorized(m)),
            Err(GrantError::Forbidden(m)) => Err(Refusal::Forbidden(m)),
            Err(GrantError::Unreachable | GrantError::Malformed | GrantError::Failed(_)) => {
                // The request may have been recorded even though its answer was lost.
                account.settle(vec![(0, 0)]).await;
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Checks the session's refreshed tokens with `auth`.
    pub(crate) fn with_auth(mut self, auth: SessionAuth) -> Self {
        self.auth = Some(Box::new(auth));
        self
    }

    /// How the session checks refreshed tokens (taken once, by the session).
    pub(super) fn take_auth(&mut self) -> Option<SessionAuth> {
        self.auth.take().map(|auth| *auth)
    }

    /// Starts metering a session that began at `started`; `None` when it is not metered.
    pub(super) fn start(mut self, config: &VoiceQuotaConfig, started: Instant) -> Option<Metering> {
        let account = self.account.take()?;
        Some(Metering {
            meter: VoiceMeter::new(config.meter(), started, self.granted),
            account: Some(account),
            in_flight: None,
            resets_at: started + Duration::from_secs(self.resets_in_secs),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(account) = self.account.take() {
            account.settle_detached(vec![(0, 0)]);
        }
    }
}

/// A running session's metering: renews blocks in the background of the session and settles
/// them all when it ends.
#[derive(Debug)]
pub(super) struct Metering {
    meter: VoiceMeter,
    /// `None` once settled.
    account: Option<Account>,
    in_flight: Option<JoinHandle<Result<Grant, GrantError>>>,
    /// When the day's quota resets, as of the latest grant.
    resets_at: Instant,
}

impl Metering {
    /// Reserves blocks as the meter asks; returns when the session must end. Cancel-safe:
    /// all state lives in `self` (a reserve in flight is a spawned task).
    pub(super) async fn cutoff(&mut self) -> Cutoff {
        loop {
            let wake = match self.meter.poll(Instant::now()) {
                Next::End(cutoff) => return cutoff,
                Next::Reserve { seq, amount } => {
                    if let Some(account) = &self.account {
                        self.in_flight = Some(tokio::spawn(account.clone().reserve(seq, amount)));
                    }
                    continue;
                }
                Next::WaitUntil(wake) => tokio::time::Instant::from_std(wake),
            };
            match &mut self.in_flight {
                Some(task) => {
                    tokio::select! {
                        answer = task => {
                            self.in_flight = None;
                            self.on_answer(answer);
                        }
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                None => tokio::time::sleep_until(wake).await,
            }
        }
    }

    fn on_answer(&mut self, answer: Result<Result<Grant, GrantError>, tokio::task::JoinError>) {
        let user = self.account.as_ref().map_or("", |a| a.user.as_str());
        match answer {
            Ok(Ok(grant)) => {
                tracing::debug!(%user, granted = grant.granted, "voice quota renewed");
                self.meter.on_grant(grant.granted);
                self.resets_at = Instant::now() + Duration::from_secs(grant.resets_in_secs);
            }
            Ok(Err(error)) if !error.retryable() => {
                tracing::warn!(%user, ?error, "voice quota renewal refused; the session ends when its time runs out");
                self.meter.on_refused(Instant::now());
            }
            Ok(Err(error)) => {
                tracing::warn!(%user, ?error, "voice quota renewal failed; retrying");
                self.meter.on_unreachable(Instant::now());
            }
            Err(error) => {
                tracing::warn!(%user, %error, "voice quota renewal task failed; retrying");
                self.meter.on_unreachable(Instant::now());
            }
        }
    }

    /// Seconds granted so far.
    pub(super) fn granted_secs(&self) -> u64 {
        self.meter.granted_secs()
    }

    /// Renews (and settles) with `token` from now on: the client refreshed it (`auth`,
    /// already checked to name the same caller).
    pub(super) fn refresh_token(&mut self, token: String, now: Instant) {
        if let Some(account) = &mut self.account {
            account.token = token;
            self.meter.on_token_refreshed(now);
        }
    }

    /// Milliseconds from `now` until the day's quota resets.
    pub(super) fn resets_in_ms(&self, now: Instant) -> u64 {
        let left = self.resets_at.saturating_duration_since(now);
        u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
    }

    /// Settles every block for a session that ended at `ended` (after the answer to a
    /// reserve still in flight, so that block is settled after it is recorded); returns the
    /// seconds charged.
    pub(super) async fn finish(&mut self, ended: Instant) -> u64 {
        if let Some(task) = self.in_flight.take() {
            let answer = task.await;
            self.on_answer(answer);
        }
        let used = self.meter.used_secs(ended);
        if let Some(account) = self.account.take() {
            account.settle(self.meter.settlements(ended)).await;
        }
        used
    }
}

impl Drop for Metering {
    fn drop(&mut self) {
        if let Some(account) = self.account.take() {
            // Only when the session task is torn down. A reserve still in flight is settled
            // at 0 by key; should it land after this settle, its block stays counted until
            // the day ends.
            account.settle_detached(self.meter.settlements(Instant::now()));
        }
    }
}
