//! ntfy (<https://docs.ntfy.sh/publish/>): a POST to the topic URL, the
//! message as the plain-text body, `Title`, `Priority` (1 to 5) and `Tags`
//! as headers, and an access token as `Authorization: Bearer` when the
//! topic is protected. Answers: 200 with the message as JSON; errors are
//! JSON `{"code": 40301, "http": 403, "error": "forbidden", "link": ...}`;
//! 429 (`limit reached`) is retried, its `Retry-After` honoured.

use hemostat_protocol::secret::Secret;
use reqwest::{StatusCode, header::HeaderMap};

use super::{Answer, Request, Service, plain_answer, plain_text};
use crate::notice::{Level, Notice};

#[derive(Debug)]
pub struct Ntfy {
    /// The topic URL, `https://ntfy.sh/<topic>`: on the public server the
    /// topic name is the only thing keeping a topic private.
    pub url: Secret,
    pub token: Option<Secret>,
}

/// ntfy's priorities: 3 is the default, 4 `high` (a longer vibration),
/// 5 `urgent` (breaks through do-not-disturb on Android).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Info => 3,
        Level::Warning | Level::Error => 4,
        Level::Critical => 5,
    }
}

/// Tags: an emoji shortcode first (ntfy shows it before the title), then
/// the event kind and status as plain tags.
fn tags(notice: &Notice) -> String {
    let emoji = match notice.level() {
        _ if notice.status == "success" || notice.status.ends_with("_recovered") => "white_check_mark",
        Level::Info => "information_source",
        Level::Warning => "warning",
        Level::Error => "x",
        Level::Critical => "rotating_light",
    };
    format!("{emoji},{},{}", notice.kind, notice.status)
}

impl Service for Ntfy {
    fn request(&self, _envelope_json: &str, notice: &Notice) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("static header"));
        let mut request = Request { url: self.url.expose().to_owned(), headers, body: plain_text(notice).into_bytes() };
        request.text_header("Title", &notice.title);
        request.text_header("Priority", &priority(notice.level()).to_string());
        request.text_header("Tags", &tags(notice));
        if let Some(token) = &self.token {
            request.secret_header("Authorization", &format!("Bearer {}", token.expose()));
        }
        request
    }

    fn answer(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
        plain_answer(status, headers, super::json_text(body, &["error"]))
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.token.iter().chain([&self.url]).collect()
    }
}
