//! Graceful drain of a node: stop taking calls, let live ones run to a deadline, then have
//! each handler say goodbye and end its session, and hang up whatever is left.
//!
//! The phases reach every call through one node-wide watch channel ([`DrainPhase`]), so a
//! drain costs nothing per call until a handler reacts; the voice bridge sends `goodbye` when
//! the node starts draining and `session_ended{server_shutdown}` when it closes.

use std::time::Duration;

use tokio::{sync::watch, time::Instant};

use super::endpoint::Endpoint;
use crate::core::types::DrainPhase;

/// How long handlers get, after the deadline, to end their sessions and hang up on their own
/// (one `session_ended` message and a DTLS close each) before the node hangs up on the rest.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long the forced hang-up may take to empty the endpoint (its close is queued at once;
/// this only bounds a wedged endpoint).
const FORCE_GRACE: Duration = Duration::from_secs(2);

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls live when the drain began.
    pub calls_at_start: usize,
    /// Calls that ended before the deadline (callers hung up or moved on).
    pub ended_before_deadline: usize,
    /// Calls told to close at the deadline.
    pub closed_at_deadline: usize,
    /// Calls whose handler did not hang up within the close grace and that the node hung up.
    pub forced: usize,
    /// Calls still in the endpoint when the drain gave up waiting (should be 0).
    pub left: usize,
}

/// Runs the drain: `phase` turns `Draining`, then `Closing` once every call ended or
/// `deadline` passed, whichever is first. Returns when no call is left (or the endpoint is
/// wedged past the graces).
pub(crate) async fn run(
    endpoint: Option<&Endpoint>,
    phase: &watch::Sender<DrainPhase>,
    deadline: Duration,
) -> DrainReport {
    let until = Instant::now() + deadline;
    phase.send_replace(DrainPhase::Draining {
        deadline: until.into_std(),
    });
    let Some(endpoint) = endpoint else {
        // Never started: no call can exist.
        phase.send_replace(DrainPhase::Closing);
        return DrainReport::default();
    };
    let mut calls = endpoint.active_calls.clone();
    let calls_at_start = *calls.borrow();
    tracing::info!(
        calls = calls_at_start,
        deadline_secs = deadline.as_secs(),
        "draining: no new calls; live calls run until the deadline"
    );
    let _ = tokio::time::timeout_at(until, calls.wait_for(|n| *n == 0)).await;
    let closed_at_deadline = *calls.borrow();
    phase.send_replace(DrainPhase::Closing);
    if closed_at_deadline > 0 {
        tracing::info!(
            calls = closed_at_deadline,
            "drain deadline reached: closing the remaining calls"
        );
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, calls.wait_for(|n| *n == 0)).await;
    let mut forced = 0;
    if *calls.borrow() > 0 {
        let (reply, done) = tokio::sync::oneshot::channel();
        let command = super::command::Command::HangUpAll { reply };
        if endpoint.commands.send(command).await.is_ok() {
            forced = done.await.unwrap_or(0);
        }
        tracing::warn!(
            calls = forced,
            "handlers did not hang up in time: hung up by the node"
        );
        let _ = tokio::time::timeout(FORCE_GRACE, calls.wait_for(|n| *n == 0)).await;
    }
    let left = *calls.borrow();
    DrainReport {
        calls_at_start,
        ended_before_deadline: calls_at_start.saturating_sub(closed_at_deadline),
        closed_at_deadline,
        forced,
        left,
    }
}
