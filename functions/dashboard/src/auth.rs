//! Who may see the dashboard.
//!
//! The page shows the whole fleet (hosts, containers, incidents, silences),
//! so every request is authenticated, by one of two:
//!
//! - the function URL itself, when its `AuthType` is `AWS_IAM`: AWS (or
//!   the local emulator, with its token) has checked the caller before the
//!   function runs and says so in the event (`requestContext.authorizer.iam`);
//! - the dashboard's own token, `DASHBOARD_AUTH_TOKEN`, for a URL whose
//!   `AuthType` is `NONE`: `Authorization: Bearer <token>` (scripts), or
//!   HTTP Basic with the token as the password and any user name, which a
//!   browser asks for by itself after a 401 with a `Basic` challenge.
//!
//! With neither, nothing is served: an open dashboard is never the default.
//!
//! A request that answers an approval must also come from the dashboard's
//! own page ([`same_origin`]): a browser sends the Basic credentials it
//! holds with a form another site posts to the dashboard, so the
//! credentials alone do not show that the person meant it.
//!
//! `POST /slack/actions` is the exception: Slack cannot send the token, so
//! that route is authenticated by Slack's signature instead
//! ([`hemostat_protocol::approval::slack`]).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hemostat_protocol::secret::Secret;
use http::{HeaderMap, header};

/// What `WWW-Authenticate` asks a browser for.
pub const CHALLENGE: &str = "Basic realm=\"HemoStat dashboard\", charset=\"UTF-8\"";

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// 401 with [`CHALLENGE`]: no credentials, or not the token.
    Challenge,
    /// 403: a URL with `AuthType` `NONE` and no `DASHBOARD_AUTH_TOKEN`;
    /// no credentials could help.
    NotConfigured,
}

/// `token`: `DASHBOARD_AUTH_TOKEN`; `iam`: the URL authenticated the caller
/// (`AWS_IAM`); `authorization`: the request's `Authorization` header.
pub fn check(token: Option<&Secret>, iam: bool, authorization: Option<&str>) -> Access {
    if iam {
        return Access::Allowed;
    }
    let Some(token) = token else { return Access::NotConfigured };
    let Some(authorization) = authorization else { return Access::Challenge };
    let presented = match authorization.split_once(' ') {
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => Some(value.trim().as_bytes().to_vec()),
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("basic") => basic_password(value.trim()),
        _ => None,
    };
    match presented {
        Some(given) if token.matches(&given) => Access::Allowed,
        _ => Access::Challenge,
    }
}

