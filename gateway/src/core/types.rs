//! Values every edge shares: a session's id and the node's shutdown phase.

use std::{fmt, str::FromStr, time::Instant};

/// Identifies one call on this node: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u128);

impl CallId {
    /// A fresh, unguessable id (it appears in URLs other callers might probe).
    pub(crate) fn random() -> Self {
        let mut b = [0u8; 16];
        // The OS random source only fails on exotic platforms at boot; a clock-derived id
        // is still unique within this process then, which is all that correctness needs.
        if getrandom::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            b = t.to_le_bytes();
        }
        Self(u128::from_le_bytes(b))
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({self})")
    }
}

impl FromStr for CallId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(());
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| ())
    }
}

/// Where the node is in its shutdown, as every call's handler sees it
/// (`CallSender::drain_notices` for a call, the node's drain notices for other sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainPhase {
    /// Taking calls as usual.
    Serving,
    /// No new calls; live calls go on until `deadline`. A handler tells its caller now
    /// (`goodbye`), so the client can move to another node before being cut off.
    Draining {
        /// When the node closes the remaining calls.
        deadline: Instant,
    },
    /// The deadline has passed: a handler ends its session (`session_ended`) and hangs up.
    /// Calls still open a moment later are hung up by the node.
    Closing,
}
