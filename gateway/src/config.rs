use serde::{Deserialize, Serialize};

/// The `[gateway]` section of the service configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL of the control plane this gateway verifies tokens against and reports usage to,
    /// e.g. `https://control.example.com`. Empty means the control plane runs in this same
    /// process (`server.mode = "all"`). Default: empty.
    pub control_plane_url: String,
}

impl Config {
    /// Checks values serde cannot: returns the offending key (relative to this section) and
    /// the form it expects.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let url = &self.control_plane_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("control_plane_url", "empty, or an http:// or https:// URL"));
        }
        Ok(())
    }
}
