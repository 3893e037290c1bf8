//! The sans-IO failover policy: per-provider health, throttling and circuit breakers.

use std::time::{Duration, Instant};

use crate::PipelineError;
use crate::config::BreakerConfig;

/// What a provider looks like to the policy right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// Serving; `consecutive_failures` below the threshold.
    Healthy {
        /// Failures since the last success.
        consecutive_failures: u32,
    },
    /// Answered 429; skipped until `until`.
    Throttled {
        /// When it may be used again.
        until: Instant,
    },
    /// Breaker open after too many failures; skipped until `until`.
    Open {
        /// When one trial request will be let through.
        until: Instant,
    },
    /// Breaker half-open: one trial request decides. `probing` while it is in flight.
    HalfOpen {
        /// Whether the trial request is under way.
        probing: bool,
    },
}

/// Why a request was let through to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// The half-open trial request: its outcome closes or re-opens the breaker. If it is
    /// abandoned (caller hung up), report [`FailoverPolicy::record_abandoned`].
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
struct Health {
    consecutive_failures: u32,
    breaker: Breaker,
    throttled_until: Option<Instant>,
}

/// Health and breaker state for an ordered list of providers.
#[derive(Debug, Clone)]
pub struct FailoverPolicy {
    threshold: u32,
    open_for: Duration,
    default_retry_after: Duration,
    health: Vec<Health>,
}

impl FailoverPolicy {
    /// A policy for `providers` providers, all healthy.
    pub fn new(providers: usize, config: &BreakerConfig) -> Self {
        Self {
            threshold: config.failure_threshold.max(1),
            open_for: Duration::from_secs(config.open_secs),
            default_retry_after: Duration::from_secs(config.default_retry_after_secs),
            health: vec![
                Health {
                    consecutive_failures: 0,
                    breaker: Breaker::Closed,
                    throttled_until: None
                };
                providers
            ],
        }
    }

    /// Number of providers tracked.
    pub fn len(&self) -> usize {
        self.health.len()
    }

    /// Whether no providers are tracked.
    pub fn is_empty(&self) -> bool {
        self.health.is_empty()
    }

    /// Asks to send a request to provider `index` at `now`. `None` means skip it.
    pub fn admit(&mut self, index: usize, now: Instant) -> Option<Admission> {
        let h = self.health.get_mut(index)?;
        if let Some(until) = h.throttled_until {
            if now < until {
                return None;
            }
            h.throttled_until = None;
        }
        match h.breaker {
            Breaker::Closed => Some(Admission::Normal),
            Breaker::Open { until } if now >= until => {
                h.breaker = Breaker::HalfOpen { probing: true };
                Some(Admission::Probe)
            }
            Breaker::Open { .. } | Breaker::HalfOpen { probing: true } => None,
            Breaker::HalfOpen { probing: false } => {
                h.breaker = Breaker::HalfOpen { probing: true };
                Some(Admission::Probe)
            }
        }
    }

    /// The request to `index` completed: the provider is healthy again.
    pub fn record_success(&mut self, index: usize) {
        if let Some(h) = self.health.get_mut(index) {
            h.consecutive_failures = 0;
            h.breaker = Breaker::Closed;
        }
    }

    /// The request to `index` failed with `error` at `now`.
    ///
    /// A 429 throttles the provider until its `Retry-After` (or the configured default) and
    /// does not count against its health; errors that are the request's own fault
    /// (not [`PipelineError::retryable`]) are ignored; anything else counts, and the
    /// threshold-th consecutive failure (or a failed probe) opens the breaker.
    pub fn record_failure(&mut self, index: usize, now: Instant, error: &PipelineError) {
        let (threshold, open_for, default_retry_after) =
            (self.threshold, self.open_for, self.default_retry_after);
        let Some(h) = self.health.get_mut(index) else {
            return;
        };
        if let PipelineError::RateLimited { retry_after, .. } = error {
            h.throttled_until = Some(now + retry_after.unwrap_or(default_retry_after));
            if h.breaker == (Breaker::HalfOpen { probing: true }) {
                h.breaker = Breaker::HalfOpen { probing: false };
            }
            return;
        }
        if !error.retryable() {
            if h.breaker == (Breaker::HalfOpen { probing: true }) {
                h.breaker = Breaker::HalfOpen { probing: false };
            }
            return;
        }
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        let reopen = matches!(h.breaker, Breaker::HalfOpen { .. });
        if reopen || (h.breaker == Breaker::Closed && h.consecutive_failures >= threshold) {
            h.breaker = Breaker::Open {
                until: now + open_for,
            };
        }
    }

