//! The page: one HTML document with its style and script inlined, built
//! once per instance from assets compiled into the binary, so it works with
//! no internet and under any path prefix (nothing to fetch but the JSON API,
//! at URLs relative to wherever the page is served).
//!
//! The page carries no data: the script fetches the JSON API and renders
//! with `textContent` only, so nothing a container or an event says can
//! become markup. The Content-Security-Policy allows exactly the inlined
//! script and style (by hash) and requests to the page's own origin: even
//! if some markup slipped in, no injected script would run and nothing
//! could be sent elsewhere.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use sha2::{Digest, Sha256};

const HTML: &str = include_str!("../assets/index.html");
const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// The rendered page with the headers that belong to it.
#[derive(Debug, Clone)]
pub struct Page {
    pub html: String,
    /// Strong validator of `html`, quoted, for `If-None-Match`.
    pub etag: String,
    pub content_security_policy: String,
}

fn sha256_base64(text: &str) -> String {
    BASE64.encode(Sha256::digest(text.as_bytes()))
}

impl Page {
    /// `refresh_ms` is how often the script polls the API.
    pub fn new(refresh_ms: u64) -> Page {
        let html = HTML
            .replace("{{refresh_ms}}", &refresh_ms.to_string())
            .replace("{{version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{style}}", STYLE)
            .replace("{{script}}", SCRIPT);
        let content_security_policy = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_base64(SCRIPT),
            sha256_base64(STYLE),
        );
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(html.as_bytes()))[..32]);
        Page { html, etag, content_security_policy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_style_are_inlined_verbatim_and_allowed_by_hash() {
        let page = Page::new(3000);
        // The hash covers the element's exact text: the template must put
        // the assets directly between the tags.
        assert!(page.html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.html.contains(&format!("<style>{STYLE}</style>")));
        assert!(page.html.contains("data-refresh-ms=\"3000\""));
        assert!(!page.html.contains("{{"), "every placeholder filled");
        assert!(page.content_security_policy.contains(&format!("'sha256-{}'", sha256_base64(SCRIPT))));
        assert!(!page.content_security_policy.contains("unsafe"));
        // Self-contained: nothing loaded from anywhere.
        for needle in ["http://", "https://", "src=", "<link rel=\"stylesheet\""] {
            assert!(!page.html.replace(SCRIPT, "").contains(needle), "{needle}");
        }
        assert_eq!(page.etag, Page::new(3000).etag);
        assert_ne!(page.etag, Page::new(5000).etag);
    }
}
