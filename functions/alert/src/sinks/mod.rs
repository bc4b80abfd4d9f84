//! Where notifications go, and the one delivery loop they all share.
//!
//! Each receiver is a [`Service`], in a file of its own: it renders a
//! notice into the request its API expects and reads that API's answers
//! (accepted, worth retrying, maybe after a wait it names, or refused for
//! good). A [`Sink`] is a service plus the [`Filter`] saying which notices
//! it wants. Delivery is bounded the same way for all: a per-request
//! timeout, a few attempts with doubling, jittered backoff
//! ([`Backoff`]), a `Retry-After` honoured when it fits, and a deadline over
//! all of it, so a dead or slow receiver costs a batch at most
//! [`Policy::deadline`].
//!
//! Errors never include a URL, a token or a routing key: all are
//! credentials. A refusal's detail is the service's own error message, with
//! any of the sink's secrets cut out of it.

mod discord;
pub(crate) mod email;
mod gotify;
mod ntfy;
pub(crate) mod pagerduty;
pub mod slack;
mod teams;
pub mod webhook;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use hemostat_protocol::{backoff::Backoff, retry_after, secret::Secret};
use reqwest::{
    StatusCode,
    header::{HeaderMap, HeaderValue},
};

use crate::{config::Config, error::AlertError, filter::Filter, notice::Notice};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub deadline: Duration,
}

impl Policy {
    pub fn of(config: &Config) -> Self {
        Policy {
            request_timeout: config.http_timeout,
            max_attempts: config.max_attempts,
            retry_base: config.retry_base,
            deadline: config.notify_deadline,
        }
    }

    /// The wait after failed attempt number `attempt`: `retry_base`
    /// doubling, jittered (a fleet's alert instances do not retry a
    /// recovering receiver in lockstep), never beyond the deadline (a wait
    /// that long is not waited: the delivery gives up).
    fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.retry_base, self.deadline).delay(attempt.into())
    }
}

/// One HTTP request a service wants sent (always a POST).
pub struct Request {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// A JSON body to `url`.
    pub fn json(url: &str, body: &serde_json::Value) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Request { url: url.to_owned(), headers, body: body.to_string().into_bytes() }
    }

    /// Adds a header holding a credential: marked sensitive, so neither
    /// reqwest nor a `Debug` of the map shows it. A value that is not a valid
    /// header (a newline in a token) is left out; the service then answers
    /// 401, which names the problem without the value.
    pub fn secret_header(&mut self, name: &'static str, value: &str) {
        if let Ok(mut v) = HeaderValue::from_str(value) {
            v.set_sensitive(true);
            self.headers.insert(name, v);
        }
    }

    /// Adds a header whose value comes from a notice: kept when it is a
    /// valid header value, else made one ([`header_text`]).
    pub fn text_header(&mut self, name: &'static str, value: &str) {
        if let Ok(v) = HeaderValue::from_str(&header_text(value)) {
            self.headers.insert(name, v);
        }
    }
}

/// `text` as a header value: visible ASCII as it is; anything else as an
/// RFC 2047 encoded word (`=?UTF-8?B?...?=`), which ntfy and most mail-ish
/// receivers decode. Line breaks become spaces either way.
pub fn header_text(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.is_ascii() {
        flat
    } else {
        use base64::Engine;
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(flat.as_bytes()))
    }
}

/// A notice as plain text for receivers without fields (ntfy, Gotify):
/// the main sentence, then `Title: value` lines, then the evidence.
pub fn plain_text(notice: &Notice) -> String {
    let mut out = notice.text.clone();
    for f in &notice.fields {
        out.push_str(&format!("\n{}: {}", f.title, f.value));
    }
    if !notice.evidence.is_empty() {
        out.push_str("\nEvidence:");
        for line in &notice.evidence {
            out.push_str(&format!("\n  {line}"));
        }
    }
    out.trim_start().to_owned()
}

/// How a service read an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Worth another attempt; `after`: the wait the service asked for.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Retrying cannot help (a revoked hook, an invalid payload);
    /// `detail`: the service's own words for it.
    Refused {
        detail: String,
    },
}

