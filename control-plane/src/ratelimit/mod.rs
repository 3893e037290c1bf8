//! Per-endpoint rate limits: a sliding-window counter per (rule, caller), kept in process or in
//! Redis (one atomic Lua script per check) so that several nodes share one budget.

mod memory;
mod middleware;
mod redis;
mod window;

pub(crate) use middleware::enforce;
pub use window::{Decision, SlidingWindow};

use crate::config::RateLimitRule;
use crate::error::Error;

/// Where window counts live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

/// The configured rules plus their store.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    rules: Vec<RateLimitRule>,
    store: Store,
}

impl Limiter {
    pub(crate) async fn new(
        rules: Vec<RateLimitRule>,
        redis_url: &str,
        key_prefix: &str,
    ) -> Result<Self, Error> {
        let store = if redis_url.is_empty() {
            Store::Memory(memory::MemoryStore::default())
        } else {
            Store::Redis(redis::RedisStore::connect(redis_url, key_prefix).await?)
        };
        Ok(Self { rules, store })
    }

    fn rule_for(&self, path: &str) -> Option<&RateLimitRule> {
        self.rules.iter().find(|r| path.starts_with(&r.prefix))
    }

    /// Counts one request by `who` under `rule` at `now_ms` (unix milliseconds).
    pub(crate) async fn check(
        &self,
        rule: &RateLimitRule,
        who: &str,
        now_ms: u64,
    ) -> Result<Decision, String> {
        let window = SlidingWindow {
            limit: rule.limit,
            window_ms: rule.window_secs * 1000,
        };
        match &self.store {
            Store::Memory(m) => Ok(m.check(&rule.name, who, window, now_ms)),
            Store::Redis(r) => r.check(&rule.name, who, window, now_ms).await,
        }
    }

    /// Redis readiness, if Redis is configured.
    pub(crate) async fn redis_ping(&self) -> Option<Result<(), String>> {
        match &self.store {
            Store::Memory(_) => None,
            Store::Redis(r) => Some(r.ping().await),
        }
    }
}
