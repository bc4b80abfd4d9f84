//! HTTP delivery, bounded: a per-request timeout, a few attempts with
//! doubling, jittered backoff, Slack's 429 `Retry-After` honoured when it
//! fits, and a deadline over all of it, so a dead or slow receiver costs a
//! batch at most [`Policy::deadline`].
//!
//! Errors never include the URL: webhook URLs are credentials.

use std::time::{Duration, Instant};

use hemostat_protocol::{backoff::Backoff, retry_after, secret::Secret};
use reqwest::{StatusCode, header::HeaderMap};

use crate::{config::Config, error::AlertError, format, notice::Notice};

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

/// What a sink speaks.
#[derive(Debug, Clone)]
pub enum Format {
    Slack,
    /// The generic JSON webhook, signed when a secret is set.
    Webhook {
        secret: Option<Secret>,
    },
}

/// One place notifications go.
#[derive(Debug, Clone)]
pub struct Sink {
    /// `slack` or `webhook`: in logs, dedupe keys and counters.
    pub name: &'static str,
    url: Secret,
    format: Format,
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub elapsed: Duration,
}

impl Sink {
    pub fn slack(url: Secret) -> Self {
        Sink { name: "slack", url, format: Format::Slack }
    }

    pub fn webhook(url: Secret, secret: Option<Secret>) -> Self {
        Sink { name: "webhook", url, format: Format::Webhook { secret } }
    }

    /// The sinks `config` asks for (none when notifications are disabled).
    pub fn from_config(config: &Config) -> Vec<Sink> {
        if !config.enabled {
            return Vec::new();
        }
        let slack = config.slack_webhook_url.clone().map(Sink::slack);
        let webhook = config.webhook_url.clone().map(|u| Sink::webhook(u, config.webhook_secret.clone()));
        slack.into_iter().chain(webhook).collect()
    }

    /// The request body and headers for `notice` (`envelope_json`: the
    /// record's body, verbatim).
    pub fn payload(&self, envelope_json: &str, notice: &Notice) -> (Vec<u8>, HeaderMap) {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, "application/json".parse().expect("static header"));
        let body = match &self.format {
            Format::Slack => format::slack(notice).to_string().into_bytes(),
            Format::Webhook { secret } => {
                let body = format::webhook(envelope_json, notice).to_string().into_bytes();
                headers.insert(format::EVENT_HEADER, notice.kind.as_str().parse().expect("event names are ASCII"));
                if let Ok(fp) = notice.fingerprint.parse() {
                    headers.insert(format::FINGERPRINT_HEADER, fp);
                }
                if let Some(secret) = secret {
                    let sig = format::signature(secret.expose().as_bytes(), &body);
                    headers.insert(format::SIGNATURE_HEADER, sig.parse().expect("hex is a valid header value"));
                }
                body
            }
        };
        (body, headers)
    }

    /// Posts the payload until it is accepted, the attempts are spent, or
    /// the deadline is near. A 2xx is success; 408, 429 and 5xx and transport
    /// failures are retried; any other status is final (a revoked or
    /// mistyped webhook will not get better).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        policy: &Policy,
        body: Vec<u8>,
        headers: HeaderMap,
    ) -> Result<Delivered, AlertError> {
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
            let request = client
                .post(self.url.expose())
                .headers(headers.clone())
                .body(body.clone())
                .timeout(policy.request_timeout.min(remaining));
            let wait = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return Ok(Delivered { attempts: attempt, elapsed: started.elapsed() });
                }
                Ok(response) => {
                    let status = response.status();
                    if !retryable(status) {
                        return Err(AlertError::Refused { status: status.as_u16() });
                    }
                    last = format!("HTTP {}", status.as_u16());
                    match retry_after(response.headers()) {
                        Some(asked) if status == StatusCode::TOO_MANY_REQUESTS => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if asked >= left {
                                // Waiting would only run into the deadline;
                                // give up now and keep the batch short.
                                last = format!("HTTP 429, Retry-After {asked:?} beyond the deadline");
                                break;
                            }
                            asked
                        }
                        _ => policy.backoff(attempt),
                    }
                }
                Err(e) => {
                    last = if e.is_timeout() {
                        format!("timed out after {:?}", policy.request_timeout.min(remaining))
                    } else {
                        e.without_url().to_string()
                    };
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

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
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
        let err = sink.send(&client(&config).unwrap(), &policy, b"{}".to_vec(), HeaderMap::new()).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, AlertError::GaveUp { attempts: 2, .. }), "{shown}");
        assert!(!shown.contains("SECRETTOKEN") && !shown.contains("/services/"), "{shown}");
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR) && retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::NOT_FOUND) && !retryable(StatusCode::BAD_REQUEST));
    }
}
