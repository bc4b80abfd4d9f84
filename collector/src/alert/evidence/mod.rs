//! Gathering an alert's [`Evidence`] for one container from Docker: its
//! state and limits from inspect, its health check's results, and the tail
//! of its logs since its last start.
//!
//! Three promises:
//! - **Bounded in time.** One budget ([`Settings::timeout`], 2 s by
//!   default) covers inspect and the log read, so a slow dockerd delays an
//!   alert by that much at most; a log read cut short keeps what it got.
//! - **Bounded in size.** At most [`Settings::lines`] lines are kept (asked
//!   for; eight times as many once more when those begin inside a stack
//!   trace, whose frames then go first), at most [`MAX_STREAM_BYTES`] read
//!   per request and the newest [`MAX_READ_BYTES`] of it held, each line cut
//!   to [`MAX_LINE_BYTES`], and the whole evidence cut to
//!   [`Settings::max_bytes`] of JSON (frames first, then the oldest lines).
//! - **Secrets stay on the host.** Every log line, health output, Docker
//!   error and event action goes through [`Redactor`]; the container's
//!   environment (`Config.Env`), command and arguments are never read into
//!   evidence. Logs can be turned off globally ([`Settings::logs`]) or per
//!   container with the label `hemostat.evidence.logs=false`.

mod logs;

#[cfg(feature = "fuzzing")]
pub(crate) use logs::lines_of;

use std::time::Duration;

use bollard::{
    Docker,
    models::{ContainerInspectResponse, HealthStatusEnum},
};
use chrono::{DateTime, SecondsFormat, Utc};
use hemostat_protocol::evidence::{
    DockerEvent, ELLIPSIS, Evidence, HealthEvidence, HealthResult, LogEvidence, LogsSkipped, SampleSummary,
    StateEvidence,
};
use hemostat_protocol::policy::{COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL};
use tokio::time::Instant;

use super::redact::Redactor;
use crate::{docker, error::CollectorError};

/// The per-container opt-out: `hemostat.evidence.logs=false` keeps the
/// container's logs out of its alerts (state and health still go).
pub const LOGS_LABEL: &str = "hemostat.evidence.logs";

/// A log line is cut to this many bytes (after redaction, so a cut never
/// leaves half a secret that the rules no longer recognise).
pub const MAX_LINE_BYTES: usize = 1024;
/// A health check's output is cut to this many bytes (Docker keeps 4 KiB).
pub const MAX_HEALTH_OUTPUT_BYTES: usize = 1024;
/// At most this much of a log's newest complete lines is held per
/// gathering, whatever the container wrote (Docker splits lines at 16 KiB:
/// 50 such lines is under 1 MiB); older lines make room for newer ones.
pub const MAX_READ_BYTES: usize = 1 << 20;
/// At most this much is read from the logs API per gathering: the lines
/// asked for (a few times those kept, see `logs.rs`) at Docker's 16 KiB.
pub const MAX_STREAM_BYTES: usize = 8 * MAX_READ_BYTES;
/// The pieces of one line Docker split (at 16 KiB) are joined up to this
/// size; the rest of such a line is dropped, not shown as new lines (a
/// piece starting mid-secret would escape the rules).
const MAX_JOINED_BYTES: usize = 64 * 1024;
/// Docker records `StartedAt` after the process started, so a process that
/// prints at once (and crashes) has lines a few milliseconds before its
/// own start. Lines this much older than the start are kept: a run that
/// follows another within a second may show that run's last lines too,
/// better than losing a crash's only line.
const START_SLACK: Duration = Duration::from_secs(1);

/// How evidence is gathered. The defaults suit an alert: a screenful of
/// log, a few KiB in all, two seconds at most.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Log lines asked for (Docker's `tail`); 0 reads no logs.
    pub lines: u32,
    /// Cap on the evidence's JSON, in bytes.
    pub max_bytes: usize,
    /// Whether logs are read at all (global switch; the label
    /// [`LOGS_LABEL`] turns them off per container).
    pub logs: bool,
    /// The operator's extra redaction patterns (Rust regex syntax).
    pub patterns: Vec<String>,
    /// Budget for the whole gathering (inspect and logs).
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { lines: 50, max_bytes: 4096, logs: true, patterns: Vec::new(), timeout: Duration::from_secs(2) }
    }
}