    /// A probe request was dropped before it finished (the caller went away): let the next
    /// request probe instead.
    pub fn record_abandoned(&mut self, index: usize) {
        if let Some(h) = self.health.get_mut(index)
            && h.breaker == (Breaker::HalfOpen { probing: true })
        {
            h.breaker = Breaker::HalfOpen { probing: false };
        }
    }

    /// The provider's state at `now` (for readiness endpoints, metrics and tests).
    pub fn state(&self, index: usize, now: Instant) -> Option<ProviderState> {
        let h = self.health.get(index)?;
        if let Some(until) = h.throttled_until.filter(|u| now < *u) {
            return Some(ProviderState::Throttled { until });
        }
        Some(match h.breaker {
            Breaker::Closed => ProviderState::Healthy {
                consecutive_failures: h.consecutive_failures,
            },
            Breaker::Open { until } if now < until => ProviderState::Open { until },
            Breaker::Open { .. } => ProviderState::HalfOpen { probing: false },
            Breaker::HalfOpen { probing } => ProviderState::HalfOpen { probing },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> PipelineError {
        PipelineError::Status {
            provider: "p".into(),
            status: 503,
            body: String::new(),
        }
    }

    fn policy() -> FailoverPolicy {
        FailoverPolicy::new(2, &BreakerConfig::default())
    }

    #[test]
    fn three_consecutive_failures_open_the_breaker_for_a_minute() {
        let t0 = Instant::now();
        let mut p = policy();
        for _ in 0..2 {
            assert_eq!(p.admit(0, t0), Some(Admission::Normal));
            p.record_failure(0, t0, &outage());
        }
        assert_eq!(
            p.state(0, t0),
            Some(ProviderState::Healthy {
                consecutive_failures: 2
            })
        );
        p.record_failure(0, t0, &outage());
        assert_eq!(
            p.state(0, t0),
            Some(ProviderState::Open {
                until: t0 + Duration::from_secs(60)
            })
        );
        assert_eq!(p.admit(0, t0 + Duration::from_secs(59)), None);
        assert_eq!(
            p.admit(1, t0),
            Some(Admission::Normal),
            "the other provider is unaffected"
        );
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let t0 = Instant::now();
        let mut p = policy();
        p.record_failure(0, t0, &outage());
        p.record_failure(0, t0, &outage());
        p.record_success(0);
        p.record_failure(0, t0, &outage());
        assert_eq!(
            p.state(0, t0),
            Some(ProviderState::Healthy {
                consecutive_failures: 1
            })
        );
    }

    #[test]
    fn after_the_open_period_one_probe_decides() {
        let t0 = Instant::now();
        let mut p = policy();
        for _ in 0..3 {
            p.record_failure(0, t0, &outage());
        }
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(p.admit(0, t1), Some(Admission::Probe));
        assert_eq!(p.admit(0, t1), None, "only one trial request at a time");
        p.record_failure(0, t1, &outage());
        assert_eq!(
            p.state(0, t1),
            Some(ProviderState::Open {
                until: t1 + Duration::from_secs(60)
            })
        );

        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(p.admit(0, t2), Some(Admission::Probe));
        p.record_success(0);
        assert_eq!(p.admit(0, t2), Some(Admission::Normal));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let t0 = Instant::now();
        let mut p = policy();
        for _ in 0..3 {
            p.record_failure(0, t0, &outage());
        }
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(p.admit(0, t1), Some(Admission::Probe));
        p.record_abandoned(0);
        assert_eq!(p.admit(0, t1), Some(Admission::Probe));
    }

    #[test]
    fn a_429_throttles_until_retry_after_without_hurting_health() {
        let t0 = Instant::now();
        let mut p = policy();
        let limited = PipelineError::RateLimited {
            provider: "p".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        p.record_failure(0, t0, &limited);
        assert_eq!(
            p.state(0, t0),
            Some(ProviderState::Throttled {
                until: t0 + Duration::from_secs(7)
            })
        );
        assert_eq!(p.admit(0, t0 + Duration::from_secs(6)), None);
        assert_eq!(
            p.admit(0, t0 + Duration::from_secs(7)),
            Some(Admission::Normal)
        );
        assert_eq!(
            p.state(0, t0 + Duration::from_secs(7)),
            Some(ProviderState::Healthy {
                consecutive_failures: 0
            })
        );
    }

    #[test]
    fn our_own_bad_request_does_not_count_against_the_provider() {
        let t0 = Instant::now();
        let mut p = policy();
        for _ in 0..5 {
            p.record_failure(0, t0, &PipelineError::InvalidRequest("empty".into()));
        }
        assert_eq!(p.admit(0, t0), Some(Admission::Normal));
    }
}
