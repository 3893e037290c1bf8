//! The pages a person opens in a browser: the voice demo at `/` (sign in, call the companion,
//! see the conversation and its face) and the node's status at `/status`.
//!
//! Plain HTML, JavaScript and CSS compiled into the binary (no build step, nothing to deploy
//! beside it). Every response carries a content type, an `ETag` with `Cache-Control:
//! no-cache` (a browser revalidates and gets `304` while the binary is unchanged), and the
//! pages a strict Content-Security-Policy: scripts and styles from this origin only, no inline
//! code, no framing.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;

const DEMO_HTML: &str = include_str!("demo.html");
const DEMO_JS: &str = include_str!("demo.js");
const DEMO_CSS: &str = include_str!("demo.css");
const STATUS_HTML: &str = include_str!("status.html");
const STATUS_JS: &str = include_str!("status.js");

/// The policy of both pages. `connect-src 'self'` covers signaling and the control plane's
/// auth API (same origin); WebRTC media is not fetched, so no directive names it.
/// `media-src` allows the MediaStream the reply audio plays from.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; media-src 'self' mediastream: blob:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page says whether `dev:<user>` tokens work on this node in this tag.
const DEV_TOKENS_META: &str = r#"<meta name="companion-dev-tokens" content="off">"#;

/// What kind of file an asset is: decides its content type and extra headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Page,
    Script,
    Style,
}

impl Kind {
    fn content_type(self) -> &'static str {
        match self {
            Self::Page => "text/html; charset=utf-8",
            Self::Script => "text/javascript; charset=utf-8",
            Self::Style => "text/css; charset=utf-8",
        }
    }
}

/// One file served from memory, with its validator computed once.
#[derive(Debug)]
struct Asset {
    kind: Kind,
    body: Bytes,
    etag: HeaderValue,
}

impl Asset {
    fn new(kind: Kind, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body)))
            .expect("a quoted hex string is a valid header value");
        Self { kind, body, etag }
    }

    /// The response to a GET (or HEAD) with `request` headers: the file, or `304` when the
    /// browser's copy is current.
    fn respond(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == self.etag
            });
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = Response::new(Body::from(self.body.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.kind.content_type()),
            );
            r
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if self.kind == Kind::Page {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            h.insert(
                "permissions-policy",
                HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
            );
            h.insert(
                "cross-origin-opener-policy",
                HeaderValue::from_static("same-origin"),
            );
        }
        response
    }
}

/// FNV-1a, 64 bits: a stable content hash for the `ETag` (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The demo page, telling its script whether development tokens are accepted here.
fn demo_page(dev_tokens: bool) -> String {
    let on = if dev_tokens { "on" } else { "off" };
    DEMO_HTML.replacen(
        DEV_TOKENS_META,
        &format!(r#"<meta name="companion-dev-tokens" content="{on}">"#),
        1,
    )
}

fn serve(router: Router, path: &str, asset: Asset) -> Router {
    let asset = Arc::new(asset);
    router.route(
        path,
        get(move |headers: HeaderMap| {
            let asset = asset.clone();
            async move { asset.respond(&headers) }
        }),
    )
}

/// `/`, `/status` and the files they load from `/demo/`.
pub(crate) fn routes(dev_tokens: bool) -> Router {
    let mut router = Router::new();
    for (path, asset) in [
        ("/", Asset::new(Kind::Page, demo_page(dev_tokens))),
        ("/demo/demo.js", Asset::new(Kind::Script, DEMO_JS)),
        ("/demo/demo.css", Asset::new(Kind::Style, DEMO_CSS)),
        ("/status", Asset::new(Kind::Page, STATUS_HTML)),
        ("/demo/status.js", Asset::new(Kind::Script, STATUS_JS)),
    ] {
        router = serve(router, path, asset);
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn pages_carry_a_strict_policy_and_files_their_content_type() {
        let page = Asset::new(Kind::Page, demo_page(false)).respond(&HeaderMap::new());
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        let csp = header(&page, "content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "no inline code is allowed: {csp}");
        assert_eq!(header(&page, "x-content-type-options"), "nosniff");
        assert_eq!(header(&page, "cache-control"), "no-cache");

        let js = Asset::new(Kind::Script, DEMO_JS).respond(&HeaderMap::new());
        assert_eq!(
            header(&js, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&js, "content-security-policy"), "");
        let css = Asset::new(Kind::Style, DEMO_CSS).respond(&HeaderMap::new());
        assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    }

    #[test]
    fn a_current_copy_is_revalidated_with_304() {
        let asset = Asset::new(Kind::Script, DEMO_JS);
        let etag = asset.etag.clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag.clone());
        let r = asset.respond(&request);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers().get(header::ETAG), Some(&etag));

        for stale in ["\"0000000000000000\"", "W/\"x\", \"y\""] {
            request.insert(header::IF_NONE_MATCH, HeaderValue::from_static(stale));
            assert_eq!(asset.respond(&request).status(), StatusCode::OK, "{stale}");
        }
        // A weak form of the same tag and a list holding it match too.
        let listed = format!("\"a\", W/{}", etag.to_str().unwrap());
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&listed).unwrap(),
        );
        assert_eq!(asset.respond(&request).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn the_page_says_whether_development_tokens_work() {
        assert!(demo_page(false).contains(r#"name="companion-dev-tokens" content="off""#));
        let on = demo_page(true);
        assert!(on.contains(r#"name="companion-dev-tokens" content="on""#));
        assert!(!on.contains(DEV_TOKENS_META));
    }

    #[test]
    fn the_pages_hold_no_inline_code_the_policy_would_block() {
        for page in [DEMO_HTML, STATUS_HTML] {
            for forbidden in ["<style", "style=\"", " onclick", " onload", "javascript:"] {
                assert!(!page.contains(forbidden), "{forbidden} in a page");
            }
            // Every script is a file from this origin.
            for script in page.split("<script").skip(1) {
                assert!(script.trim_start().starts_with("src=\"/demo/"), "{script}");
            }
        }
        // The loaded files are the ones served.
        for path in ["/demo/demo.js", "/demo/demo.css"] {
            assert!(DEMO_HTML.contains(path), "{path}");
        }
        assert!(STATUS_HTML.contains("/demo/status.js"));
    }
}
