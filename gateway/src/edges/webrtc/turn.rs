//! STUN/TURN servers as handed to callers, with time-limited TURN credentials minted for
//! servers that share a secret with us (coturn `use-auth-secret`).

use serde::Serialize;

use crate::core::config::IceServer;

/// One entry of the browser's `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct IceServerView {
    pub(crate) urls: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) credential: String,
}

/// The servers `user_id` should use, with credentials valid from `now_unix` (seconds).
pub(crate) fn ice_servers_for(
    servers: &[IceServer],
    user_id: &str,
    now_unix: u64,
) -> Vec<IceServerView> {
    servers
        .iter()
        .map(|s| {
            let (username, credential) = if s.secret.is_empty() {
                (s.username.clone(), s.credential.expose().to_owned())
            } else {
                let username = format!("{}:{user_id}", now_unix + s.credential_ttl_secs);
                let mac = str0m::crypto::from_feature_flags()
                    .sha1_hmac_provider
                    .sha1_hmac(s.secret.expose().as_bytes(), &[username.as_bytes()]);
                (username, base64(&mac))
            };
            IceServerView {
                urls: s.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// `Link` header values for a WHIP answer (RFC 9725 section 4.6).
pub(crate) fn link_headers(servers: &[IceServerView]) -> Vec<String> {
    let quote = |s: &str| s.replace(['"', '\\'], "");
    let mut out = Vec::new();
    for s in servers {
        for url in &s.urls {
            let mut v = format!("<{url}>; rel=\"ice-server\"");
            if !s.username.is_empty() {
                v.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(&s.username),
                    quote(&s.credential)
                ));
            }
            out.push(v);
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), as TURN REST credentials use.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_shared_secret_mints_coturn_style_credentials() {
        let servers = [IceServer {
            urls: vec!["turn:turn.example:3478?transport=udp".to_owned()],
            username: String::new(),
            credential: Default::default(),
            secret: protocol::Secret::new("north"),
            credential_ttl_secs: 3600,
        }];
        let views = ice_servers_for(&servers, "alice", 1_000_000);
        assert_eq!(views[0].username, "1003600:alice");
        // HMAC-SHA1("north", "1003600:alice"), computed with `openssl dgst -sha1 -hmac north`.
        assert_eq!(views[0].credential, "udLEuyyDOwk3mLEbdxPxYtNXKVA=");
        let links = link_headers(&views);
        assert!(links[0].starts_with("<turn:turn.example:3478?transport=udp>; rel=\"ice-server\""));
        assert!(links[0].contains("username=\"1003600:alice\""));
    }
}
