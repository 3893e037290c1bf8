use serde::{Deserialize, Serialize};

/// What an access token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: String,
    /// The account's e-mail address.
    pub email: String,
    /// Subscription tier: `free`, `plus` or `pro`.
    pub tier: String,
    /// What the bearer may do, e.g. `chat`, `voice`, `games`.
    pub permissions: Vec<String>,
    /// Issuer (the control plane's configured `issuer`).
    pub iss: String,
    /// Audience (the configured `audience`).
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// The session (refresh-token family) the token belongs to; empty for development tokens.
    #[serde(default)]
    pub sid: String,
}
