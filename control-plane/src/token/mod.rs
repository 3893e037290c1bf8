//! Access tokens: EdDSA (Ed25519) JWTs signed by the control plane, verified anywhere from the
//! public keys it publishes at `/.well-known/jwks.json`.
//!
//! The gateway uses [`Verifier`] and never holds a signing secret.

mod cipher;
mod keyring;

pub use access_token::{Claims, Jwk, Jwks, Verifier, VerifyError};
pub(crate) use cipher::KeyCipher;
pub(crate) use keyring::{KeyPolicy, KeyRing};
