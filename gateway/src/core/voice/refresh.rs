//! A running voice session's access-token refresh (the client's `auth` event), sans-IO: the
//! rule a fresh token must pass before the session renews its voice quota with it.
//!
//! Access tokens live minutes, calls may last longer: the client sends a fresh token before
//! the old one expires. It must verify locally like any token (the same verifier that let
//! the session start) and name the session's caller, so a session never changes hands.

use std::sync::Arc;

use protocol::{
    ServerEvent,
    control::{ErrorCode, ErrorEvent},
};

use crate::core::auth::{self, AuthError, CallerVerifier};

/// Who a session belongs to and how its refreshed tokens are checked.
#[derive(Debug, Clone)]
pub(crate) struct SessionAuth {
    verifier: Arc<dyn CallerVerifier>,
    user_id: String,
}

impl SessionAuth {
    pub(crate) fn new(verifier: Arc<dyn CallerVerifier>, user_id: String) -> Self {
        Self { verifier, user_id }
    }

    /// Checks a fresh `token` for this session ([`refused`] says what the client gets when
    /// it fails). The session is unchanged either way until the caller swaps the token.
    pub(crate) fn check(&self, token: &str) -> Result<(), AuthError> {
        auth::refresh(&*self.verifier, &self.user_id, token).map(|_| ())
    }
}

/// The `error` event for a refused refresh: `unauthorized` for a token that does not verify,
/// `forbidden` for another account's (not retryable with the same token).
pub(crate) fn refused(error: &AuthError, session_id: Option<&str>) -> ServerEvent {
    let code = match error {
        AuthError::Forbidden(_) => ErrorCode::Forbidden,
        _ => ErrorCode::Unauthorized,
    };
    ServerEvent::Error(ErrorEvent {
        code,
        message: error.to_string(),
        retryable: false,
        retry_after_ms: None,
        request_id: None,
        session_id: session_id.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::{Caller, DevVerifier};

    fn code(error: &AuthError) -> (ErrorCode, Option<String>) {
        match refused(error, Some("s1")) {
            ServerEvent::Error(e) => (e.code, e.session_id),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn a_fresh_token_of_the_caller_passes_another_accounts_is_forbidden() {
        let auth = SessionAuth::new(
            Arc::new(DevVerifier {
                max_concurrent_calls: 1,
            }),
            "alice".into(),
        );
        assert_eq!(auth.check("dev:alice"), Ok(()));
        assert_eq!(
            code(&auth.check("dev:mallory").unwrap_err()),
            (ErrorCode::Forbidden, Some("s1".into()))
        );
        assert_eq!(
            code(&auth.check("expired.jwt").unwrap_err()).0,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn a_verifier_that_forbids_the_account_gives_forbidden() {
        struct NoVoice;
        impl CallerVerifier for NoVoice {
            fn verify(&self, _: &str) -> Result<Caller, AuthError> {
                Err(AuthError::Forbidden("no calls on this tier".into()))
            }
        }
        let auth = SessionAuth::new(Arc::new(NoVoice), "alice".into());
        assert_eq!(code(&auth.check("t").unwrap_err()).0, ErrorCode::Forbidden);
    }
}
