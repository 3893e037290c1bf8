//! Password hashing with argon2id (PHC strings, parameters stored in each hash), behind a gate
//! that caps how many hashes run at once.
//!
//! Each hash holds ~19 MiB for tens of milliseconds on a blocking thread; without a cap a burst
//! of sign-ins runs hundreds at once (tokio allows 512 blocking threads), exhausting memory and
//! starving every other request. The gate admits about one hash per core and makes the rest
//! queue, but only up to a deadline: a caller that would wait longer is told to come back
//! (503 `busy`) rather than pile up.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Argon2Config;

/// Why a hash was not computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashError {
    /// Every slot stayed taken for the whole queue deadline; retry later.
    Busy,
    /// argon2 itself failed (bad parameters) or its thread died.
    Failed(String),
}

/// Admits at most `permits` hashes at once; waiters give up after `deadline`.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    deadline: Duration,
}

impl Gate {
    /// `permits == 0` means one per CPU core.
    pub(crate) fn new(permits: u32, deadline: Duration) -> Self {
        let permits = match permits {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n as usize,
        };
        Self {
            slots: Arc::new(Semaphore::new(permits)),
            deadline,
        }
    }

    /// Waits for a slot, at most the queue deadline.
    pub(crate) async fn enter(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(self.deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a full queue if it ever is.
            Ok(Err(_)) | Err(_) => Err(HashError::Busy),
        }
    }
}

/// Hashes passwords with the configured cost. Verification uses the cost stored in each hash,
/// so raising the cost later does not lock anyone out.
#[derive(Debug, Clone)]
pub(crate) struct Hasher {
    params: Params,
    gate: Gate,
}

impl Hasher {
    pub(crate) fn new(config: &Argon2Config, gate: Gate) -> Result<Self, String> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { params, gate })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on a blocking thread once the gate admits it: a hash takes tens of milliseconds
    /// by design.
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        let permit = self.gate.enter().await?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            // Held until the hash is done, even if the request was cancelled meanwhile.
            let _permit = permit;
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// Whether `password` matches `stored`; a malformed stored hash never matches.
    pub(crate) async fn verify(&self, password: String, stored: String) -> Result<bool, HashError> {
        let permit = self.gate.enter().await?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&stored)
                .is_ok_and(|hash| argon2.verify_password(password.as_bytes(), &hash).is_ok())
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_gate_turns_callers_away_at_the_deadline_not_later() {
        let gate = Gate::new(2, Duration::from_millis(500));
        let _a = gate.enter().await.expect("first slot");
        let _b = gate.enter().await.expect("second slot");
        let started = tokio::time::Instant::now();
        assert_eq!(gate.enter().await.err(), Some(HashError::Busy));
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_freed_before_its_deadline() {
        let gate = Gate::new(1, Duration::from_millis(500));
        let held = gate.enter().await.expect("slot");
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(held);
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }
}
