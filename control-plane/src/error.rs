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

/// Removes a password from a connection URL before it reaches a log, an error message or a
/// printed configuration. The host starts after the *last* `@`: a password may itself hold
/// one, and splitting at the first would print the rest of it as the "host".
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Serializes a connection URL with its password removed (`--print-config`).
pub(crate) fn serialize_redacted<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_password_holding_an_at_sign_is_removed_whole() {
        let url = "postgres://app:p@ss:w@rd@db.internal:5432/companion";
        let shown = redact_url(url);
        assert_eq!(shown, "postgres://app:***@db.internal:5432/companion");
        for part in ["p@ss", "ss:w", "w@rd", "rd@"] {
            assert!(!shown.contains(part), "{shown}");
        }
        assert_eq!(
            redact_url("redis://:secret@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            redact_url("sqlite://data/x.sqlite"),
            "sqlite://data/x.sqlite"
        );
    }
}
