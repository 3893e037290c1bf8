use serde::{Deserialize, Serialize};

/// The `[control_plane]` section of the service configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where accounts, conversations and usage live. `sqlite://` runs embedded; `postgres://`
    /// is the multi-node configuration. Default: `sqlite://data/companion.sqlite?mode=rwc`.
    pub database_url: String,
    /// Redis for shared rate limits across nodes; empty keeps limits in process. Default: empty.
    pub redis_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/companion.sqlite?mode=rwc".to_owned(),
            redis_url: String::new(),
        }
    }
}

impl Config {
    /// Checks values serde cannot: returns the offending key (relative to this section) and
    /// the form it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(("database_url", "a sqlite:// or postgres:// URL"));
        }
        if !(self.redis_url.is_empty() || self.redis_url.starts_with("redis")) {
            return Err(("redis_url", "empty, or a redis:// or rediss:// URL"));
        }
        Ok(())
    }
}
