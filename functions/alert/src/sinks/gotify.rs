//! Gotify (<https://gotify.net/api-docs>): `POST /message` with the
//! application token in the `X-Gotify-Key` header (not in the query string,
//! where proxies log it), a JSON `{title, message, priority, extras}`.
//! Answers: 200 with the stored message; errors are JSON
//! `{"error": "Unauthorized", "errorCode": 401, "errorDescription": ...}`.

use hemostat_protocol::secret::Secret;
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::json;

use super::{Answer, Request, Service, plain_answer, plain_text};
use crate::notice::{Level, Notice};

#[derive(Debug)]
pub struct Gotify {
    /// The server's base URL (`https://gotify.example.com`).
    pub url: Secret,
    pub token: Secret,
}

/// Gotify's Android app: 1 to 3 silent, 4 to 7 with sound, 8 and above
/// pop up.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Info => 3,
        Level::Warning => 5,
        Level::Error => 7,
        Level::Critical => 9,
    }
}

impl Service for Gotify {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        let url = format!("{}/message", self.url.expose().trim_end_matches('/'));
        let body = json!({
            "title": notice.title,
            "message": plain_text(notice),
            "priority": priority(notice.level()),
            "extras": {"client::display": {"contentType": "text/plain"}},
        });
        let mut request = Request::json(&url, &body);
        request.secret_header("X-Gotify-Key", self.token.expose());
        request
    }

    fn answer(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
        plain_answer(status, headers, super::json_text(body, &["error", "errorDescription"]))
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token, &self.url]
    }
}
