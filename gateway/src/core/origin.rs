//! Which web pages may open a chat WebSocket (sans-IO: headers in, yes or no out).
//!
//! Browsers send `Origin` on every WebSocket handshake and let any page connect anywhere, so
//! without this check another site could chat as a signed-in visitor (cross-site WebSocket
//! hijacking) when the token travels in a cookie-like way. Clients that are not browsers send
//! no `Origin` and are not affected.

/// Whether a handshake with `origin` (the `Origin` header), arriving for `host` (the `Host`
/// header), may proceed under `allowed` (`gateway.chat.allowed_origins`).
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin.map(|o| o.trim().trim_end_matches('/')) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (sandboxed frames, file pages) and anything malformed.
        return false;
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return false;
    }
    if host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority)) {
        return true;
    }
    matches!(
        hostname(authority).as_deref(),
        Some("localhost" | "127.0.0.1" | "[::1]")
    )
}

/// [`origin_allowed`] for a WebTransport CONNECT to `authority` (its `:authority`). The
/// session runs on the QUIC port while the page came from the HTTP port, so a page on the
/// same host name counts as same-origin whatever its port.
pub(crate) fn webtransport_origin_allowed(
    origin: Option<&str>,
    authority: &str,
    allowed: &[String],
) -> bool {
    if origin_allowed(origin, Some(authority), allowed) {
        return true;
    }
    let Some((scheme, page)) = origin.and_then(|o| o.trim().split_once("://")) else {
        return false;
    };
    let page = page.trim_end_matches('/');
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && hostname(page).is_some_and(|page| hostname(authority) == Some(page))
}

/// The lower-case host name of `host[:port]` (IPv6 literals keep their brackets).
fn hostname(authority: &str) -> Option<String> {
    let name = if let Some(rest) = authority.trim().strip_prefix('[') {
        rest.split(']').next().map(|h| format!("[{h}]"))
    } else {
        authority.trim().split(':').next().map(str::to_owned)
    };
    name.filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_clients_same_origin_and_localhost_pages_are_allowed() {
        assert!(origin_allowed(None, Some("chat.example.com"), &[]));
        assert!(origin_allowed(
            Some("https://chat.example.com"),
            Some("chat.example.com"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://localhost:5173"),
            Some("10.0.0.2:8080"),
            &[]
        ));
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), None, &[]));
        assert!(origin_allowed(Some("http://[::1]:8080"), None, &[]));
    }

    #[test]
    fn other_sites_are_refused_unless_listed() {
        let host = Some("chat.example.com");
        assert!(!origin_allowed(Some("https://evil.example"), host, &[]));
        assert!(!origin_allowed(Some("null"), host, &[]));
        assert!(!origin_allowed(
            Some("http://localhost.evil.example"),
            host,
            &[]
        ));
        assert!(!origin_allowed(
            Some("https://chat.example.com.evil"),
            host,
            &[]
        ));
        let listed = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(
            Some("https://app.example.com"),
            host,
            &listed
        ));
        assert!(!origin_allowed(Some("https://evil.example"), host, &listed));
        assert!(origin_allowed(
            Some("https://evil.example"),
            host,
            &["*".to_owned()]
        ));
    }

    #[test]
    fn a_webtransport_page_may_come_from_another_port_of_the_same_host() {
        let quic = "chat.example.com:4433";
        for page in ["https://chat.example.com", "https://Chat.Example.com:8443/"] {
            assert!(webtransport_origin_allowed(Some(page), quic, &[]), "{page}");
        }
        for page in [
            "https://evil.example",
            "https://chat.example.com.evil:4433",
            "null",
            "ftp://chat.example.com",
            "https://",
        ] {
            assert!(
                !webtransport_origin_allowed(Some(page), quic, &[]),
                "{page}"
            );
        }
        assert!(webtransport_origin_allowed(None, quic, &[]));
        assert!(webtransport_origin_allowed(
            Some("http://localhost:5173"),
            quic,
            &[]
        ));
        let listed = vec!["https://app.example.com".to_owned()];
        assert!(webtransport_origin_allowed(
            Some("https://app.example.com"),
            quic,
            &listed
        ));
    }
}
