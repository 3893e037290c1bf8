//! The service's one typed configuration: a TOML file, then environment overrides, then
//! validation. Every key has a documented default (see `docs/config.md`), so an empty file
//! (or none) runs the whole service embedded on one machine.
//!
//! Environment overrides name a key by its path with `__` between parts, after the prefix
//! `COMPANION__`: `COMPANION__SERVER__LISTEN=0.0.0.0:8080` sets `[server] listen`.

use std::{
    collections::BTreeSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "COMPANION__";
/// Environment variable naming the configuration file (the `--config` flag wins).
pub const ENV_CONFIG_FILE: &str = "COMPANION_CONFIG";
/// File read when neither `--config` nor `COMPANION_CONFIG` names one, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "companion.toml";

/// The whole service configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and process lifecycle.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The data plane.
    pub gateway: gateway::Config,
    /// The control plane.
    pub control_plane: control_plane::Config,
    /// Native files the voice activity detector loads (installed by `scripts/bootstrap`).
    pub media: media::RuntimePaths,
    /// Speech and language providers, their failover order and circuit breaker.
    pub pipeline: pipeline::config::PipelineConfig,
    /// How a gateway bridges each call to its voice session: persona, turn detection, VAD,
    /// Opus encoder, jitter buffer.
    pub voice: gateway::VoiceConfig,
}

/// Which planes this process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Gateway and control plane in one process: the embedded default.
    #[default]
    All,
    /// Only the gateway; it reaches a control plane at `gateway.control_plane_url`.
    Gateway,
    /// Only the control plane.
    ControlPlane,
}

impl Mode {
    /// Whether this process serves the gateway.
    pub fn runs_gateway(self) -> bool {
        matches!(self, Self::All | Self::Gateway)
    }

    /// Whether this process serves the control plane.
    pub fn runs_control_plane(self) -> bool {
        matches!(self, Self::All | Self::ControlPlane)
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `all`, `gateway` or `control-plane`. Default: `all`.
    pub mode: Mode,
    /// Address the HTTP listener binds; port 0 picks a free one. Default: `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The URL people and other nodes use to reach this one, printed at start-up. Empty means
    /// `http://` + the bound address. Default: empty.
    pub public_url: String,
    /// After SIGTERM or Ctrl-C, how long open connections may take to finish before the
    /// process exits anyway, in seconds. Default: 10.
    pub shutdown_grace_secs: u64,
    /// A separate address to serve `/metrics` on (say, a private interface the scraper
    /// reaches), taking it off the main listener; unset serves it on `listen`. Default: unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// A bearer token that lets a remote caller see why a `/readyz` check is not `ok` (callers
    /// on loopback always see it; others see only each check's status). Empty: no token.
    /// Default: empty.
    pub ops_token: protocol::Secret,
    /// Seconds a client has to send a whole request head (request line and headers); a
    /// slower one (slowloris) is disconnected. Also how long a keep-alive connection may wait
    /// for its next request. Default: 10.
    pub header_read_timeout_secs: u64,
    /// Seconds without a byte moving either way after which an HTTP connection (a stalled
    /// upload, a client that never reads its answer) is closed. WebSockets are not affected:
    /// they keep their own heartbeat. Default: 120.
    pub idle_timeout_secs: u64,
    /// TCP connections one client address (IPv6: one /64) may hold open at once, WebSockets
    /// included; more are closed as soon as they are accepted. `0`: no limit. Behind a load
    /// balancer or reverse proxy every connection comes from the proxy: list it in
    /// `max_connections_per_ip_exempt` or set 0. Default: 256.
    pub max_connections_per_ip: usize,
    /// Client addresses `max_connections_per_ip` does not apply to: this host's own
    /// (in `mode = "all"` the gateway reaches its control plane over loopback), trusted
    /// proxies. Default: `["127.0.0.1", "::1"]`.
    pub max_connections_per_ip_exempt: Vec<IpAddr>,
    /// `max-age` of the `Strict-Transport-Security` header, sent on every response when
    /// `public_url` is `https://` (this listener speaks plain HTTP, so an https public URL
    /// means a TLS-terminating proxy in front of it); `0` sends none. Default: `31536000`
    /// (one year).
    pub hsts_max_age_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            mode: Mode::All,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            shutdown_grace_secs: 10,
            metrics_listen: None,
            ops_token: protocol::Secret::default(),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 120,
            max_connections_per_ip: 256,
            max_connections_per_ip_exempt: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            hsts_max_age_secs: 365 * 24 * 3600,
        }
    }
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `info,gateway=debug`; `RUST_LOG` wins when set.
    /// Default: `info`.
    pub filter: String,
    /// `text` for people, `json` for log collectors. Default: `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the configuration could not be used. Each names the key and where its value came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The file is not TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        reason: String,
    },
    /// A key has a value of the wrong form, or is not a known key.
    #[error("config key `{key}` (from {origin}): {reason}")]
    Invalid {
        /// Dotted key path, such as `server.listen`.
        key: String,
        /// The file or environment variable the value came from.
        origin: Source,
        /// What is wrong and the form expected.
        reason: String,
    },
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then `COMPANION__*` variables
    /// from `env`, then validation.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        let env_keys = apply_env(&mut table, env)?;

        let config: Self =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let origin = source_of(&key, &env_keys, file);
                ConfigError::Invalid {
                    key,
                    origin,
                    reason: e.into_inner().message().to_owned(),
                }
            })?;
        config
            .validate()
            .map_err(|(key, expected)| ConfigError::Invalid {
                origin: source_of(&key, &env_keys, file),
                key,
                reason: format!("expected {expected}"),
            })?;
        Ok(config)
    }

    /// Checks what the types alone cannot. Returns the dotted key and the form it expects.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        fn in_section(
            name: &'static str,
        ) -> impl Fn((&'static str, &'static str)) -> (String, &'static str) {
            move |(key, expected)| (format!("{name}.{key}"), expected)
        }
        self.server.validate().map_err(in_section("server"))?;
        self.gateway.validate().map_err(in_section("gateway"))?;
        self.control_plane
            .validate()
            .map_err(in_section("control_plane"))?;
        if self.server.mode == Mode::Gateway && self.gateway.control_plane_url.is_empty() {
            return Err((
                "gateway.control_plane_url".to_owned(),
                "the control plane's URL when server.mode is \"gateway\"",
            ));
        }
        if self.server.mode == Mode::Gateway && self.gateway.control_plane_service_token.is_empty()
        {
            return Err((
                "gateway.control_plane_service_token".to_owned(),
                "one of the control plane's service_tokens when server.mode is \"gateway\"",
            ));
        }
        Ok(())
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("public_url", "empty, or an http:// or https:// URL"));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(("shutdown_grace_secs", "a number of seconds from 0 to 3600"));
        }
        if self
            .metrics_listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return Err((
                "metrics_listen",
                "unset, or an address other than server.listen",
            ));
        }
        // Short tokens can be guessed; this one reveals internal error text.
        if !self.ops_token.is_empty() && self.ops_token.expose().len() < 16 {
            return Err(("ops_token", "empty, or at least 16 characters"));
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(("header_read_timeout_secs", "1 to 300 seconds"));
        }
        if !(1..=86_400).contains(&self.idle_timeout_secs) {
            return Err(("idle_timeout_secs", "1 to 86400 seconds"));
        }
        Ok(())
    }
}

