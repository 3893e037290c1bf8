//! Password hashing with argon2id (PHC strings, parameters stored in each hash).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::Argon2Config;

/// Hashes passwords with the configured cost. Verification uses the cost stored in each hash,
/// so raising the cost later does not lock anyone out.
#[derive(Debug, Clone)]
pub(crate) struct Hasher {
    params: Params,
}

impl Hasher {
    pub(crate) fn new(config: &Argon2Config) -> Result<Self, String> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on a blocking thread: a hash takes tens of milliseconds by design.
    pub(crate) async fn hash(&self, password: String) -> Result<String, String> {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// True when `password` matches `stored`; a malformed stored hash never matches.
    pub(crate) async fn verify(&self, password: String, stored: String) -> bool {
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .is_ok_and(|hash| argon2.verify_password(password.as_bytes(), &hash).is_ok())
        })
        .await
        .unwrap_or(false)
    }
}
