//! Window counts in Redis, checked and incremented by one Lua script so concurrent requests on
//! any number of nodes never over-admit.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config as RedisConfig, ReconnectPolicy};
use fred::types::scripts::Script;

use super::window::{Decision, SlidingWindow};
use crate::error::{Error, redact_url};

/// KEYS[1] = current window key, KEYS[2] = previous window key;
/// ARGV = limit, window_ms, elapsed_ms. Returns {previous, current_before}.
/// The estimate is the same as `SlidingWindow::estimate`.
const CHECK: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local estimate = math.floor(previous * (window - elapsed) / window) + current
if estimate < limit then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], window * 2)
end
return {previous, current}
";

#[derive(Clone)]
pub(crate) struct RedisStore {
    client: fred::prelude::Client,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// How the client connects and how long it waits (`redis_*` keys of the configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) command: Duration,
    pub(crate) reconnect_max_delay: Duration,
}

impl RedisStore {
    pub(crate) async fn connect(
        url: &str,
        prefix: &str,
        timeouts: Timeouts,
    ) -> Result<Self, Error> {
        let fail = |reason: String| Error::Redis {
            url: redact_url(url),
            reason,
        };
        let config = RedisConfig::from_url(url).map_err(|e| fail(e.to_string()))?;
        let max_delay = u32::try_from(timeouts.reconnect_max_delay.as_millis()).unwrap_or(u32::MAX);
        // Retry forever (0 attempts = no cap), 100 ms doubling up to the configured pause: a Redis
        // restart must end in a reconnect, whatever its length. Start-up still fails fast
        // (`fail_fast`, the default) so a wrong URL is reported at once.
        let policy = ReconnectPolicy::new_exponential(0, 100, max_delay.max(100), 2);
        let client = Builder::from_config(config)
            .set_policy(policy)
            .with_connection_config(|c| {
                c.connection_timeout = timeouts.connect;
                c.internal_command_timeout = timeouts.connect;
                // A command in flight when the connection drops is not replayed: the limiter
                // has already given up on it and answered from its fallback.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeouts.command)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        client.init().await.map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            client,
            script: Script::from_lua(CHECK),
            prefix: prefix.to_owned(),
        })
    }

    /// Whether the client holds a live connection; while it does not, checks fail at once
    /// instead of queueing behind the reconnect.
    pub(crate) fn connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The client's connection state, for readiness (`connected`, `disconnected`, ...).
    pub(crate) fn state(&self) -> String {
        format!("{:?}", self.client.state()).to_lowercase()
    }

    pub(crate) async fn check(
        &self,
        rule: &str,
        who: &str,
        window: SlidingWindow,
        now_ms: u64,
    ) -> Result<Decision, String> {
        let (index, elapsed) = window.position(now_ms);
        let key = |i: u64| format!("{}rl:{rule}:{who}:{i}", self.prefix);
        let keys = vec![key(index), key(index.saturating_sub(1))];
        let args = vec![window.limit as i64, window.window_ms as i64, elapsed as i64];
        let (previous, current): (i64, i64) = self
            .script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(|e| e.to_string())?;
        let (previous, current) = if index == 0 {
            (0, current)
        } else {
            (previous, current)
        };
        Ok(window.decide(previous.max(0) as u64, current.max(0) as u64, elapsed))
    }

    pub(crate) async fn ping(&self) -> Result<(), String> {
        self.client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
