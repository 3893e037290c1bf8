use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::Row;

use super::{Claims, Jwk, Jwks, Verifier};
use crate::db::{Db, new_id};
use crate::error::Error;

/// The key this node signs with, plus how long a retired key stays published.
#[derive(Clone)]
pub(crate) struct KeyRing {
    active: Arc<RwLock<(String, EncodingKey)>>,
    access_ttl_secs: i64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing")
    }
}

impl KeyRing {
    /// Loads the newest stored key, generating (and storing) a new one when there is none or
    /// the newest is older than `rotation_secs`.
    pub(crate) async fn load(
        db: &Db,
        now: i64,
        rotation_secs: i64,
        access_ttl_secs: i64,
    ) -> Result<Self, Error> {
        let newest = sqlx::query(
            "SELECT kid, private_der, created_at FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC LIMIT 1",
        )
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| Error::SigningKey(e.to_string()))?;
        let active = match newest {
            Some(row) if row.get::<i64, _>("created_at") + rotation_secs > now => {
                let der = STANDARD
                    .decode(row.get::<String, _>("private_der"))
                    .map_err(|e| Error::SigningKey(format!("stored key is not base64: {e}")))?;
                (row.get::<String, _>("kid"), EncodingKey::from_ed_der(&der))
            }
            _ => rotate(db, now, access_ttl_secs).await?,
        };
        Ok(Self {
            active: Arc::new(RwLock::new(active)),
            access_ttl_secs,
        })
    }

    /// Replaces the signing key now; the previous one stays published until its tokens expire.
    pub(crate) async fn rotate(&self, db: &Db, now: i64) -> Result<String, Error> {
        let fresh = rotate(db, now, self.access_ttl_secs).await?;
        let kid = fresh.0.clone();
        *self
            .active
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(kid)
    }

    /// Signs `claims` with the active key.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let guard = self
            .active
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(guard.0.clone());
        jsonwebtoken::encode(&header, claims, &guard.1)
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

/// Generates a key, stores it and retires the previous unretired keys (they expire once every
/// token they signed has).
async fn rotate(db: &Db, now: i64, access_ttl_secs: i64) -> Result<(String, EncodingKey), Error> {
    let fail = |e: String| Error::SigningKey(e);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| fail(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| fail(e.to_string()))?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let kid = new_id();
    let grace = access_ttl_secs + Verifier::LEEWAY_SECS as i64;
    let mut tx = db.begin().await.map_err(|e| fail(e.to_string()))?;
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL",
    )
    .bind(now)
    .bind(now + grace)
    .execute(&mut *tx)
    .await
    .map_err(|e| fail(e.to_string()))?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_der, public_x, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(STANDARD.encode(pkcs8.as_ref()))
    .bind(&x)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| fail(e.to_string()))?;
    tx.commit().await.map_err(|e| fail(e.to_string()))?;
    tracing::info!(kid, "new access-token signing key");
    Ok((kid, EncodingKey::from_ed_der(pkcs8.as_ref())))
}
