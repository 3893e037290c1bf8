//! The signing key every control-plane node shares.
//!
//! Keys live in `signing_keys`; every node signs with the newest unretired one and re-reads
//! it every `signing_key_reload_secs`, so a key rotated by one node reaches the others within
//! that time. Rotation (a key older than `signing_key_rotation_secs`, at start-up or while
//! running, or on demand) happens in one transaction that first takes the rotation lock row,
//! so nodes noticing an old key at once rotate it once. A retired key stays published until
//! the last token it may have signed expires: the access-token lifetime, the verifier's
//! leeway and one reload interval, during which a sibling may still sign with it.

use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::{AnyConnection, Row};

use super::cipher::KeyCipher;
use super::{Claims, Jwk, Jwks, Verifier};
use crate::db::{Db, new_id};
use crate::error::Error;

/// How keys are kept and replaced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    /// A key older than this is replaced.
    pub(crate) rotation_secs: i64,
    /// Seconds between two reads of the newest key.
    pub(crate) reload_secs: i64,
    /// Lifetime of the tokens a key signs.
    pub(crate) access_ttl_secs: i64,
}

impl KeyPolicy {
    /// How long a retired key stays published.
    fn grace_secs(&self) -> i64 {
        self.access_ttl_secs + Verifier::LEEWAY_SECS as i64 + self.reload_secs
    }
}

/// The key this node signs with.
struct Active {
    kid: String,
    key: EncodingKey,
}

/// The key this node signs with, and how to keep it current.
#[derive(Clone)]
pub(crate) struct KeyRing {
    active: Arc<RwLock<Active>>,
    cipher: Arc<KeyCipher>,
    policy: KeyPolicy,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kid", &self.kid())
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads the newest stored key, rotating first when there is none or it is too old.
    pub(crate) async fn load(
        db: &Db,
        now: i64,
        policy: KeyPolicy,
        cipher: KeyCipher,
    ) -> Result<Self, Error> {
        if !cipher.encrypts() {
            tracing::warn!(
                "control_plane.signing_key_secret is not set: signing keys are stored \
                 unencrypted in the database"
            );
        }
        let active = current(db, now, &policy, &cipher, false).await?;
        Ok(Self {
            active: Arc::new(RwLock::new(active)),
            cipher: Arc::new(cipher),
            policy,
        })
    }

    /// The id of the key this node signs with.
    pub(crate) fn kid(&self) -> String {
        self.read().kid.clone()
    }

    /// Re-reads the newest key (rotating it when it is too old) and signs with it from now
    /// on. Returns the new key id when it changed.
    pub(crate) async fn reload(&self, db: &Db, now: i64) -> Result<Option<String>, Error> {
        let fresh = current(db, now, &self.policy, &self.cipher, false).await?;
        Ok(self.install(fresh))
    }

    /// Replaces the signing key now; the previous one stays published until its tokens expire.
    pub(crate) async fn rotate(&self, db: &Db, now: i64) -> Result<String, Error> {
        let fresh = current(db, now, &self.policy, &self.cipher, true).await?;
        let kid = fresh.kid.clone();
        self.install(fresh);
        Ok(kid)
    }

    fn install(&self, fresh: Active) -> Option<String> {
        let mut active = self
            .active
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if active.kid == fresh.kid {
            return None;
        }
        tracing::info!(kid = %fresh.kid, previous = %active.kid, "signing with a new key");
        let kid = fresh.kid.clone();
        *active = fresh;
        Some(kid)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Active> {
        self.active
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Signs `claims` with the active key.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let active = self.read();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        jsonwebtoken::encode(&header, claims, &active.key)
    }

    /// Every key a valid token may be signed with: unretired keys and retired keys whose last
    /// tokens have not yet expired. Read from the database so keys of other nodes appear too.
    pub(crate) async fn published(db: &Db, now: i64) -> Result<Jwks, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT kid, public_x FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1 \
             ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC",
        )
        .bind(now)
        .fetch_all(&db.pool)
        .await?;
        let keys = rows
            .iter()
            .map(|row| {
                Jwk::ed25519(
                    &row.get::<String, _>("kid"),
                    &row.get::<String, _>("public_x"),
                )
            })
            .collect();
        Ok(Jwks { keys })
    }

    /// A verifier over the published keys (what a gateway would build from the JWKS).
    pub(crate) async fn verifier(
        db: &Db,
        now: i64,
        issuer: &str,
        audience: &str,
    ) -> Result<Verifier, String> {
        let jwks = Self::published(db, now).await.map_err(|e| e.to_string())?;
        Verifier::from_jwks(&jwks, issuer, audience).map_err(|e| e.to_string())
    }
}

