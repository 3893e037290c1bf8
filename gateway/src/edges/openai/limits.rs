//! Per-caller limits of `/v1/chat/completions` (sans-IO: time is passed in).
//!
//! - **Size per tier:** `max_tokens` is capped at the tier's `max_tokens` (a request asking
//!   for more, or for nothing, is given the cap: the provider never generates more), and a
//!   prompt over the tier's `max_prompt_chars` is refused before any quota or provider work.
//! - **Rate:** chat over WebSocket and QUIC is rate-limited by the control plane's `chat` rule
//!   when the gateway opens a turn (`POST /api/chat/turns`, 100 per hour per user by default).
//!   Completions open no turn (they store nothing), and the quota API they do call is under
//!   another rule, so the same numbers are applied here, per caller, in the gateway:
//!   `gateway.openai.chat_requests_per_window` per `chat_window_secs`. The count is per
//!   gateway node (N nodes admit up to N times the limit per caller); the day's message quota,
//!   which every completion also spends, stays global.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use crate::core::config::openai::CompletionLimits;

/// The limits of `tier`: its own, else `free`'s, else the smallest defaults.
pub(crate) fn for_tier(tiers: &BTreeMap<String, CompletionLimits>, tier: &str) -> CompletionLimits {
    tiers
        .get(tier)
        .or_else(|| tiers.get("free"))
        .copied()
        .unwrap_or(CompletionLimits {
            max_tokens: 1_024,
            max_prompt_chars: 16_000,
        })
}

impl CompletionLimits {
    /// The `max_tokens` a request is sent with: what it asked for, at most the cap; the cap
    /// when it asked for nothing (so a provider's own default cannot exceed it).
    pub(crate) fn cap_tokens(&self, asked: Option<u32>) -> u32 {
        asked.map_or(self.max_tokens, |asked| asked.min(self.max_tokens))
    }
}

/// Fixed-window request counts per caller.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window: Duration,
    /// Caller -> (start of their current window, requests in it).
    windows: HashMap<String, (Instant, u32)>,
}

/// Windows kept before expired ones are swept (one sweep per this many new callers at most).
const SWEEP_AT: usize = 4_096;

impl RateLimiter {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: HashMap::new(),
        }
    }

    /// Counts one request of `caller` at `now`: `Ok`, or `Err(seconds until it may retry)`.
    pub(crate) fn check(&mut self, caller: &str, now: Instant) -> Result<(), u64> {
        if self.windows.len() >= SWEEP_AT && !self.windows.contains_key(caller) {
            // Every entry has the same window length, so "expired" means the same for all.
            let window = self.window;
            self.windows
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        }
        let entry = self.windows.entry(caller.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = (entry.0 + self.window).saturating_duration_since(now);
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Callers with a window in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::openai::default_tiers;

    #[test]
    fn a_caller_gets_the_limit_per_window_and_is_told_when_to_retry() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(3600));
        for _ in 0..3 {
            assert_eq!(limiter.check("alice", start), Ok(()));
        }
        assert_eq!(
            limiter.check("alice", start + Duration::from_secs(600)),
            Err(3000)
        );
        assert_eq!(limiter.check("bob", start), Ok(()), "per caller");
        assert_eq!(
            limiter.check("alice", start + Duration::from_secs(3600)),
            Ok(())
        );
    }

    #[test]
    fn expired_windows_are_swept_so_memory_follows_active_callers() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(1, Duration::from_secs(60));
        for i in 0..SWEEP_AT {
            limiter.check(&format!("u{i}"), start).unwrap();
        }
        limiter
            .check("late", start + Duration::from_secs(61))
            .unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn max_tokens_never_exceeds_the_tiers_cap() {
        let free = default_tiers()["free"];
        assert_eq!(free.cap_tokens(Some(1_000_000)), 1_024);
        assert_eq!(free.cap_tokens(None), 1_024);
        assert_eq!(free.cap_tokens(Some(16)), 16);
    }

    #[test]
    fn an_unknown_tier_gets_the_free_limits() {
        let tiers = default_tiers();
        assert_eq!(for_tier(&tiers, "enterprise"), tiers["free"]);
        assert_eq!(for_tier(&tiers, "pro").max_tokens, 8_192);
    }
}
