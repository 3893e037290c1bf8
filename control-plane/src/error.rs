/// What can go wrong starting or running the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database named by `control_plane.database_url` could not be opened or migrated.
    #[error("database {url}: {reason}")]
    Database {
        /// The URL with any password removed.
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// Redis at `control_plane.redis_url` could not be reached or refused the rate-limit script.
    #[error("redis {url}: {reason}")]
    Redis {
        /// The URL with any password removed.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// A stored or generated signing key could not be used.
    #[error("signing key: {0}")]
    SigningKey(String),
    /// A configuration value is out of range: the key and the form it expects.
    #[error("control_plane.{key}: expected {expected}")]
    Config {
        /// The offending key, relative to `[control_plane]`.
        key: &'static str,
        /// The form the key expects.
        expected: &'static str,
    },
}

/// Removes a password from a connection URL before it reaches a log or an error message.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}
