//! The endpoint's TLS identity: a configured PEM certificate, or a short-lived self-signed one
//! whose SHA-256 hash a browser pins with `serverCertificateHashes`.

use std::{sync::Arc, time::Duration};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};
use time::OffsetDateTime;

use super::error::QuicError;

/// Lifetime of a generated certificate. Browsers accept a hash-pinned certificate only when
/// its validity is at most 14 days; 13 leaves a day for clock skew.
pub(crate) const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);

/// How often a generated certificate is replaced, so a long-running development node never
/// serves an expired one (clients fetch the new hash for new connections).
pub(crate) const SELF_SIGNED_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// The crypto provider of every TLS config this module builds: the aws-lc-rs backend the rest
/// of the workspace uses, passed explicitly so no process-wide default is needed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as rustls' process-wide default provider unless one is installed
/// already. Safe to call any number of times from any thread: losing the race to another
/// installer is fine, since either way a default exists afterwards.
///
/// This module passes its provider explicitly; the default matters to libraries that call
/// `rustls::ClientConfig::builder()`, which panics when more than one backend is compiled in
/// and none was chosen.
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // An Err means another thread installed one first: nothing to do.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// A certificate chain and its key.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// What `GET /v1/webtransport/cert-hash` publishes.
    pub(crate) hash: CertHash,
}

/// The SHA-256 hash of the leaf certificate and its validity, as a browser needs it for
/// `serverCertificateHashes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertHash {
    /// SHA-256 of the DER-encoded leaf certificate.
    pub sha256: [u8; 32],
    /// Whether the certificate was generated at start-up (development) rather than loaded.
    pub self_signed: bool,
    /// End of the generated certificate's validity, unix milliseconds (`None` when loaded
    /// from a file: this module does not parse certificates).
    pub not_after_ms: Option<u64>,
}

impl CertHash {
    fn of(leaf: &[u8], self_signed: bool, not_after_ms: Option<u64>) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf);
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(digest.as_ref());
        Self {
            sha256,
            self_signed,
            not_after_ms,
        }
    }

    /// Lower-case hex, 64 characters.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.sha256
            .iter()
            .fold(String::with_capacity(64), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
    }

    /// Standard base64 with padding (what `Uint8Array.from(atob(..))` decodes).
    pub fn base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }
}

impl Identity {
    /// Loads a PEM chain and key (paths from `gateway.quic.cert_path` / `key_path`).
    pub(crate) fn load(cert_path: &str, key_path: &str) -> Result<Self, QuicError> {
        let bad = |path: &str, reason: String| QuicError::Certificate {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .map_err(|e| bad(cert_path, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert_path, e.to_string()))?;
        let Some(leaf) = chain.first() else {
            return Err(bad(
                cert_path,
                "no CERTIFICATE block in the file".to_owned(),
            ));
        };
        let key =
            PrivateKeyDer::from_pem_file(key_path).map_err(|e| bad(key_path, e.to_string()))?;
        let hash = CertHash::of(leaf, false, None);
        Ok(Self { chain, key, hash })
    }

    /// Generates a self-signed ECDSA P-256 certificate for `localhost`, 127.0.0.1 and ::1,
    /// valid from a minute before `now` for [`SELF_SIGNED_VALIDITY`].
    pub(crate) fn self_signed(now: OffsetDateTime) -> Result<Self, QuicError> {
        let failed = |e: rcgen::Error| QuicError::SelfSigned(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
        let names = ["localhost", "127.0.0.1", "::1"]
            .map(str::to_owned)
            .to_vec();
        let mut params = rcgen::CertificateParams::new(names).map_err(failed)?;
        // The minute of slack covers a client clock slightly behind ours; it counts towards
        // the browser's 14-day limit, which SELF_SIGNED_VALIDITY stays a day under.
        params.not_before = now - Duration::from_secs(60);
        params.not_after = now + SELF_SIGNED_VALIDITY;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "companion gateway (development)");
        let cert = params.self_signed(&key).map_err(failed)?;
        let not_after_ms = u64::try_from(params.not_after.unix_timestamp())
            .ok()
            .map(|secs| secs * 1000);
        let hash = CertHash::of(cert.der(), true, not_after_ms);
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            hash,
        })
    }

    /// A TLS 1.3 server config offering `alpn` (QUIC requires TLS 1.3).
    pub(crate) fn tls_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, QuicError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| QuicError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| QuicError::Tls(e.to_string()))?;
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_browser_pinnable() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_389_581).unwrap();
        let identity = Identity::self_signed(now).unwrap();
        let hash = &identity.hash;
        assert!(hash.self_signed);
        let validity_ms = hash.not_after_ms.unwrap() - (1_764_389_581 - 60) * 1000;
        assert!(validity_ms < 14 * 24 * 3600 * 1000, "{validity_ms} ms");
        assert_eq!(hash.hex().len(), 64);
        assert_eq!(hash.base64().len(), 44);
        // The hash is of the DER certificate the TLS config serves.
        let again = CertHash::of(&identity.chain[0], true, hash.not_after_ms);
        assert_eq!(&again, hash);
        identity
            .tls_config(&[b"h3"])
            .expect("rustls accepts the key");
    }

    #[test]
    fn pem_files_load_and_hash_their_leaf() {
        let dir = std::env::temp_dir().join(format!("quic-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = |label: &str, der: &[u8]| {
            use base64::Engine as _;
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, pem("CERTIFICATE", cert.der())).unwrap();
        std::fs::write(&key_path, pem("PRIVATE KEY", &key.serialize_der())).unwrap();

        let loaded =
            Identity::load(cert_path.to_str().unwrap(), key_path.to_str().unwrap()).unwrap();
        assert_eq!(loaded.hash, CertHash::of(cert.der(), false, None));
        loaded.tls_config(&[b"companion/1"]).unwrap();

        let missing = Identity::load("/nonexistent/cert.pem", key_path.to_str().unwrap());
        let message = missing.unwrap_err().to_string();
        assert!(message.contains("/nonexistent/cert.pem"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