/// A receiver's API: what to send, and what its answers mean.
pub trait Service: Send + Sync + fmt::Debug {
    /// The request telling `notice` (`envelope_json`: the record's body,
    /// verbatim, for receivers that want the raw event).
    fn request(&self, envelope_json: &str, notice: &Notice) -> Request;

    /// How to read an answer. The default suits most webhooks: 2xx is
    /// accepted; 408, 429 and 5xx are retried (429's `Retry-After`
    /// honoured); any other status is final.
    fn answer(&self, status: StatusCode, headers: &HeaderMap, _body: &[u8]) -> Answer {
        plain_answer(status, headers, String::new())
    }

    /// The credentials this service holds, cut out of any error text.
    fn secrets(&self) -> Vec<&Secret>;

    /// Whether `notice` closes what an earlier notice opened (a PagerDuty
    /// resolve): it passes the sink's severity filter, so an incident
    /// opened at `error` is not left open because the fix was `info`.
    fn closes(&self, _notice: &Notice) -> bool {
        false
    }
}

/// The default reading of an answer, `detail` being what the body said.
pub fn plain_answer(status: StatusCode, headers: &HeaderMap, detail: String) -> Answer {
    if status.is_success() {
        return Answer::Accepted;
    }
    let why = if detail.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {detail}", status.as_u16())
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        Answer::Retry { after: retry_after(headers), why }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Answer::Retry { after: None, why }
    } else {
        Answer::Refused { detail }
    }
}

/// The string at `key` of a JSON error body, if it is one.
pub fn json_text(body: &[u8], keys: &[&str]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return String::new() };
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| match value.get(*k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(items) => {
                Some(items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join("; "))
            }
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect();
    parts.join(": ")
}

/// How a sink reaches its service.
#[derive(Debug, Clone)]
enum Transport {
    Http(Arc<dyn Service>),
    Email(Arc<email::Email>),
}

/// What one notification sends, built once and sent at every attempt.
enum Payload {
    Http(Request, Arc<dyn Service>),
    Email(lettre::Message, Arc<email::Email>),
}

/// One place notifications go.
#[derive(Debug, Clone)]
pub struct Sink {
    /// `slack`, `webhook`, `ntfy`, ...: in logs, dedupe keys and counters.
    pub name: &'static str,
    transport: Transport,
    pub filter: Filter,
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub elapsed: Duration,
}

/// The sink names, in the order they are built and listed.
pub const NAMES: [&str; 8] = ["slack", "webhook", "ntfy", "discord", "teams", "pagerduty", "gotify", "email"];

impl Sink {
    pub fn new(name: &'static str, service: impl Service + 'static, filter: Filter) -> Self {
        Sink { name, transport: Transport::Http(Arc::new(service)), filter }
    }

    pub fn slack(url: Secret) -> Self {
        Sink::new("slack", slack::Slack { url, buttons: false }, Filter::default())
    }

    /// The sinks `config` asks for (none when notifications are disabled).
    pub fn from_config(config: &Config) -> Vec<Sink> {
        if !config.enabled {
            return Vec::new();
        }
        Sink::configured(config)
    }

    /// Every configured sink, `ALERT_ENABLED` or not (`hemostat notify test`).
    pub fn configured(config: &Config) -> Vec<Sink> {
        let filter = |name| config.filter(name);
        let mut sinks = Vec::new();
        if let Some(url) = &config.slack_webhook_url {
            let slack = slack::Slack { url: url.clone(), buttons: config.slack_approval_buttons };
            sinks.push(Sink::new("slack", slack, filter("slack")));
        }
        if let Some(url) = &config.webhook_url {
            let service = webhook::Webhook { url: url.clone(), secret: config.webhook_secret.clone() };
            sinks.push(Sink::new("webhook", service, filter("webhook")));
        }
        if let Some(url) = &config.ntfy_url {
            let service = ntfy::Ntfy { url: url.clone(), token: config.ntfy_token.clone() };
            sinks.push(Sink::new("ntfy", service, filter("ntfy")));
        }
        if let Some(url) = &config.discord_webhook_url {
            sinks.push(Sink::new("discord", discord::Discord { url: url.clone() }, filter("discord")));
        }
        if let Some(url) = &config.teams_webhook_url {
            sinks.push(Sink::new("teams", teams::Teams { url: url.clone() }, filter("teams")));
        }
        if let Some(key) = &config.pagerduty_routing_key {
            let service = pagerduty::PagerDuty { url: config.pagerduty_url.clone(), routing_key: key.clone() };
            sinks.push(Sink::new("pagerduty", service, filter("pagerduty")));
        }
        if let (Some(url), Some(token)) = (&config.gotify_url, &config.gotify_token) {
            let service = gotify::Gotify { url: url.clone(), token: token.clone() };
            sinks.push(Sink::new("gotify", service, filter("gotify")));
        }
        if let Some(smtp) = &config.smtp {
            let transport = Transport::Email(Arc::new(email::Email::new(smtp.clone())));
            sinks.push(Sink { name: "email", transport, filter: filter("email") });
        }
        sinks
    }