/// The password of HTTP Basic credentials (`base64(user:password)`).
fn basic_password(encoded: &str) -> Option<Vec<u8>> {
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// The user name of HTTP Basic credentials, when it is text (what the
/// person typed into the browser's prompt; any name goes with the token).
pub fn basic_user(authorization: Option<&str>) -> Option<String> {
    let (scheme, value) = authorization?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(value.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    String::from_utf8(decoded[..colon].to_vec()).ok()
}

/// The header the page's script sends with every answer, and the value.
/// A form cannot set a header, and a script of another site cannot send
/// one to the dashboard without a CORS preflight, which the dashboard
/// never grants.
pub const REQUEST_HEADER: &str = "x-hemostat-request";

/// Whether a request that changes something comes from the dashboard's
/// own page (or from a script, which sends no `Origin`): it carries
/// [`REQUEST_HEADER`]` : 1`; its `Origin`, if any, is the dashboard's own
/// (`X-Forwarded-Proto` and `Host`: the function URL's); its
/// `Sec-Fetch-Site`, if any, is `same-origin` or `none` (typed by the
/// user). `Err`: why not, for a 403.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if text(REQUEST_HEADER) != Some("1") {
        return Err(format!("refused: a request that answers an approval must carry {REQUEST_HEADER}: 1"));
    }
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(format!("refused: a request from another site (Sec-Fetch-Site: {site})"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = text(header::HOST.as_str()).map(|host| {
            // The function URL's scheme: https at AWS, http locally.
            let proto = text("x-forwarded-proto").and_then(|p| p.split(',').next()).map_or("https", str::trim);
            format!("{}://{}", proto.to_ascii_lowercase(), host.to_ascii_lowercase())
        });
        let origin = origin.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        if own.as_deref() != Some(origin.as_str()) {
            return Err("refused: a request from another origin".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!("Basic {}", BASE64.encode(credentials))
    }

    #[test]
    fn the_token_as_bearer_or_basic_password() {
        let token = Secret::new("t0k:en");
        let t = Some(&token);
        assert_eq!(check(t, false, Some("Bearer t0k:en")), Access::Allowed);
        assert_eq!(check(t, false, Some("bearer t0k:en")), Access::Allowed);
        assert_eq!(check(t, false, Some(&basic("hemostat:t0k:en"))), Access::Allowed);
        assert_eq!(check(t, false, Some(&basic(":t0k:en"))), Access::Allowed, "any user name");
        for bad in [
            "Bearer t0k",
            "Bearer t0k:en2",
            "Bearer",
            "t0k:en",
            &basic("t0k:en"),
            &basic("hemostat:t0k"),
            "Basic !!!",
            "Digest t0k:en",
        ] {
            assert_eq!(check(t, false, Some(bad)), Access::Challenge, "{bad}");
        }
        assert_eq!(check(t, false, None), Access::Challenge);
    }

    #[test]
    fn the_user_name_of_basic_credentials() {
        assert_eq!(basic_user(Some(&basic("alice:t0k:en"))).as_deref(), Some("alice"));
        assert_eq!(basic_user(Some(&basic(":t0k"))).as_deref(), Some(""));
        assert_eq!(basic_user(Some("Bearer t0k")), None);
        assert_eq!(basic_user(Some("Basic !!!")), None);
        assert_eq!(basic_user(None), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_dashboards_own_page_or_a_script_may_answer() {
        let own = [("host", "abc.lambda-url.eu-west-1.on.aws"), ("x-forwarded-proto", "https")];
        let with = |extra: &[(&'static str, &str)]| {
            let mut all = own.to_vec();
            all.extend_from_slice(extra);
            same_origin(&headers(&all))
        };
        // The page's fetch; a script (curl) with the header; the emulator's http.
        assert_eq!(
            with(&[
                ("x-hemostat-request", "1"),
                ("origin", "https://abc.lambda-url.eu-west-1.on.aws"),
                ("sec-fetch-site", "same-origin")
            ]),
            Ok(())
        );
        assert_eq!(with(&[("x-hemostat-request", "1")]), Ok(()));
        assert_eq!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-proto", "http"),
                ("x-hemostat-request", "1"),
                ("origin", "http://127.0.0.1:8080")
            ])),
            Ok(())
        );
        // A form of another site (no header), its fetch with the header it
        // cannot send without a preflight, another port, http for https.
        for refused in [
            with(&[("origin", "https://abc.lambda-url.eu-west-1.on.aws"), ("sec-fetch-site", "same-origin")]),
            with(&[("x-hemostat-request", "0")]),
            with(&[("x-hemostat-request", "1"), ("origin", "https://evil.example")]),
            with(&[("x-hemostat-request", "1"), ("origin", "null")]),
            with(&[("x-hemostat-request", "1"), ("origin", "http://abc.lambda-url.eu-west-1.on.aws")]),
            with(&[("x-hemostat-request", "1"), ("origin", "https://abc.lambda-url.eu-west-1.on.aws:444")]),
            with(&[("x-hemostat-request", "1"), ("sec-fetch-site", "same-site")]),
            with(&[("x-hemostat-request", "1"), ("sec-fetch-site", "cross-site")]),
            same_origin(&headers(&[("x-hemostat-request", "1"), ("origin", "https://abc")])),
        ] {
            assert!(refused.as_ref().is_err_and(|e| e.starts_with("refused")), "{refused:?}");
        }
    }

    #[test]
    fn iam_authenticated_urls_need_nothing_more_and_an_open_dashboard_is_never_served() {
        let token = Secret::new("t0ken");
        assert_eq!(check(None, true, None), Access::Allowed);
        assert_eq!(check(Some(&token), true, None), Access::Allowed);
        assert_eq!(check(None, false, None), Access::NotConfigured);
        assert_eq!(check(None, false, Some("Bearer anything")), Access::NotConfigured);
    }
}