/// Writes each `COMPANION__A__B=value` into `table` at `a.b`, typed like the default value at
/// that key (so `"8080"` stays a string where a string is expected). Returns the keys set and
/// the variables that set them.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeSet<(String, String)>, ConfigError> {
    let defaults = toml::Value::try_from(Config::default()).expect("defaults serialize");
    let mut set = BTreeSet::new();
    for (var, raw) in env {
        let Some(path) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let key = parts.join(".");
        // Keys absent from the defaults (unset optional values, or typos, which deserializing
        // then reports by name) are read as literals too.
        let value = match parts.iter().try_fold(&defaults, |v, p| v.get(p)) {
            Some(toml::Value::String(_)) => toml::Value::String(raw),
            // Numbers, booleans and arrays are written as TOML literals: `10`, `true`, `["a"]`.
            _ => parse_literal(&raw).unwrap_or(toml::Value::String(raw)),
        };
        let (last, sections) = parts.split_last().expect("split yields one part at least");
        let mut node = &mut *table;
        for part in sections {
            let entry = node
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: parts.join("."),
                        origin: Source::Env(var),
                        reason: format!("`{part}` is not a section"),
                    });
                }
            };
        }
        node.insert(last.clone(), value);
        set.insert((key, var));
    }
    Ok(set)
}

fn parse_literal(raw: &str) -> Option<toml::Value> {
    let mut doc = format!("v = {raw}").parse::<toml::Table>().ok()?;
    doc.remove("v")
}

fn source_of(key: &str, env_keys: &BTreeSet<(String, String)>, file: Option<&Path>) -> Source {
    let from_env = env_keys
        .iter()
        .find(|(k, _)| key == k || key.starts_with(&format!("{k}.")));
    match (from_env, file) {
        (Some((_, var)), _) => Source::Env(var.clone()),
        (None, Some(path)) => Source::File(path.to_owned()),
        (None, None) => Source::Default,
    }
}

#[cfg(test)]
mod tests;