    /// Whether this sink wants `notice` (its `ALERT_<SINK>_EVENTS` and
    /// `ALERT_<SINK>_MIN_SEVERITY`).
    pub fn wants(&self, notice: &Notice) -> bool {
        self.filter.admits(notice, self.closes(notice))
    }

    /// Whether `notice` closes an earlier one for this sink.
    pub fn closes(&self, notice: &Notice) -> bool {
        match &self.transport {
            Transport::Http(service) => service.closes(notice),
            Transport::Email(_) => false,
        }
    }

    /// `text` with every secret of this sink cut out, and kept short.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        let secrets = match &self.transport {
            Transport::Http(service) => service.secrets(),
            Transport::Email(email) => email.secrets(),
        };
        for secret in secrets {
            if !secret.is_empty() {
                text = text.replace(secret.expose(), "<redacted>");
            }
        }
        match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        }
    }

    /// Delivers `notice` until it is accepted, the attempts are spent, or
    /// the deadline is near, reading each answer the service's way
    /// (`envelope_json`: the record's body, verbatim).
    pub async fn deliver(
        &self,
        client: &reqwest::Client,
        policy: &Policy,
        envelope_json: &str,
        notice: &Notice,
    ) -> Result<Delivered, AlertError> {
        let payload = match &self.transport {
            Transport::Http(service) => Payload::Http(service.request(envelope_json, notice), service.clone()),
            Transport::Email(email) => Payload::Email(email.message(notice)?, email.clone()),
        };
        let started = Instant::now();
        let deadline = started + policy.deadline;
        let mut attempt = 0;
        let mut last = String::from("deadline reached before the first attempt");
        while attempt < policy.max_attempts {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            attempt += 1;
            let timeout = policy.request_timeout.min(remaining);
            let (answer, answered) = match &payload {
                Payload::Http(request, service) => http_attempt(client, request, service.as_ref(), timeout).await,
                Payload::Email(message, email) => email.attempt(message.clone(), timeout).await,
            };
            let wait = match answer {
                Answer::Accepted => return Ok(Delivered { attempts: attempt, elapsed: started.elapsed() }),
                Answer::Refused { detail } => {
                    return Err(AlertError::Refused { status: answered, detail: self.scrub(&detail) });
                }
                Answer::Retry { after: Some(asked), why } => {
                    last = self.scrub(&why);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if asked >= left {
                        // Waiting would only run into the deadline; give up
                        // now and keep the batch short.
                        last = format!("{last}, Retry-After {asked:?} beyond the deadline");
                        break;
                    }
                    asked
                }
                Answer::Retry { after: None, why } => {
                    last = self.scrub(&why);
                    policy.backoff(attempt)
                }
            };
            if attempt >= policy.max_attempts {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if wait >= left {
                break;
            }
            tracing::debug!(sink = self.name, attempt, ?wait, %last, "notification attempt failed, retrying");
            tokio::time::sleep(wait).await;
        }
        Err(AlertError::GaveUp { attempts: attempt, elapsed_ms: started.elapsed().as_millis() as u64, last })
    }
}

