//! Who is calling: bearer tokens in, callers with their limits out.
//!
//! The gateway never holds a signing secret. A [`CallerVerifier`] checks a token locally (the
//! production one verifies the control plane's JWTs against its published keys) and says who
//! the caller is and how many calls their tier allows.

use std::fmt;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account the token was issued to.
    pub user_id: String,
    /// Subscription tier name, for logs and metrics.
    pub tier: String,
    /// Calls this caller may hold at once on this node.
    pub max_concurrent_calls: u32,
}

/// Why a bearer token was refused. The message is shown to the caller, so it names what was
/// wrong without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is malformed, expired, or signed by a key we do not trust.
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    /// The token is valid but does not allow voice calls.
    #[error("this account may not place calls: {0}")]
    Forbidden(String),
}

/// Turns a bearer token into a [`Caller`].
///
/// Synchronous on purpose: verification is local signature checking against keys the
/// implementation caches and refreshes in the background, so no request waits on the network.
pub trait CallerVerifier: Send + Sync + 'static {
    /// Verifies `token` (the part after `Bearer `).
    fn verify(&self, token: &str) -> Result<Caller, AuthError>;
}

impl fmt::Debug for dyn CallerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallerVerifier")
    }
}

/// Checks a fresh token for a connection or voice session that belongs to `user_id` (a
/// client's `auth` refresh): it must verify like any token and name the same account, so a
/// running session can never change hands. Another account's token is
/// [`AuthError::Forbidden`].
pub(crate) fn refresh(
    verifier: &dyn CallerVerifier,
    user_id: &str,
    token: &str,
) -> Result<Caller, AuthError> {
    let caller = verifier.verify(token)?;
    if caller.user_id != user_id {
        return Err(AuthError::Forbidden(
            "the token names another account than this session's".to_owned(),
        ));
    }
    Ok(caller)
}

/// Development tokens `dev:<user id>`: enabled only by `gateway.dev_tokens = true`.
#[derive(Debug, Clone)]
pub(crate) struct DevVerifier {
    pub(crate) max_concurrent_calls: u32,
}

impl CallerVerifier for DevVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let user_id = token
            .strip_prefix("dev:")
            .filter(|id| !id.is_empty() && id.len() <= 64)
            .filter(|id| {
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| {
                AuthError::Invalid("development tokens look like dev:<user id>".to_owned())
            })?;
        Ok(Caller {
            user_id: user_id.to_owned(),
            tier: "dev".to_owned(),
            max_concurrent_calls: self.max_concurrent_calls,
        })
    }
}

/// The verifier used when none is installed and development tokens are off: refuses all.
#[derive(Debug, Clone)]
pub(crate) struct RefuseAll;

impl CallerVerifier for RefuseAll {
    fn verify(&self, _token: &str) -> Result<Caller, AuthError> {
        Err(AuthError::Invalid(
            "this gateway has no token verifier configured".to_owned(),
        ))
    }
}

mod jwks;

pub use jwks::{JwksVerifier, fetch_jwks};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_must_verify_and_name_the_same_account() {
        let dev = DevVerifier {
            max_concurrent_calls: 1,
        };
        let fresh = refresh(&dev, "alice", "dev:alice").unwrap();
        assert_eq!(fresh.user_id, "alice");
        assert!(matches!(
            refresh(&dev, "alice", "dev:bob"),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(
            refresh(&dev, "alice", "not-a-token"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            refresh(&RefuseAll, "alice", "dev:alice"),
            Err(AuthError::Invalid(_))
        ));
    }
}
