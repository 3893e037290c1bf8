//! Access tokens as every node sees them: the claims the control plane signs, the key set it
//! publishes at `/.well-known/jwks.json`, and a [`Verifier`] that checks a token against that
//! key set locally.
//!
//! The control plane signs (EdDSA, Ed25519); gateways only verify, so no node but the control
//! plane ever holds a signing secret. Both sides share this crate so they agree on the claims
//! and on what a valid token is.
#![forbid(unsafe_code)]

mod claims;
mod jwks;
mod verifier;

pub use claims::Claims;
pub use jwks::{Jwk, Jwks};
pub use verifier::{Verifier, VerifyError};
