//! Requests the data plane makes on a user's behalf.
//!
//! Some writes belong to the server alone: how a chat turn ended (its reply, its token counts,
//! whether the message is refunded) and what a quota reservation really used. The gateway
//! makes them with the user's access token, which names the account, but a user holds that
//! token too. So these routes also require the gateway's own credential in
//! [`SERVICE_TOKEN_HEADER`], one of `service_tokens` in the configuration; a request with only
//! a user's token is refused with 403 `service_credential_required`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::Caller;
use super::error::ApiError;
use crate::app::App;

/// The header that carries the data plane's credential.
pub const SERVICE_TOKEN_HEADER: &str = "x-service-token";

/// A signed-in user, reached through a request the data plane made for them.
#[derive(Debug, Clone)]
pub(crate) struct OnBehalf(pub(crate) Caller);

impl FromRequestParts<App> for OnBehalf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        // The user first: a bad or expired user token is the 401 a client can act on.
        let caller = Caller::from_request_parts(parts, app).await?;
        require_service(app, &parts.headers)?;
        Ok(Self(caller))
    }
}

/// Refuses a request that does not carry a configured data-plane credential.
pub(crate) fn require_service(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(SERVICE_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() || !app.service_tokens.accepts(presented) {
        return Err(ApiError::forbidden(
            "service_credential_required",
            "only the gateway may make this request",
        ));
    }
    Ok(())
}

/// A fresh random data-plane credential (32 bytes, hex): what a process hosting both planes
/// gives its own gateway when none is configured.
pub fn new_service_token() -> protocol::Secret {
    let mut bytes = [0u8; 32];
    // The system RNG failing is not something to serve through: zeros would be guessable.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    protocol::Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The accepted data-plane credentials, kept as SHA-256 digests so a comparison takes the
/// same time whatever the presented value shares with a real one.
#[derive(Default)]
pub(crate) struct ServiceTokens(Vec<[u8; 32]>);

impl ServiceTokens {
    pub(crate) fn new(tokens: &[protocol::Secret]) -> Self {
        Self(
            tokens
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
        )
    }

    fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        // Every credential is compared, and each comparison reads every byte.
        self.0.iter().fold(false, |found, known| {
            let diff = known
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (diff == 0)
        })
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use protocol::Secret;

    use super::ServiceTokens;

    #[test]
    fn any_configured_credential_is_accepted_and_nothing_else() {
        let tokens = ServiceTokens::new(&[
            Secret::new("old-credential-0123456789"),
            Secret::new("new-credential-0123456789"),
            Secret::default(),
        ]);
        assert!(tokens.accepts(b"old-credential-0123456789"));
        assert!(tokens.accepts(b"new-credential-0123456789"));
        assert!(!tokens.accepts(b"new-credential-012345678"));
        assert!(!tokens.accepts(b""));
        assert!(!ServiceTokens::default().accepts(b""));
    }
}