/// What the caller knows and the gatherer does not: the container's recent
/// Docker events (from the event stream it follows) and its resource
/// samples (from the sampler); the collector's come from `recent`.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// Oldest first; each action is redacted like any other text.
    pub events: Vec<DockerEvent>,
    pub samples: Option<SampleSummary>,
}

/// Gathers evidence; cheap to clone (the redaction rules are compiled once).
#[derive(Clone)]
pub struct Gatherer {
    docker: Docker,
    settings: Settings,
    redactor: Redactor,
}

impl Gatherer {
    /// Fails only on an operator pattern that does not compile.
    pub fn new(docker: Docker, settings: Settings) -> Result<Gatherer, CollectorError> {
        let redactor = Redactor::new(&settings.patterns)?;
        Ok(Gatherer { docker, settings, redactor })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The redactor its texts go through (built-in rules and the
    /// operator's patterns), for the collector's other texts to share.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Inspects `container` (id or name) and gathers its evidence, within
    /// [`Settings::timeout`] in all. An error (the container is gone,
    /// Docker does not answer in time) means no evidence for this alert;
    /// the alert itself should go without it.
    pub async fn gather(&self, container: &str, provided: Provided) -> Result<Evidence, CollectorError> {
        let deadline = Instant::now() + self.settings.timeout;
        let inspect = self.inspect_until(container, deadline).await?;
        Ok(self.gather_until(&inspect, provided, deadline).await)
    }

    /// Inspects `container` within [`Settings::timeout`]: what an alert
    /// raised without an inspect (the sampler's) reads its policy from
    /// before [`Gatherer::gather_inspected`].
    pub async fn inspect(&self, container: &str) -> Result<ContainerInspectResponse, CollectorError> {
        self.inspect_until(container, Instant::now() + self.settings.timeout).await
    }

    async fn inspect_until(
        &self,
        container: &str,
        deadline: Instant,
    ) -> Result<ContainerInspectResponse, CollectorError> {
        tokio::time::timeout_at(deadline, docker::inspect(&self.docker, container))
            .await
            .map_err(|_| CollectorError::Docker(bollard::errors::Error::RequestTimeoutError))?
    }

    /// Gathers evidence from an inspect the caller already made (the
    /// watcher inspects after every event), reading only the logs; within
    /// [`Settings::timeout`]. Never fails: what cannot be read is left out
    /// and said so (`logs.skipped`, `truncated`).
    pub async fn gather_inspected(&self, inspect: &ContainerInspectResponse, provided: Provided) -> Evidence {
        self.gather_until(inspect, provided, Instant::now() + self.settings.timeout).await
    }

    async fn gather_until(
        &self,
        inspect: &ContainerInspectResponse,
        provided: Provided,
        deadline: Instant,
    ) -> Evidence {
        let mut redactions = 0;
        let state = self.state(inspect, &mut redactions);
        let health = self.health(inspect, &mut redactions);
        let mut truncated = false;
        let logs = if !self.settings.logs || self.settings.lines == 0 {
            LogEvidence { skipped: Some(LogsSkipped::Disabled), ..Default::default() }
        } else if opted_out(inspect) {
            LogEvidence { skipped: Some(LogsSkipped::OptedOut), ..Default::default() }
        } else {
            self.logs(inspect, deadline, &mut redactions, &mut truncated).await
        };
        let events = provided
            .events
            .into_iter()
            .map(|e| DockerEvent { action: self.redact(&e.action, &mut redactions), ..e })
            .collect();
        let mut evidence = Evidence { logs, health, state, events, samples: provided.samples, truncated, redactions };
        if !evidence.bound(self.settings.max_bytes) {
            tracing::debug!(cap = self.settings.max_bytes, size = evidence.json_len(), "evidence exceeds its cap");
        }
        evidence
    }

    fn redact(&self, text: &str, redactions: &mut u32) -> String {
        let (text, n) = self.redactor.redact(text);
        *redactions += n;
        text
    }

    fn state(&self, inspect: &ContainerInspectResponse, redactions: &mut u32) -> StateEvidence {
        let state = inspect.state.clone().unwrap_or_default();
        let host = inspect.host_config.as_ref();
        let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        let label = |key: &str| labels.and_then(|l| l.get(key)).filter(|v| !v.is_empty()).cloned();
        let running = state.running.unwrap_or(false);
        let nano_cpus = host.and_then(|h| h.nano_cpus).filter(|&n| n > 0);
        let quota = host.and_then(|h| Some((h.cpu_quota?, h.cpu_period?))).filter(|&(q, p)| q > 0 && p > 0);
        let cpu = match (nano_cpus, quota) {
            (Some(n), _) => Some(n as f64 / 1e9),
            (None, Some((q, p))) => Some(q as f64 / p as f64),
            (None, None) => None,
        };
        StateEvidence {
            status: state.status.map(|s| s.to_string()).filter(|s| !s.is_empty()),
            // A running container's exit code is Docker's placeholder 0.
            exit_code: state.exit_code.filter(|_| !running),
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state
                .error
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(|e| cut(self.redact(e, redactions), MAX_LINE_BYTES)),
            restart_count: inspect.restart_count.unwrap_or(0),
            started_at: time(state.started_at.as_deref()),
            finished_at: time(state.finished_at.as_deref()),
            memory_limit_bytes: host.and_then(|h| h.memory).filter(|&m| m > 0),
            cpu_limit_cores: cpu.map(|c| (c * 100.0).round() / 100.0),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()),
            compose_project: label(COMPOSE_PROJECT_LABEL),
            compose_service: label(COMPOSE_SERVICE_LABEL),
        }
    }

    fn health(&self, inspect: &ContainerInspectResponse, redactions: &mut u32) -> Option<HealthEvidence> {
        let health = inspect.state.as_ref()?.health.as_ref()?;
        let log = health.log.as_deref().unwrap_or_default();
        let status = health.status.filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE));
        if status.is_none() && log.is_empty() {
            return None;
        }
        let results = log
            .iter()
            .map(|r| HealthResult {
                exit_code: r.exit_code,
                output: cut(
                    self.redact(r.output.as_deref().unwrap_or("").trim_end(), redactions),
                    MAX_HEALTH_OUTPUT_BYTES,
                ),
                // `to_string`: Docker's RFC 3339 text, whichever date type
                // bollard's features make of it.
                start: r.start.as_ref().map(|t| t.to_string()).and_then(|t| time(Some(&t))),
                end: r.end.as_ref().map(|t| t.to_string()).and_then(|t| time(Some(&t))),
            })
            .collect();
        Some(HealthEvidence {
            status: status.map(|s| s.to_string()).unwrap_or_default(),
            failing_streak: health.failing_streak.unwrap_or(0),
            results,
        })
    }
}

/// The container's label says no logs.
fn opted_out(inspect: &ContainerInspectResponse) -> bool {
    let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
    labels
        .and_then(|l| l.get(LOGS_LABEL))
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no" | "off"))
}

/// Docker's RFC 3339 time; `None` for its zero time (`0001-01-01...`,
/// "never") and for anything unreadable.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// A Docker time as evidence shows it: RFC 3339 to the millisecond.
fn time(text: Option<&str>) -> Option<String> {
    parse_time(text?).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `text` cut to at most `max` bytes (plus [`ELLIPSIS`]) at a character
/// boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(ELLIPSIS);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_out_label_values() {
        let with = |v: &str| ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig {
                labels: Some([(LOGS_LABEL.to_string(), v.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(opted_out(&with("false")));
        assert!(opted_out(&with(" FALSE ")));
        assert!(opted_out(&with("0")));
        assert!(!opted_out(&with("true")));
        assert!(!opted_out(&ContainerInspectResponse::default()));
    }
}