/// A stored key.
struct Stored {
    kid: String,
    private_der: String,
    created_at: i64,
}

const NEWEST: &str = "SELECT kid, private_der, created_at FROM signing_keys \
     WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1";

async fn newest(conn: &mut AnyConnection) -> Result<Option<Stored>, sqlx::Error> {
    let row = sqlx::query(NEWEST).fetch_optional(conn).await?;
    Ok(row.map(|row| Stored {
        kid: row.get("kid"),
        private_der: row.get("private_der"),
        created_at: row.get("created_at"),
    }))
}

/// The key to sign with: the newest stored one, unless it is missing, too old or `force`d
/// out, in which case exactly one node (under the rotation lock) makes the next one.
async fn current(
    db: &Db,
    now: i64,
    policy: &KeyPolicy,
    cipher: &KeyCipher,
    force: bool,
) -> Result<Active, Error> {
    let fail = |e: sqlx::Error| Error::SigningKey(e.to_string());
    let fresh = |k: &Stored| k.created_at + policy.rotation_secs > now;
    if !force {
        let mut conn = db.pool.acquire().await.map_err(fail)?;
        if let Some(key) = newest(&mut conn).await.map_err(fail)?
            && fresh(&key)
        {
            return activate(db, cipher, key).await;
        }
    }
    let mut tx = db.begin().await.map_err(fail)?;
    // The lock row: a second node wanting to rotate waits here, then finds the new key.
    sqlx::query("UPDATE signing_key_lock SET taken_at = $1 WHERE id = 1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let seen = newest(&mut tx).await.map_err(fail)?;
    if let Some(key) = seen
        && fresh(&key)
        && !force
    {
        tx.commit().await.map_err(fail)?;
        return activate(db, cipher, key).await;
    }
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| Error::SigningKey(e.to_string()))?;
    let pair =
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| Error::SigningKey(e.to_string()))?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let kid = new_id();
    // A retired key never signs again (a sibling still holding it signs from memory until
    // its next reload), so its private half is dropped from the database.
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $1, expires_at = $2, private_der = '' \
         WHERE retired_at IS NULL",
    )
    .bind(now)
    .bind(now + policy.grace_secs())
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_der, public_x, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(cipher.seal(&kid, pkcs8.as_ref())?)
    .bind(&x)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    tracing::info!(kid, "new access-token signing key");
    Ok(Active {
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        kid,
    })
}

/// Decrypts a stored key; a key stored in plain form before a secret was configured is
/// sealed in place, so the database stops holding it readable.
async fn activate(db: &Db, cipher: &KeyCipher, key: Stored) -> Result<Active, Error> {
    let der = cipher.open(&key.kid, &key.private_der)?;
    if cipher.encrypts() && !KeyCipher::is_sealed(&key.private_der) {
        let sealed = cipher.seal(&key.kid, &der)?;
        let mut tx = db
            .begin()
            .await
            .map_err(|e| Error::SigningKey(e.to_string()))?;
        sqlx::query("UPDATE signing_keys SET private_der = $1 WHERE kid = $2 AND private_der = $3")
            .bind(sealed)
            .bind(&key.kid)
            .bind(&key.private_der)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::SigningKey(e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| Error::SigningKey(e.to_string()))?;
        tracing::info!(kid = %key.kid, "signing key now stored encrypted");
    }
    Ok(Active {
        key: EncodingKey::from_ed_der(&der),
        kid: key.kid,
    })
}
