//! The data plane's credentials: what a gateway presents in `X-Service-Token` on the routes
//! only it may call (see `api::data_plane`).

/// A fresh random data-plane credential (32 bytes, hex): what a process hosting both planes
/// gives its own gateway when none is configured.
pub fn new_service_token() -> protocol::Secret {
    protocol::Secret::new(crate::db::hex(&crate::db::random_bytes::<32>()))
}

/// The accepted data-plane credentials, kept as SHA-256 digests so a comparison takes the
/// same time whatever the presented value shares with a real one.
#[derive(Default)]
pub(crate) struct ServiceTokens(Vec<[u8; 32]>);

impl ServiceTokens {
    pub(crate) fn new(tokens: &[protocol::Secret]) -> Self {
        Self(
            tokens
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
        )
    }

    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        // Every credential is compared, and each comparison reads every byte.
        self.0.iter().fold(false, |found, known| {
            let diff = known
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (diff == 0)
        })
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use protocol::Secret;

    use super::ServiceTokens;

    #[test]
    fn any_configured_credential_is_accepted_and_nothing_else() {
        let tokens = ServiceTokens::new(&[
            Secret::new("old-credential-0123456789"),
            Secret::new("new-credential-0123456789"),
            Secret::default(),
        ]);
        assert!(tokens.accepts(b"old-credential-0123456789"));
        assert!(tokens.accepts(b"new-credential-0123456789"));
        assert!(!tokens.accepts(b"new-credential-012345678"));
        assert!(!tokens.accepts(b""));
        assert!(!ServiceTokens::default().accepts(b""));
    }
}
