//! Signing keys at rest: AES-256-GCM under a key derived (HKDF-SHA256) from
//! `signing_key_secret`, so a copy of the database (a backup, a replica, a leaked dump) does
//! not let anyone mint access tokens.
//!
//! Stored form: `enc:v1:` + base64(12-byte nonce || ciphertext || tag), with the key id as
//! associated data, so a sealed key cannot be moved to another row. Keys stored before a
//! secret was configured are plain base64 DER and still load.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::Error;

const SEALED_PREFIX: &str = "enc:v1:";

/// Seals and opens stored signing keys; without a secret it stores them as they are.
pub(crate) struct KeyCipher {
    key: Option<LessSafeKey>,
}

impl std::fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCipher")
            .field("encrypts", &self.key.is_some())
            .finish()
    }
}

impl KeyCipher {
    /// A cipher keyed by `secret`; an empty secret stores keys unencrypted.
    pub(crate) fn new(secret: &protocol::Secret) -> Result<Self, Error> {
        if secret.is_empty() {
            return Ok(Self { key: None });
        }
        let prk =
            Salt::new(HKDF_SHA256, b"companion signing keys").extract(secret.expose().as_bytes());
        let okm = prk
            .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
            .map_err(|_| Error::SigningKey("cannot derive the key-encryption key".to_owned()))?;
        Ok(Self {
            key: Some(LessSafeKey::new(UnboundKey::from(okm))),
        })
    }

    /// Whether keys are stored encrypted.
    pub(crate) fn encrypts(&self) -> bool {
        self.key.is_some()
    }

    /// The stored form of the PKCS#8 DER `der` of key `kid`.
    pub(crate) fn seal(&self, kid: &str, der: &[u8]) -> Result<String, Error> {
        let Some(key) = &self.key else {
            return Ok(STANDARD.encode(der));
        };
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::SigningKey("the system random source failed".to_owned()))?;
        let mut sealed = der.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| Error::SigningKey("cannot encrypt the signing key".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// The DER of key `kid` from its stored form.
    pub(crate) fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>, Error> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return STANDARD
                .decode(stored)
                .map_err(|e| Error::SigningKey(format!("stored key {kid} is not base64: {e}")));
        };
        let Some(key) = &self.key else {
            return Err(Error::SigningKey(format!(
                "key {kid} is stored encrypted: set control_plane.signing_key_secret"
            )));
        };
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|e| Error::SigningKey(format!("stored key {kid} is not base64: {e}")))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::SigningKey(format!("stored key {kid} is truncated")));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::SigningKey(format!("stored key {kid} is truncated")))?;
        let mut buf = rest.to_vec();
        let der = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| {
                Error::SigningKey(format!(
                    "key {kid} does not decrypt: control_plane.signing_key_secret is not the \
                     secret it was stored with"
                ))
            })?;
        Ok(der.to_vec())
    }

    /// Whether `stored` is in the encrypted form.
    pub(crate) fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use protocol::Secret;

    use super::KeyCipher;

    #[test]
    fn a_sealed_key_opens_only_with_its_secret_and_its_kid() {
        let cipher = KeyCipher::new(&Secret::new("correct horse battery staple")).unwrap();
        let sealed = cipher.seal("kid-1", b"pkcs8 bytes").unwrap();
        assert!(KeyCipher::is_sealed(&sealed));
        assert!(
            !sealed.contains("cGtjczg"),
            "the plain base64 must not show"
        );
        assert_eq!(cipher.open("kid-1", &sealed).unwrap(), b"pkcs8 bytes");
        assert!(
            cipher.open("kid-2", &sealed).is_err(),
            "moved to another row"
        );
        let other = KeyCipher::new(&Secret::new("another secret")).unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
        let none = KeyCipher::new(&Secret::default()).unwrap();
        let err = none.open("kid-1", &sealed).unwrap_err().to_string();
        assert!(err.contains("signing_key_secret"), "{err}");
        // Keys stored before a secret was set still load.
        let plain = none.seal("kid-0", b"old").unwrap();
        assert_eq!(cipher.open("kid-0", &plain).unwrap(), b"old");
    }
}