/// One HTTP attempt, read the service's way, with the status (0 for none).
async fn http_attempt(
    client: &reqwest::Client,
    request: &Request,
    service: &dyn Service,
    timeout: Duration,
) -> (Answer, u16) {
    let sent = client
        .post(&request.url)
        .headers(request.headers.clone())
        .body(request.body.clone())
        .timeout(timeout)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            // An error body explains a refusal; a success body is not
            // needed.
            let body = if status.is_success() {
                Vec::new()
            } else {
                response.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
            };
            (service.answer(status, &headers, &body), status.as_u16())
        }
        Err(e) => {
            let why = if e.is_timeout() { format!("timed out after {timeout:?}") } else { e.without_url().to_string() };
            (Answer::Retry { after: None, why }, 0)
        }
    }
}

/// `Retry-After`: seconds (what Slack sends) or an HTTP date; anything
/// else is left to the ordinary backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after::parse(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// The HTTP client every sink shares, built once per instance.
pub fn client(config: &Config) -> Result<reqwest::Client, AlertError> {
    hemostat_protocol::tls::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(config.http_timeout)
        .user_agent(concat!("HemoStat-Alert/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AlertError::Config {
            name: "ALERT_HTTP_TIMEOUT",
            reason: format!("building the HTTP client: {e}"),
        })
}

/// One failed remediation, as the sinks' unit tests render it.
#[cfg(test)]
pub(crate) mod fixture {
    use hemostat_protocol::Envelope;

    use crate::notice::Notice;

    pub(crate) const BODY: &str = r#"{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"remediation_complete","data":{"container":"web","host":"h1","action":"restart","result":{"status":"failed","action":"restart","container":"web","error":"no such container"}}}"#;

    pub(crate) fn notice() -> Notice {
        crate::notice::of(&Envelope::parse(BODY.as_bytes()).unwrap()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        // A date long past: retry now.
        h.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "1e20".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_deadline() {
        let p = Policy {
            request_timeout: Duration::from_secs(1),
            max_attempts: 5,
            retry_base: Duration::from_millis(100),
            deadline: Duration::from_secs(1),
        };
        for (attempt, nominal) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let (wait, nominal) = (p.backoff(attempt), Duration::from_millis(nominal));
            assert!(wait >= nominal / 2 && wait <= nominal, "attempt {attempt}: {wait:?} for nominal {nominal:?}");
        }
    }

    #[tokio::test]
    async fn errors_never_show_the_url() {
        let config = Config { http_timeout: Duration::from_millis(200), ..Config::default() };
        // Port 1 on loopback: connection refused, a transport error.
        let sink = Sink::slack(Secret::new("http://127.0.0.1:1/services/T0/B0/SECRETTOKEN"));
        let policy = Policy { max_attempts: 2, retry_base: Duration::from_millis(1), ..Policy::of(&config) };
        let (body, notice) = crate::probe::test_notice("h1", false).unwrap();
        let err = sink.deliver(&client(&config).unwrap(), &policy, &body, &notice).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, AlertError::GaveUp { attempts: 2, .. }), "{shown}");
        assert!(!shown.contains("SECRETTOKEN") && !shown.contains("/services/"), "{shown}");
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        let h = HeaderMap::new();
        for (status, retried) in [(500, true), (503, true), (429, true), (408, true), (404, false), (400, false)] {
            let answer = plain_answer(StatusCode::from_u16(status).unwrap(), &h, String::new());
            assert_eq!(matches!(answer, Answer::Retry { .. }), retried, "{status}");
        }
        assert_eq!(plain_answer(StatusCode::ACCEPTED, &h, String::new()), Answer::Accepted);
    }

    #[test]
    fn a_refusal_never_repeats_a_secret() {
        let sink = Sink::slack(Secret::new("https://hooks.example/T0/SECRETTOKEN"));
        let shown = sink.scrub("no such hook https://hooks.example/T0/SECRETTOKEN");
        assert_eq!(shown, "no such hook <redacted>");
    }

    #[test]
    fn header_text_is_ascii_or_an_encoded_word() {
        assert_eq!(header_text("web on h1\nrestarted"), "web on h1 restarted");
        assert_eq!(header_text("café"), "=?UTF-8?B?Y2Fmw6k=?=");
    }
}
