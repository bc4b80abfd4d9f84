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

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hemostat_protocol::secret::Secret;

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
    fn iam_authenticated_urls_need_nothing_more_and_an_open_dashboard_is_never_served() {
        let token = Secret::new("t0ken");
        assert_eq!(check(None, true, None), Access::Allowed);
        assert_eq!(check(Some(&token), true, None), Access::Allowed);
        assert_eq!(check(None, false, None), Access::NotConfigured);
        assert_eq!(check(None, false, Some("Bearer anything")), Access::NotConfigured);
    }
}
