//! Per-endpoint rate limits: a sliding-window counter per (rule, caller), kept in process or in
//! Redis (one atomic Lua script per check) so that several nodes share one budget.
//!
//! Redis faults: every check has a deadline (`rate_limit_deadline_ms`) and fails at once while
//! the client is reconnecting. A rule named in `rate_limit_fail_closed` (by default the auth
//! rules: sign-up, sign-in, password change, refresh, and the per-e-mail sign-in counter) then
//! fails *closed*: it keeps being enforced per node by an in-process window, since admitting
//! unlimited password guesses is worse than a per-node budget. Every other rule fails *open*
//! (admits): a Redis outage must not take chat or billing down. Each failure is counted and the
//! first one of an outage is logged; readiness reports Redis as degraded, never as failing,
//! because one Redis outage would otherwise pull every node out of the load balancer.

pub(crate) mod client;
mod memory;
mod middleware;
mod redis;
mod window;

pub use client::{TrustedProxies, ip_key};
pub(crate) use middleware::{enforce, login_email};
pub use window::{Decision, SlidingWindow};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{Config, RateLimitRule};
use crate::error::Error;

/// Where window counts live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

/// What one check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The configured store decided.
    Decided(Decision),
    /// Redis could not answer in time; this fail-closed rule was decided by this node's
    /// in-process window.
    Fallback(Decision),
    /// Redis could not answer in time; this rule fails open, so the request is admitted.
    FailedOpen,
}

impl Verdict {
    /// The decision, unless the rule failed open.
    pub(crate) fn decision(self) -> Option<Decision> {
        match self {
            Self::Decided(d) | Self::Fallback(d) => Some(d),
            Self::FailedOpen => None,
        }
    }
}

/// How the limiter has fared with Redis since start-up.
#[derive(Debug, Default)]
struct Stats {
    /// Checks Redis did not answer (error, deadline, or disconnected).
    store_failures: AtomicU64,
    /// Of those, checks a fail-closed rule decided in process.
    fallback_checks: AtomicU64,
    /// Of those, checks admitted unchecked (fail-open rules).
    failed_open: AtomicU64,
    /// Whether the last Redis check failed (so an outage is logged once, and its end too).
    degraded: AtomicBool,
}

/// Counts of rate-limit checks Redis could not answer, since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FallbackCounts {
    /// Checks Redis did not answer in time (error, deadline, or not connected).
    pub store_failures: u64,
    /// Of those, checks decided by this node's in-process window (fail-closed rules).
    pub fallback_checks: u64,
    /// Of those, requests admitted without a check (fail-open rules).
    pub failed_open: u64,
}

/// The configured rules plus their store.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    rules: Vec<RateLimitRule>,
    store: Store,
    /// Per-node windows of the fail-closed rules while Redis is away (unused when the store is
    /// in process already).
    fallback: memory::MemoryStore,
    fail_closed: Vec<String>,
    deadline: Duration,
    stats: Arc<Stats>,
    /// Whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
}

impl Limiter {
    pub(crate) async fn new(config: &Config) -> Result<Self, Error> {
        let memory = memory::MemoryStore::default();
        let store = if config.redis_url.is_empty() {
            Store::Memory(memory.clone())
        } else {
            let timeouts = redis::Timeouts {
                connect: Duration::from_millis(config.redis_connect_timeout_ms),
                command: Duration::from_millis(config.redis_command_timeout_ms),
                reconnect_max_delay: Duration::from_millis(config.redis_reconnect_max_delay_ms),
            };
            let redis =
                redis::RedisStore::connect(&config.redis_url, &config.redis_key_prefix, timeouts)
                    .await?;
            Store::Redis(redis)
        };
        let proxies =
            TrustedProxies::parse(&config.trusted_proxies).map_err(|_| Error::Config {
                key: "trusted_proxies",
                expected: "IP addresses or CIDR blocks such as 10.0.0.0/8 or fd00::/8",
            })?;
        memory.spawn_sweeper(Duration::from_secs(config.rate_limit_sweep_secs));
        Ok(Self {
            rules: config.rate_limits.clone(),
            store,
            fallback: memory,
            fail_closed: config.rate_limit_fail_closed.clone(),
            deadline: Duration::from_millis(config.rate_limit_deadline_ms),
            stats: Arc::default(),
            proxies,
        })
    }

    fn rule_for(&self, path: &str) -> Option<&RateLimitRule> {
        self.rules.iter().find(|r| path.starts_with(&r.prefix))
    }

    /// The overall deadline of one request's checks.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Counts one request by `who` under `rule` at `now_ms` (unix milliseconds), giving Redis
    /// until `deadline`.
    pub(crate) async fn check(
        &self,
        rule: &RateLimitRule,
        who: &str,
        now_ms: u64,
        deadline: tokio::time::Instant,
    ) -> Verdict {
        let window = SlidingWindow {
            limit: rule.limit,
            window_ms: rule.window_secs * 1000,
        };
        let redis = match &self.store {
            Store::Memory(m) => return Verdict::Decided(m.check(&rule.name, who, window, now_ms)),
            Store::Redis(r) => r,
        };
        let result = if redis.connected() {
            match tokio::time::timeout_at(deadline, redis.check(&rule.name, who, window, now_ms))
                .await
            {
                Ok(result) => result,
                Err(_) => Err("no answer before the rate-limit deadline".to_owned()),
            }
        } else {
            Err(format!("not connected ({})", redis.state()))
        };
        let reason = match result {
            Ok(decision) => {
                if self.stats.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate-limit store reachable again: shared limits restored");
                }
                return Verdict::Decided(decision);
            }
            Err(reason) => reason,
        };
        self.stats.store_failures.fetch_add(1, Ordering::Relaxed);
        let closed = self.fail_closed.contains(&rule.name);
        if !self.stats.degraded.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %reason,
                fail_closed = ?self.fail_closed,
                "rate-limit store unavailable: fail-closed rules now limit per node, \
                 the others admit until it is back"
            );
        } else {
            tracing::debug!(error = %reason, rule = rule.name, closed, "rate-limit store unavailable");
        }
        if closed {
            self.stats.fallback_checks.fetch_add(1, Ordering::Relaxed);
            Verdict::Fallback(self.fallback.check(&rule.name, who, window, now_ms))
        } else {
            self.stats.failed_open.fetch_add(1, Ordering::Relaxed);
            Verdict::FailedOpen
        }
    }

    /// Checks Redis could not answer since start-up.
    pub(crate) fn fallback_counts(&self) -> FallbackCounts {
        FallbackCounts {
            store_failures: self.stats.store_failures.load(Ordering::Relaxed),
            fallback_checks: self.stats.fallback_checks.load(Ordering::Relaxed),
            failed_open: self.stats.failed_open.load(Ordering::Relaxed),
        }
    }

    /// Redis readiness, if Redis is configured: `Err` (a degradation, never a failure) says
    /// the client's state, what went wrong and what the limiter does meanwhile.
    pub(crate) async fn redis_ping(&self) -> Option<Result<(), String>> {
        let Store::Redis(r) = &self.store else {
            return None;
        };
        let result = if r.connected() {
            r.ping().await
        } else {
            Err("reconnecting".to_owned())
        };
        Some(result.map_err(|e| {
            let counts = self.fallback_counts();
            format!(
                "state {}: {e}; fail-closed rules ({}) limit per node, the others admit \
                 ({} checks fell back, {} admitted unchecked since start)",
                r.state(),
                self.fail_closed.join(", "),
                counts.fallback_checks,
                counts.failed_open
            )
        }))
    }
}
