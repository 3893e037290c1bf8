//! Injected faults for the mock providers.

use std::time::Duration;

/// A failure the mock server injects into a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer with this HTTP status (500, 503, 401, ...) and the vendor's error body.
    Status(u16),
    /// Answer 429 with `Retry-After: secs`.
    RateLimited {
        /// Seconds in the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// Send nothing at all (no headers) for the server's `hang_ms`, then drop the connection.
    Hang,
    /// Stream this many tokens / audio chunks / results, then break the connection.
    CutAfter(usize),
    /// Stream this many tokens / chunks, then go silent for `hang_ms`.
    StallAfter(usize),
    /// Stream this many tokens, then send the vendor's in-stream error event
    /// (Anthropic `error` / OpenAI `{"error": ...}`).
    ErrorEventAfter(usize),
}

impl Fault {
    /// Parses `500`, `429`, `429:3`, `hang`, `cut:5`, `stall:5`, `error:2` or `none`.
    /// Dashes work as separators too, so model names like `fault-429-3` or `fault-cut-5` parse
    /// after the `fault-` prefix.
    pub fn parse(spec: &str) -> Option<Self> {
        let spec = spec.trim().to_ascii_lowercase().replace('-', ":");
        let (kind, arg) = match spec.split_once(':') {
            Some((k, a)) => (k.to_owned(), Some(a.to_owned())),
            None => (spec.clone(), None),
        };
        let n = |default: usize| arg.as_deref().map_or(Some(default), |a| a.parse().ok());
        Some(match kind.as_str() {
            "none" | "" => Self::None,
            "429" => Self::RateLimited {
                retry_after_secs: n(1)? as u64,
            },
            "hang" => Self::Hang,
            "cut" => Self::CutAfter(n(3)?),
            "stall" => Self::StallAfter(n(3)?),
            "error" => Self::ErrorEventAfter(n(3)?),
            code => Self::Status(code.parse().ok().filter(|c| (400..600).contains(c))?),
        })
    }

    /// The fault named by a model like `fault-500`, if the model names one.
    pub fn from_model(model: &str) -> Option<Self> {
        model.strip_prefix("fault-").and_then(Self::parse)
    }

    /// How many items to send before a mid-stream fault, if this is one.
    pub(crate) fn items_before(self) -> Option<usize> {
        match self {
            Self::CutAfter(n) | Self::StallAfter(n) | Self::ErrorEventAfter(n) => Some(n),
            _ => None,
        }
    }
}

/// Picks the fault for one request: the `x-mock-fault` header, else the model name, else the
/// server-wide fault.
pub(crate) fn select(header: Option<&str>, model: Option<&str>, server: Fault) -> Fault {
    header
        .and_then(Fault::parse)
        .or_else(|| model.and_then(Fault::from_model))
        .unwrap_or(server)
}

/// Converts milliseconds from config.
pub(crate) fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_from_headers_and_model_names() {
        assert_eq!(Fault::parse("500"), Some(Fault::Status(500)));
        assert_eq!(
            Fault::parse("429:7"),
            Some(Fault::RateLimited {
                retry_after_secs: 7
            })
        );
        assert_eq!(Fault::from_model("fault-cut-5"), Some(Fault::CutAfter(5)));
        assert_eq!(Fault::from_model("fault-hang"), Some(Fault::Hang));
        assert_eq!(Fault::from_model("gpt-4o"), None);
        assert_eq!(Fault::parse("banana"), None);
        assert_eq!(
            select(None, Some("fault-503"), Fault::None),
            Fault::Status(503)
        );
        assert_eq!(
            select(Some("error:1"), Some("fault-503"), Fault::None),
            Fault::ErrorEventAfter(1)
        );
    }
}
