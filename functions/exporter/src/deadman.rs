//! The dead-man's switch: after each scheduled run that finds HemoStat
//! healthy, one request to a URL outside it (a healthchecks.io check, an
//! Uptime Kuma push monitor, Cronitor ...). Those services alert when the
//! pings stop, so HemoStat's own death (Redis gone, the schedule no longer
//! firing, every bridge replica down, a collector silent) is noticed by
//! something that does not depend on it.
//!
//! One attempt per run, bounded by a timeout: the next run pings again,
//! and the receiver's grace period absorbs a lost ping. The URL is a
//! credential (it names the check): never logged, never in an error.

use std::time::Duration;

use hemostat_protocol::{liveness::BridgeHeartbeat, secret::Secret};

use crate::{collectors::CollectorStatus, config::Config, error::ExporterError};

/// How long one ping may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct DeadMan {
    url: Secret,
    post: bool,
    client: reqwest::Client,
}

impl DeadMan {
    /// `None` when `EXPORTER_DEADMAN_URL` is unset.
    pub fn of(config: &Config) -> Result<Option<DeadMan>, ExporterError> {
        let Some(url) = config.deadman_url.clone() else { return Ok(None) };
        hemostat_protocol::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("HemoStat-Exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ExporterError::Config { name: "EXPORTER_DEADMAN_URL", reason: format!("HTTP client: {e}") })?;
        Ok(Some(DeadMan { url, post: config.deadman_post, client }))
    }

    /// Pings once; `Err` says why, without the URL.
    pub async fn ping(&self, body: String) -> Result<(), String> {
        let request =
            if self.post { self.client.post(self.url.expose()).body(body) } else { self.client.get(self.url.expose()) };
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => {
                Err(if e.is_timeout() { format!("timed out after {TIMEOUT:?}") } else { e.without_url().to_string() })
            }
        }
    }
}

/// Why HemoStat is not healthy, or `None` when it is: every collector's
/// heartbeat alive, and, once a bridge replica has registered, at least one
/// replica's heartbeat alive and none reporting a stuck route. (Redis
/// answering is implied: the run got this far.)
pub fn unhealthy(collectors: &[CollectorStatus], bridges: &[Option<BridgeHeartbeat>]) -> Option<String> {
    let missing: Vec<&str> = collectors.iter().filter(|c| !c.up).map(|c| c.host.as_str()).collect();
    if !missing.is_empty() {
        return Some(format!("collector(s) missing: {}", missing.join(", ")));
    }
    if !bridges.is_empty() {
        let alive: Vec<&BridgeHeartbeat> = bridges.iter().flatten().collect();
        if alive.is_empty() {
            return Some("no bridge replica's heartbeat is alive".into());
        }
        let stuck: Vec<&str> = alive.iter().filter(|b| !b.healthy).map(|b| b.consumer.as_str()).collect();
        if !stuck.is_empty() {
            return Some(format!("bridge replica(s) unhealthy: {}", stuck.join(", ")));
        }
    }
    None
}
