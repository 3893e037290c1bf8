use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{Claims, Jwks};

/// Verifies access tokens locally against a published key set.
///
/// ```no_run
/// # fn demo(jwks_json: &str, token: &str) -> Result<(), access_token::VerifyError> {
/// use access_token::Verifier;
/// let verifier = Verifier::from_jwks_json(jwks_json, "companion-control-plane", "companion")?;
/// let claims = verifier.verify(token)?;
/// println!("caller {} on tier {}", claims.sub, claims.tier);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a token or key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The key set is not valid JSON or holds no usable Ed25519 key.
    #[error("key set unusable: {0}")]
    BadKeySet(String),
    /// The token's header has no `kid`, or names a key not in the set.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The token is malformed, has a bad signature, a wrong algorithm, issuer or audience, or
    /// has expired.
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl Verifier {
    /// Clock skew tolerated on `exp`, in seconds.
    pub const LEEWAY_SECS: u64 = 30;

    /// Builds a verifier from the JSON served at `/.well-known/jwks.json`, accepting only tokens
    /// with this `iss` and `aud`.
    pub fn from_jwks_json(json: &str, issuer: &str, audience: &str) -> Result<Self, VerifyError> {
        let jwks: Jwks =
            serde_json::from_str(json).map_err(|e| VerifyError::BadKeySet(e.to_string()))?;
        Self::from_jwks(&jwks, issuer, audience)
    }

    /// Builds a verifier from a parsed key set; keys other than Ed25519 are ignored.
    pub fn from_jwks(jwks: &Jwks, issuer: &str, audience: &str) -> Result<Self, VerifyError> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.kid.is_empty() {
                continue;
            }
            let key = DecodingKey::from_ed_components(&jwk.x)
                .map_err(|e| VerifyError::BadKeySet(format!("key {}: {e}", jwk.kid)))?;
            keys.insert(jwk.kid.clone(), key);
        }
        if keys.is_empty() {
            return Err(VerifyError::BadKeySet("no Ed25519 keys".to_owned()));
        }
        // Only EdDSA: a token claiming `none` or an HMAC algorithm never reaches a key.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = Self::LEEWAY_SECS;
        Ok(Self { keys, validation })
    }

    /// Checks the signature, algorithm, issuer, audience and expiry of `token` and returns its
    /// claims.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        let key = header.kid.as_deref().and_then(|kid| self.keys.get(kid));
        let key = key.ok_or(VerifyError::UnknownKey)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| VerifyError::Invalid(e.to_string()))
    }
}
