//! A credential carried in configuration (API keys, shared secrets, signing passwords).
//!
//! Every side's configuration holds a few; they must never reach a log line, a `Debug` dump or
//! a printed configuration. Wrapping them in [`Secret`] makes that the default rather than a
//! habit.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A credential. Its `Debug` output is redacted, and so is its serialized form (a printed
/// configuration shows `***` for a value that is set, an empty string for one that is not).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for building a request header or a MAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(***)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_or_serialized_form() {
        let s = Secret::new("sk_live_very_secret");
        assert!(!format!("{s:?}").contains("very_secret"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"***\"");
        let back: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back.expose(), "abc");
        assert_eq!(serde_json::to_string(&Secret::default()).unwrap(), "\"\"");
    }
}
