//! What the JSON API answers, built from raw Redis values by pure functions
//! (time is an argument), so every rule here is tested without Redis.
//!
//! Everything read is someone else's writing (collectors, functions, custom
//! seed-protocol publishers, an LLM's reasons): it is parsed leniently (a
//! malformed value is skipped or shown as unknown, never an error for the
//! whole page) and never trusted as markup (see [`crate::handler`]).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use hemostat_protocol::{
    ContainerRef, EventKind,
    series::SeriesSample,
    silence::{AlertFacts, Silence, Subject, TargetKind},
};

use crate::{error::DashboardError, store::StreamEntry};

/// One cell of the container grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerRow {
    /// `host/name`, the container's identity across the fleet.
    pub key: String,
    pub host: String,
    pub name: String,
    /// Docker's status (`running`, `exited`, ...), `unknown` when the
    /// collector's stats expired or never came.
    pub status: String,
    /// `healthy`, `unhealthy`, `starting`, or None without a health check.
    pub health: Option<String>,
    pub cpu_pct: Option<f64>,
    pub memory_pct: Option<f64>,
    pub memory_usage: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids: Option<u64>,
    pub image: Option<String>,
    /// The collector's timestamp of these stats (seed format, UTC).
    pub updated: Option<String>,
    /// Whether the host's collector is alive (heartbeat present): when it is
    /// not, the numbers are the last ones it wrote.
    pub host_alive: bool,
    /// The seed's remediation record (`last_action`, `count`) of the last hour.
    pub remediation: Option<Value>,
    /// The live silence that holds for it (the one ending first), if any:
    /// while it holds the responder's gate refuses every action on it.
    pub silenced: Option<SilenceMark>,
    /// Its open circuit breaker, if any: the gate refuses every action until
    /// it expires or an operator's `hemostat reset`.
    pub breaker: Option<BreakerView>,
}

/// Which silence holds for a container, in short.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceMark {
    pub id: String,
    /// As the CLI shows it (`host/name`, `image:shop/api`, ...).
    pub target: String,
    pub reason: String,
    pub by: String,
    /// RFC 3339, UTC.
    pub until: String,
    pub until_ms: i64,
}

/// A container's open circuit breaker: the breaker key's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerView {
    /// Why it opened, as the gate wrote it.
    pub reason: String,
    /// How long until it closes by itself (None: no expiry set).
    pub seconds_left: Option<f64>,
}

/// One Docker host, from its collector's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub host: String,
    /// The heartbeat key exists (it expires after three missed intervals).
    pub alive: bool,
    /// Epoch ms of the last heartbeat, from `hemostat:collectors`.
    pub last_seen_ms: Option<i64>,
    pub seconds_since_seen: Option<f64>,
    /// Containers of this host in `hemostat:containers`.
    pub containers: usize,
    /// The collector's version, from its heartbeat.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainersView {
    pub generated_at_ms: i64,
    pub hosts: Vec<HostRow>,
    pub containers: Vec<ContainerRow>,
    /// Containers known in all; more than listed when `truncated`.
    pub total: usize,
    pub truncated: bool,
}

/// The containers to read stats for (sorted, capped) and every host seen.
pub fn containers_to_read(members: &[String], max: usize) -> (Vec<ContainerRef>, usize) {
    let mut all: Vec<ContainerRef> = members.iter().filter_map(|m| ContainerRef::parse(m)).collect();
    all.sort();
    all.dedup();
    let total = all.len();
    all.truncate(max);
    (all, total)
}

/// Every host: those with a collector record, and those only named by a container.
pub fn hosts_of(containers: &[ContainerRef], collectors: &[(String, f64)]) -> Vec<String> {
    let mut hosts: Vec<String> =
        collectors.iter().map(|(h, _)| h.clone()).chain(containers.iter().map(|c| c.host.clone())).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Builds the grid. `stats` and `remediation` are aligned with `containers`,
/// `heartbeats` with `hosts`.
#[allow(clippy::too_many_arguments)]
pub fn containers_view(
    containers: &[ContainerRef],
    total: usize,
    stats: &[Option<String>],
    remediation: &[Option<String>],
    hosts: &[String],
    heartbeats: &[Option<String>],
    collectors: &[(String, f64)],
    now_ms: i64,
) -> ContainersView {
    let last_seen: HashMap<&str, i64> = collectors.iter().map(|(h, ms)| (h.as_str(), *ms as i64)).collect();
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for c in containers {
        *per_host.entry(c.host.as_str()).or_default() += 1;
    }
    let host_rows: Vec<HostRow> = hosts
        .iter()
        .zip(heartbeats.iter().chain(std::iter::repeat(&None)))
        .map(|(host, beat)| {
            let beat: Option<Value> = beat.as_deref().and_then(|b| serde_json::from_str(b).ok());
            let seen = last_seen.get(host.as_str()).copied();
            HostRow {
                host: host.clone(),
                alive: beat.is_some(),
                last_seen_ms: seen,
                seconds_since_seen: seen.map(|ms| ((now_ms - ms).max(0) as f64) / 1000.0),
                containers: per_host.get(host.as_str()).copied().unwrap_or_default(),
                version: beat.as_ref().and_then(|b| str_field(b, "version")),
            }
        })
        .collect();
    let alive: HashMap<&str, bool> = host_rows.iter().map(|h| (h.host.as_str(), h.alive)).collect();

    let rows = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let stats: Option<Value> =
                stats.get(i).cloned().flatten().and_then(|s| serde_json::from_str(&s).ok()).filter(Value::is_object);
            let record: Option<Value> = remediation
                .get(i)
                .cloned()
                .flatten()
                .and_then(|s| serde_json::from_str(&s).ok())
                .filter(Value::is_object);
            let s = stats.as_ref();
            let running = s.and_then(|s| str_field(s, "status")).is_some_and(|st| st == "running");
            // A stopped container's percentages are zeros, not measurements.
            let measured =
                |field: &str| if running { s.and_then(|s| s.get(field)).and_then(Value::as_f64) } else { None };
            ContainerRow {
                key: c.key(),
                host: c.host.clone(),
                name: c.name.clone(),
                status: s.and_then(|s| str_field(s, "status")).unwrap_or_else(|| "unknown".into()),
                health: s.and_then(|s| str_field(s, "health")),
                cpu_pct: measured("cpu_pct"),
                memory_pct: measured("memory_pct"),
                memory_usage: if running {
                    s.and_then(|s| s.get("memory_usage")).and_then(Value::as_u64)
                } else {
                    None
                },
                memory_limit: s.and_then(|s| s.get("memory_limit")).and_then(Value::as_u64).filter(|l| *l > 0),
                pids: if running { s.and_then(|s| s.get("pids")).and_then(Value::as_u64) } else { None },
                image: s.and_then(|s| str_field(s, "image")),
                updated: s.and_then(|s| str_field(s, "timestamp")),
                host_alive: alive.get(c.host.as_str()).copied().unwrap_or(false),
                remediation: record,
                silenced: None,
                breaker: None,
            }
        })
        .collect();
    ContainersView {
        generated_at_ms: now_ms,
        hosts: host_rows,
        containers: rows,
        total,
        truncated: total > containers.len(),
    }
}

/// One live silence, for the silences panel and `/api/silences`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceRow {
    /// What `hemostat silence rm` takes.
    pub id: String,
    /// `container`, `host`, `image`, `project` or `label`.
    pub kind: TargetKind,
    /// The target's value (`web-1/api`, `shop/api`, `team=payments`).
    pub target: String,
    /// As the CLI shows it: `web-1/api`, `host:web-1`, `image:shop/api`...
    pub target_text: String,
    pub reason: String,
    pub by: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC: when it ends by itself.
    pub until: String,
    /// Its end in epoch ms (the sorted set's score).
    pub until_ms: i64,
    pub seconds_left: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilencesView {
    pub generated_at_ms: i64,
    /// Soonest end first.
    pub silences: Vec<SilenceRow>,
    /// Members of the set that are not silences (skipped).
    pub skipped: usize,
}

/// The silences still holding at `now_ms`, soonest end first, from the
/// sorted set's members and scores (its end in ms). Ended ones are left out
/// without removing them: the dashboard only reads (the CLI and the gate
/// prune them). A member that is not a silence is counted, not shown.
pub fn live_silences(raw: &[(String, f64)], now_ms: i64) -> (Vec<(Silence, i64)>, usize) {
    let mut skipped = 0;
    let mut live: Vec<(Silence, i64)> = raw
        .iter()
        .filter(|(_, score)| *score as i64 > now_ms)
        .filter_map(|(member, score)| match serde_json::from_str::<Silence>(member) {
            Ok(s) => Some((s, *score as i64)),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .collect();
    live.sort_by_key(|(_, end)| *end);
    (live, skipped)
}

/// `/api/silences`: every live silence.
pub fn silences_view(raw: &[(String, f64)], now_ms: i64) -> SilencesView {
    let (live, skipped) = live_silences(raw, now_ms);
    let silences = live
        .into_iter()
        .map(|(s, end)| SilenceRow {
            target_text: s.target_text(),
            seconds_left: ((end - now_ms).max(0) as f64) / 1000.0,
            until_ms: end,
            id: s.id,
            kind: s.kind,
            target: s.target,
            reason: s.reason,
            by: s.by,
            created: s.created,
            until: s.until,
        })
        .collect();
    SilencesView { generated_at_ms: now_ms, silences, skipped }
}

/// Whether matching a silence needs what containers' alerts say of them
/// (their compose project, the label silences the collector matched).
pub fn needs_alert_facts(silences: &[(Silence, i64)]) -> bool {
    AlertFacts::needed_by(silences.iter().map(|(s, _)| s))
}

/// What each container's newest health alert (`alerts`, newest first) says
/// of it, by `host/name` ([`AlertFacts`]).
pub fn facts_from_alerts(alerts: &[StreamEntry]) -> HashMap<String, AlertFacts> {
    let mut out: HashMap<String, AlertFacts> = HashMap::new();
    for (id, envelope) in alerts {
        let Some((_, kind, data)) = parse_entry(id, envelope.as_deref()) else { continue };
        if kind != EventKind::HealthAlert.as_str() {
            continue;
        }
        let (host, name) = subject(&data);
        if host.is_empty() || name.is_empty() {
            continue;
        }
        out.entry(format!("{host}/{name}")).or_insert_with(|| AlertFacts::of_alert(&data));
    }
    out
}

/// Marks each container silenced (the first live silence that matches it,
/// as the gate matches: host, name, image, compose project, labels and the
/// label silences the collector matched) and
/// with its open breaker. `breakers` is aligned with `rows`: the breaker
/// key's value and its `PTTL` in ms.
pub fn mark_safety(
    rows: &mut [ContainerRow],
    silences: &[(Silence, i64)],
    facts: &HashMap<String, AlertFacts>,
    breakers: &[Option<(String, i64)>],
) {
    for (i, row) in rows.iter_mut().enumerate() {
        let subject =
            Subject { host: row.host.clone(), name: row.name.clone(), image: row.image.clone(), ..Default::default() }
                .with_facts(facts.get(&row.key).cloned().unwrap_or_default());
        row.silenced = silences.iter().find(|(s, _)| s.matches(&subject)).map(|(s, end)| SilenceMark {
            id: s.id.clone(),
            target: s.target_text(),
            reason: s.reason.clone(),
            by: s.by.clone(),
            until: s.until.clone(),
            until_ms: *end,
        });
        row.breaker = breakers
            .get(i)
            .cloned()
            .flatten()
            .map(|(reason, pttl)| BreakerView { reason, seconds_left: (pttl >= 0).then(|| pttl as f64 / 1000.0) });
    }
}

fn str_field(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The ms part of a stream id (`<ms>-<seq>`).
pub fn stream_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

/// Who an event is about: `data.host` and `data.container` (either may be
/// empty: seed-protocol publishers send no host, system alerts no container).
fn subject(data: &Value) -> (String, String) {
    let host = str_field(data, "host").unwrap_or_default();
    let name = str_field(data, "container").unwrap_or_default();
    (host, name)
}

/// `host/name`, or whichever part is known.
fn subject_key(host: &str, name: &str) -> String {
    match (host.is_empty(), name.is_empty()) {
        (false, false) => format!("{host}/{name}"),
        (true, _) => name.to_owned(),
        (false, true) => host.to_owned(),
    }
}

/// Same container, where a missing host (a seed-protocol publisher's event)
/// matches any host.
fn same_container(a: &(String, String), b: &(String, String)) -> bool {
    a.1 == b.1 && (a.0.is_empty() || b.0.is_empty() || a.0 == b.0)
}

/// A stream entry's envelope as (ms, type, data); anything else is skipped.
fn parse_entry(id: &str, envelope: Option<&str>) -> Option<(i64, String, Value)> {
    let ms = stream_ms(id)?;
    let v: Value = serde_json::from_str(envelope?).ok()?;
    let kind = v.get("type")?.as_str()?.to_owned();
    let data = v.get("data")?.clone();
    data.is_object().then_some((ms, kind, data))
}

/// Evidence lines shown per diagnosis: the analyzer bounds them already,
/// this only keeps a hostile publisher from filling the page.
pub const EVIDENCE_LINES: usize = 10;
/// Characters kept of each evidence line (then `…`).
pub const EVIDENCE_CHARS: usize = 500;

/// Why a container failed, as the analyzer diagnosed it: an event's
/// `data.diagnosis`, read leniently (a missing cause reads `unknown`,
/// anything not a string is left out). Shown as text, like everything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisView {
    /// The category (`port_in_use`, `oom_killed`, ...).
    pub cause: String,
    /// One sentence for a human.
    pub summary: Option<String>,
    /// What a human should do, when the fix is outside the container.
    pub recommendation: Option<String>,
    /// Whether a restart can be expected to help, when said.
    pub restart_helps: Option<bool>,
    /// The lines it rests on (log lines, health output, Docker's error).
    pub evidence: Vec<String>,
}

fn cut(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// The `diagnosis` of an event's data, when it has one.
fn diagnosis_of(data: &Value) -> Option<DiagnosisView> {
    let d = data.get("diagnosis").filter(|d| d.is_object())?;
    Some(DiagnosisView {
        cause: str_field(d, "cause").unwrap_or_else(|| "unknown".into()),
        summary: str_field(d, "summary"),
        recommendation: str_field(d, "recommendation"),
        restart_helps: d.get("restart_helps").and_then(Value::as_bool),
        evidence: d
            .get("evidence")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|l| !l.trim().is_empty())
                    .take(EVIDENCE_LINES)
                    .map(|l| cut(l, EVIDENCE_CHARS))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The latest remediation attempt after an issue was last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at_ms: i64,
    pub action: Option<String>,
    pub status: Option<String>,
    /// The refusal reason, error or details.
    pub reason: Option<String>,
}

/// A container with health alerts not yet followed by a successful
/// remediation (or a false-alarm verdict).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub key: String,
    pub host: String,
    pub name: String,
    /// The latest alert's issues (`"Exited with code 1"`, ...).
    pub issues: Vec<String>,
    /// Anomaly kinds of the latest alert.
    pub anomalies: Vec<String>,
    /// The highest severity among the latest alert's anomalies.
    pub severity: Option<String>,
    /// Alerts within the window.
    pub alerts: usize,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// What was tried since the latest alert (refused, failed, pending...).
    pub last_attempt: Option<Attempt>,
    /// Why it failed: the diagnosis of the newest verdict or outcome since
    /// the latest alert (`remediation_needed`, `remediation_complete`).
    pub diagnosis: Option<DiagnosisView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuesView {
    pub generated_at_ms: i64,
    pub window_seconds: u64,
    pub issues: Vec<Issue>,
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Active issues from the newest entries of the `health_alert`,
/// `remediation_complete`, `false_alarm` and `remediation_needed` streams
/// (each newest first).
pub fn issues_view(
    alerts: &[(String, Option<String>)],
    completions: &[(String, Option<String>)],
    false_alarms: &[(String, Option<String>)],
    needed: &[(String, Option<String>)],
    now_ms: i64,
    window_seconds: u64,
) -> IssuesView {
    let since = now_ms - (window_seconds as i64).saturating_mul(1000);
    let parse = |entries: &[(String, Option<String>)], kind: EventKind| -> Vec<(i64, (String, String), Value)> {
        entries
            .iter()
            .filter_map(|(id, env)| parse_entry(id, env.as_deref()))
            .filter(|(ms, k, _)| *ms >= since && k == kind.as_str())
            .map(|(ms, _, data)| {
                let who = subject(&data);
                (ms, who, data)
            })
            .filter(|(_, who, _)| !who.1.is_empty())
            .collect()
    };
    let alerts = parse(alerts, EventKind::HealthAlert);
    let completions = parse(completions, EventKind::RemediationComplete);
    let false_alarms = parse(false_alarms, EventKind::FalseAlarm);
    let needed = parse(needed, EventKind::RemediationNeeded);

    // Newest alert first per container; the rest only count.
    let mut issues: Vec<Issue> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut sorted = alerts;
    sorted.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    for (ms, who, data) in &sorted {
        let key = subject_key(&who.0, &who.1);
        if let Some(&i) = index.get(&key) {
            issues[i].alerts += 1;
            issues[i].first_seen_ms = issues[i].first_seen_ms.min(*ms);
            continue;
        }
        let anomalies: Vec<&Value> =
            data.get("anomalies").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        let severity = anomalies
            .iter()
            .filter_map(|a| a.get("severity").and_then(Value::as_str))
            .max_by_key(|s| SEVERITIES.iter().position(|k| k == s))
            .map(str::to_owned);
        index.insert(key.clone(), issues.len());
        issues.push(Issue {
            key,
            host: who.0.clone(),
            name: who.1.clone(),
            issues: data
                .get("issues")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            anomalies: anomalies
                .iter()
                .filter_map(|a| a.get("type").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            severity,
            alerts: 1,
            first_seen_ms: *ms,
            last_seen_ms: *ms,
            last_attempt: None,
            diagnosis: None,
        });
    }

    issues.retain_mut(|issue| {
        let who = (issue.host.clone(), issue.name.clone());
        let after = |(ms, w, _): &&(i64, (String, String), Value)| *ms >= issue.last_seen_ms && same_container(w, &who);
        let dismissed = false_alarms.iter().any(|f| after(&f));
        let later: Vec<&(i64, (String, String), Value)> = completions.iter().filter(after).collect();
        let status = |d: &Value| d.pointer("/result/status").and_then(Value::as_str).map(str::to_owned);
        let fixed = later.iter().any(|(_, _, d)| status(d).as_deref() == Some("success"));
        if let Some((ms, _, d)) = later.iter().max_by_key(|(ms, _, _)| *ms) {
            issue.last_attempt = Some(Attempt {
                at_ms: *ms,
                action: str_field(d, "action"),
                status: status(d),
                reason: ["/result/reason", "/result/error", "/result/details", "/reason"]
                    .iter()
                    .find_map(|p| d.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)),
            });
        }
        // The newest diagnosis wins; an outcome's over the verdict it followed.
        issue.diagnosis = needed
            .iter()
            .chain(completions.iter())
            .filter(after)
            .filter_map(|(ms, _, d)| Some((*ms, diagnosis_of(d)?)))
            .max_by_key(|(ms, _)| *ms)
            .map(|(_, d)| d);
        !(fixed || dismissed)
    });
    IssuesView { generated_at_ms: now_ms, window_seconds, issues }
}

/// Remediation statuses the history can be filtered by.
pub const STATUSES: [&str; 5] = ["success", "failed", "rejected", "dry_run", "not_applicable"];

/// `/api/events` query parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Case-insensitive substring of the event's `host/name`.
    pub container: Option<String>,
    /// One event type: the list `hemostat:events:<type>` is read instead of `:all`.
    pub kind: Option<EventKind>,
    /// A remediation result status (`success`, `rejected`, ...).
    pub status: Option<String>,
    /// At most this many rows (1 to 100, the lists' length).
    pub limit: usize,
}

impl EventFilter {
    /// Parses a raw query string; an unknown type or status, or a bad limit, is a clear 400.
    pub fn parse(query: &str) -> Result<EventFilter, DashboardError> {
        let mut filter = EventFilter { limit: hemostat_protocol::keys::EVENTS_MAX, ..EventFilter::default() };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "container" => filter.container = Some(value.to_lowercase()),
                "type" => {
                    let kind = value.parse::<EventKind>().map_err(|_| {
                        DashboardError::BadRequest(format!(
                            "unknown type {value:?}: one of {}",
                            EventKind::ALL.map(|k| k.as_str()).join(", ")
                        ))
                    })?;
                    filter.kind = Some(kind);
                }
                "status" => {
                    if !STATUSES.contains(&value) {
                        return Err(DashboardError::BadRequest(format!(
                            "unknown status {value:?}: one of {}",
                            STATUSES.join(", ")
                        )));
                    }
                    filter.status = Some(value.to_owned());
                }
                "limit" => {
                    filter.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=hemostat_protocol::keys::EVENTS_MAX).contains(n))
                        .ok_or_else(|| {
                            DashboardError::BadRequest(format!(
                                "limit {value:?}: expected 1 to {}",
                                hemostat_protocol::keys::EVENTS_MAX
                            ))
                        })?;
                }
                // Unknown parameters (cache busters, ...) are ignored, as most APIs do.
                _ => {}
            }
        }
        Ok(filter)
    }

    /// The list to read.
    pub fn list_key(&self) -> String {
        hemostat_protocol::keys::events(self.kind.map_or("all", EventKind::as_str))
    }

    fn matches(&self, row: &EventRow) -> bool {
        self.kind.is_none_or(|k| row.kind == k.as_str())
            && self.status.as_ref().is_none_or(|s| row.status.as_deref() == Some(s.as_str()))
            && self.container.as_ref().is_none_or(|c| row.key.to_lowercase().contains(c.as_str()))
    }
}

/// One row of the history: an event as the alert function stored it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// The envelope's timestamp (seed format, UTC).
    pub timestamp: String,
    pub agent: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    pub container: String,
    /// `host/name` (or whichever is known), what the container filter matches.
    pub key: String,
    pub action: Option<String>,
    /// `data.result.status` of a remediation.
    pub status: Option<String>,
    /// One line for the table: the reason, error, message or issues.
    pub summary: String,
    /// The analyzer's diagnosis the event carries (`remediation_complete`,
    /// `false_alarm`).
    pub diagnosis: Option<DiagnosisView>,
    /// The whole `data`, for the details view.
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsView {
    /// The list read (`hemostat:events:all` or `:<type>`).
    pub source: String,
    pub events: Vec<EventRow>,
    /// Elements of the list that were not envelopes (skipped).
    pub skipped: usize,
}

/// Builds the history from a list's elements (newest first).
pub fn events_view(raw: &[String], filter: &EventFilter) -> EventsView {
    let mut skipped = 0;
    let mut events = Vec::new();
    for item in raw {
        let Some(row) = event_row(item) else {
            skipped += 1;
            continue;
        };
        if filter.matches(&row) && events.len() < filter.limit {
            events.push(row);
        }
    }
    EventsView { source: filter.list_key(), events, skipped }
}

fn event_row(item: &str) -> Option<EventRow> {
    let v: Value = serde_json::from_str(item).ok()?;
    let kind = str_field(&v, "type")?;
    let data = v.get("data").filter(|d| d.is_object())?.clone();
    let (host, container) = subject(&data);
    let summary = ["/result/reason", "/result/error", "/result/details", "/reason", "/message"]
        .iter()
        .find_map(|p| data.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
        .or_else(|| {
            let issues: Vec<&str> = data.get("issues")?.as_array()?.iter().filter_map(Value::as_str).collect();
            (!issues.is_empty()).then(|| issues.join("; "))
        })
        .unwrap_or_default();
    Some(EventRow {
        timestamp: str_field(&v, "timestamp").unwrap_or_default(),
        agent: str_field(&v, "agent").unwrap_or_default(),
        key: subject_key(&host, &container),
        host,
        container,
        action: str_field(&data, "action")
            .or_else(|| data.pointer("/result/action").and_then(Value::as_str).map(str::to_owned)),
        status: data.pointer("/result/status").and_then(Value::as_str).map(str::to_owned),
        kind,
        summary,
        diagnosis: diagnosis_of(&data),
        data,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    pub key: String,
    /// Oldest first, as a chart draws them.
    pub samples: Vec<SeriesSample>,
}

/// The chart of a container from its series list (newest first).
pub fn series_view(container: &ContainerRef, raw: &[String]) -> SeriesView {
    // A malformed sample is skipped, not an error.
    let mut samples: Vec<SeriesSample> = raw.iter().filter_map(|s| serde_json::from_str(s).ok()).collect();
    samples.sort_by_key(|s| s.t);
    SeriesView { key: container.key(), samples }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(kind: &str, data: Value) -> String {
        json!({"timestamp": "2025-11-03T10:30:45.123456", "agent": "HemoStat-Test", "type": kind, "data": data})
            .to_string()
    }

    fn entry(ms: i64, kind: &str, data: Value) -> (String, Option<String>) {
        (format!("{ms}-0"), Some(env(kind, data)))
    }

    fn alert(ms: i64, host: &str, name: &str, issue: &str) -> (String, Option<String>) {
        entry(
            ms,
            "health_alert",
            json!({"container": name, "host": host, "issues": [issue], "metrics": {"name": name},
            "anomalies": [{"type": "non_zero_exit", "severity": "high"}, {"type": "oom_killed", "severity": "critical"}]}),
        )
    }

    fn done(ms: i64, host: &str, name: &str, status: &str) -> (String, Option<String>) {
        entry(
            ms,
            "remediation_complete",
            json!({"container": name, "host": host, "action": "restart",
            "result": {"status": status, "action": "restart", "container": name, "reason": format!("{status} reason")}}),
        )
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn an_issue_stays_until_a_later_success_or_false_alarm() {
        let alerts = vec![
            alert(NOW - 9_000, "h1", "web", "Exited with code 1"),
            alert(NOW - 5_000, "h1", "web", "Exited with code 137"),
            alert(NOW - 4_000, "h2", "web", "Exited with code 1"),
            alert(NOW - 3_000, "h1", "db", "Unhealthy"),
            alert(NOW - 2_000, "h1", "cache", "High CPU: 99%"),
            // Outside the one-hour window: history, not an issue.
            alert(NOW - 3_700_000, "h1", "old", "Exited with code 1"),
        ];
        let completions = vec![
            // Before the latest web alert: does not resolve it.
            done(NOW - 8_000, "h1", "web", "success"),
            done(NOW - 4_500, "h1", "web", "rejected"),
            // Same name on another host: resolves only that host's issue.
            done(NOW - 3_500, "h2", "web", "success"),
            // A seed-protocol publisher without a host matches by name.
            done(NOW - 1_000, "", "db", "success"),
        ];
        let false_alarms =
            vec![entry(NOW - 1_500, "false_alarm", json!({"container": "cache", "host": "h1", "reason": "spike"}))];
        let view = issues_view(&alerts, &completions, &false_alarms, &[], NOW, 3600);
        let keys: Vec<&str> = view.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["h1/web"], "{view:#?}");
        let web = &view.issues[0];
        assert_eq!(web.alerts, 2);
        assert_eq!(web.issues, ["Exited with code 137"], "the latest alert's issues");
        assert_eq!(web.severity.as_deref(), Some("critical"));
        assert_eq!(web.anomalies, ["non_zero_exit", "oom_killed"]);
        assert_eq!((web.first_seen_ms, web.last_seen_ms), (NOW - 9_000, NOW - 5_000));
        let attempt = web.last_attempt.as_ref().expect("the refusal is shown");
        assert_eq!(attempt.status.as_deref(), Some("rejected"));
        assert_eq!(attempt.reason.as_deref(), Some("rejected reason"));
    }

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn diagnosed(cause: &str, line: &str) -> Value {
        json!({"cause": cause, "summary": format!("{cause} summary"), "evidence": [line, "", 7],
            "restart_helps": false, "recommendation": "Free the port."})
    }

    #[test]
    fn an_issue_shows_the_newest_diagnosis_since_its_latest_alert() {
        let alerts = vec![alert(NOW - 5_000, "h1", "web", "Exited with code 1"), alert(NOW - 5_000, "h1", "db", "x")];
        let needed = vec![
            // Before the latest alert: an older story.
            entry(
                NOW - 6_000,
                "remediation_needed",
                json!({"container": "web", "host": "h1", "action": "restart",
                "reason": "r", "confidence": 0.9, "diagnosis": diagnosed("oom_killed", "old")}),
            ),
            entry(
                NOW - 4_000,
                "remediation_needed",
                json!({"container": "web", "host": "h1", "action": "restart",
                "reason": "r", "confidence": 0.9, "diagnosis": diagnosed("port_in_use", HOSTILE)}),
            ),
        ];
        let view = issues_view(&alerts, &[], &[], &needed, NOW, 3600);
        let web = view.issues.iter().find(|i| i.key == "h1/web").unwrap();
        let d = web.diagnosis.as_ref().expect("the verdict's diagnosis");
        assert_eq!(d.cause, "port_in_use");
        assert_eq!(d.summary.as_deref(), Some("port_in_use summary"));
        assert_eq!(d.recommendation.as_deref(), Some("Free the port."));
        assert_eq!(d.restart_helps, Some(false));
        assert_eq!(d.evidence, [HOSTILE], "verbatim, blanks and non-strings left out");
        assert!(view.issues.iter().find(|i| i.key == "h1/db").unwrap().diagnosis.is_none());

        // A later refused outcome with its own diagnosis outranks the verdict.
        let completions = vec![entry(
            NOW - 3_000,
            "remediation_complete",
            json!({"container": "web", "host": "h1", "action": "restart",
                "result": {"status": "rejected", "action": "restart", "container": "web"},
                "diagnosis": {"evidence": ["x".repeat(EVIDENCE_CHARS + 50)]}}),
        )];
        let view = issues_view(&alerts, &completions, &[], &needed, NOW, 3600);
        let d = view.issues.iter().find(|i| i.key == "h1/web").unwrap().diagnosis.clone().unwrap();
        assert_eq!((d.cause.as_str(), d.summary, d.recommendation), ("unknown", None, None));
        assert_eq!(d.evidence[0].chars().count(), EVIDENCE_CHARS + 1, "cut, with an ellipsis");
    }

    #[test]
    fn history_rows_carry_the_diagnosis_and_hostile_lines_stay_text() {
        let raw = vec![
            env(
                "remediation_complete",
                json!({"container": "web", "host": "h1", "action": "restart",
                    "result": {"status": "failed", "action": "restart", "container": "web", "error": "exited again"},
                    "diagnosis": diagnosed("port_in_use", HOSTILE)}),
            ),
            env(
                "false_alarm",
                json!({"container": "api", "host": "h1", "reason": "spike",
                "diagnosis": {"cause": "cpu_burn", "evidence": (0..20).map(|i| format!("l{i}")).collect::<Vec<_>>()}}),
            ),
            env("false_alarm", json!({"container": "db", "host": "h1", "reason": "spike", "diagnosis": "junk"})),
        ];
        let view = events_view(&raw, &EventFilter::parse("").unwrap());
        let d = view.events[0].diagnosis.as_ref().unwrap();
        assert_eq!(view.events[0].summary, "exited again", "the summary is unchanged");
        assert_eq!((d.cause.as_str(), d.recommendation.as_deref()), ("port_in_use", Some("Free the port.")));
        assert_eq!(d.evidence, [HOSTILE]);
        assert_eq!(view.events[1].diagnosis.as_ref().unwrap().evidence.len(), EVIDENCE_LINES);
        assert!(view.events[2].diagnosis.is_none(), "not an object: no diagnosis, the row still shown");
        // The API answers JSON that no browser can read as markup, and the
        // page only ever sets the line as text.
        let json = crate::handler::escape_json_for_html(&serde_json::to_string(&view).unwrap());
        assert!(!json.contains('<') && json.contains("\\u003cscript\\u003e"), "{json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["events"][0]["diagnosis"]["evidence"][0], HOSTILE);
        let script = include_str!("../assets/app.js");
        assert!(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML"), "text only in the page");
    }

    #[test]
    fn malformed_stream_entries_are_skipped() {
        let alerts = vec![
            ("bad-id".to_owned(), Some(env("health_alert", json!({"container": "x"})))),
            (format!("{NOW}-0"), None),
            (format!("{NOW}-1"), Some("not json".into())),
            (format!("{NOW}-2"), Some(env("health_alert", json!("not an object")))),
            alert(NOW, "h", "ok", "Exited with code 1"),
        ];
        let view = issues_view(&alerts, &[], &[], &[], NOW, 60);
        assert_eq!(view.issues.len(), 1);
        assert_eq!(view.issues[0].key, "h/ok");
    }

    #[test]
    fn events_are_filtered_by_container_type_and_status() {
        let raw = vec![
            env(
                "remediation_complete",
                json!({"container": "web", "host": "h1", "action": "restart", "result": {"status": "success", "action": "restart", "container": "web"}}),
            ),
            env(
                "remediation_complete",
                json!({"container": "api", "host": "h1", "action": "restart", "result": {"status": "rejected", "action": "restart", "container": "api", "reason": "cooldown: 3540 s left"}}),
            ),
            env("false_alarm", json!({"container": "web", "host": "h2", "reason": "Transient spike"})),
            env(
                "system_alert",
                json!({"kind": "collector_missing", "severity": "high", "host": "h3", "message": "collector on h3 silent for 35 s"}),
            ),
            "garbage".into(),
        ];
        let all = events_view(&raw, &EventFilter::parse("").unwrap());
        assert_eq!(all.events.len(), 4);
        assert_eq!(all.skipped, 1);
        assert_eq!(all.source, "hemostat:events:all");
        assert_eq!(all.events[1].summary, "cooldown: 3540 s left");
        assert_eq!(all.events[3].key, "h3");
        assert_eq!(all.events[3].summary, "collector on h3 silent for 35 s");

        let web = events_view(&raw, &EventFilter::parse("container=WEB").unwrap());
        assert_eq!(web.events.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["h1/web", "h2/web"]);
        let h1_web = events_view(&raw, &EventFilter::parse("container=h1%2Fweb").unwrap());
        assert_eq!(h1_web.events.len(), 1);

        let rejected = events_view(&raw, &EventFilter::parse("status=rejected").unwrap());
        assert_eq!(rejected.events.len(), 1);
        assert_eq!(rejected.events[0].container, "api");

        let filter = EventFilter::parse("type=false_alarm&limit=5").unwrap();
        assert_eq!(filter.list_key(), "hemostat:events:false_alarm");
        assert_eq!(filter.limit, 5);
        let alarms = events_view(&raw, &filter);
        assert_eq!(alarms.events.len(), 1);
        assert_eq!(alarms.events[0].kind, "false_alarm");

        let one = events_view(&raw, &EventFilter::parse("limit=1").unwrap());
        assert_eq!(one.events.len(), 1);
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        for (query, says) in [
            ("type=bogus", "unknown type"),
            ("status=fine", "unknown status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
        ] {
            let err = EventFilter::parse(query).unwrap_err().to_string();
            assert!(err.contains(says), "{query}: {err}");
        }
        // Empty values mean "no filter", unknown parameters are ignored.
        assert_eq!(
            EventFilter::parse("container=&status=&_=123").unwrap(),
            EventFilter { limit: 100, ..EventFilter::default() }
        );
    }

    #[test]
    fn grid_reads_the_collector_stats_and_host_liveness() {
        let members: Vec<String> = ["h2/b", "h1/z", "h1/a", "not-a-key", "h1/a"].map(String::from).to_vec();
        let (containers, total) = containers_to_read(&members, 10);
        assert_eq!(containers.iter().map(ContainerRef::key).collect::<Vec<_>>(), ["h1/a", "h1/z", "h2/b"]);
        assert_eq!(total, 3);
        let collectors = vec![("h1".to_owned(), (NOW - 2_000) as f64), ("h3".to_owned(), (NOW - 90_000) as f64)];
        let hosts = hosts_of(&containers, &collectors);
        assert_eq!(hosts, ["h1", "h2", "h3"]);
        let stats = vec![
            Some(json!({"name": "a", "status": "running", "cpu_pct": 12.5, "memory_pct": 40.25, "memory_usage": 1024, "memory_limit": 4096, "pids": 3, "health": "healthy", "image": "nginx:1", "timestamp": "2025-11-03T10:30:45.123456"}).to_string()),
            Some(json!({"name": "z", "status": "exited", "cpu_pct": 0.0, "memory_pct": 0.0, "health": null}).to_string()),
            None,
        ];
        let remediation = vec![
            Some(json!({"last_action": "2025-11-03T10:30:53", "count": 2}).to_string()),
            None,
            Some("{broken".into()),
        ];
        let heartbeats = vec![Some(json!({"host": "h1", "version": "0.1.0"}).to_string()), None, None];
        let view = containers_view(&containers, total, &stats, &remediation, &hosts, &heartbeats, &collectors, NOW);
        let a = &view.containers[0];
        assert_eq!(
            (a.status.as_str(), a.health.as_deref(), a.cpu_pct, a.memory_pct),
            ("running", Some("healthy"), Some(12.5), Some(40.25))
        );
        assert_eq!((a.memory_usage, a.memory_limit, a.pids), (Some(1024), Some(4096), Some(3)));
        assert!(a.host_alive);
        assert_eq!(a.remediation.as_ref().unwrap()["count"], 2);
        let z = &view.containers[1];
        assert_eq!(
            (z.status.as_str(), z.health.as_deref(), z.cpu_pct),
            ("exited", None, None),
            "no numbers for a stopped container"
        );
        let b = &view.containers[2];
        assert_eq!((b.status.as_str(), b.host_alive, b.remediation.is_none()), ("unknown", false, true));
        let h: Vec<(&str, bool, usize)> = view.hosts.iter().map(|h| (h.host.as_str(), h.alive, h.containers)).collect();
        assert_eq!(h, [("h1", true, 2), ("h2", false, 1), ("h3", false, 0)]);
        assert_eq!(view.hosts[0].seconds_since_seen, Some(2.0));
        assert_eq!(view.hosts[0].version.as_deref(), Some("0.1.0"));
        assert_eq!(view.hosts[1].last_seen_ms, None);

        let (cut, total) = containers_to_read(&members, 2);
        assert_eq!((cut.len(), total), (2, 3));
    }

    fn silence(id: &str, kind: TargetKind, target: &str, reason: &str, end_ms: i64) -> (String, f64) {
        let until = chrono::DateTime::from_timestamp_millis(end_ms).unwrap().to_rfc3339();
        let s = Silence {
            id: id.into(),
            kind,
            target: target.into(),
            reason: reason.into(),
            created: "2027-01-15T08:00:00+00:00".into(),
            until,
            by: "alice".into(),
        };
        (serde_json::to_string(&s).unwrap(), end_ms as f64)
    }

    #[test]
    fn silences_are_the_live_ones_soonest_end_first_with_hostile_reasons_as_data() {
        let raw = vec![
            silence("old", TargetKind::Host, "h1", "ended", NOW - 1),
            silence("now", TargetKind::Host, "h1", "ends this very ms", NOW),
            ("not a silence".to_owned(), (NOW + 5_000) as f64),
            silence("b", TargetKind::Image, "shop/api", HOSTILE, NOW + 90_000),
            silence("a", TargetKind::Container, "h1/web", "db migration", NOW + 30_500),
            silence("l", TargetKind::Label, "team=pay", "freeze", NOW + 3_600_000),
        ];
        let view = silences_view(&raw, NOW);
        let ids: Vec<&str> = view.silences.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "l"], "ended ones left out, soonest end first");
        assert_eq!(view.skipped, 1);
        let a = &view.silences[0];
        assert_eq!(
            (a.target_text.as_str(), a.reason.as_str(), a.by.as_str(), a.seconds_left, a.until_ms),
            ("h1/web", "db migration", "alice", 30.5, NOW + 30_500)
        );
        assert!(a.until.starts_with("2027-"), "{}", a.until);
        assert_eq!(view.silences[1].target_text, "image:shop/api");
        assert_eq!(view.silences[1].reason, HOSTILE, "kept verbatim: the page sets it as text");

        let json = crate::handler::escape_json_for_html(&serde_json::to_string(&view).unwrap());
        assert!(!json.contains('<') && !json.contains('>'), "{json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["silences"][1]["reason"], HOSTILE);
        assert_eq!(back["silences"][0]["kind"], "container");
        assert_eq!(silences_view(&raw, NOW + 4_000_000).silences, []);
    }

    #[test]
    fn containers_are_marked_silenced_and_with_their_open_breaker() {
        let containers: Vec<ContainerRef> =
            ["h1/api", "h1/db", "h1/web", "h2/web"].iter().filter_map(|k| ContainerRef::parse(k)).collect();
        let stats: Vec<Option<String>> = ["shop/api:2", "postgres:16", "nginx:1", "nginx:1"]
            .iter()
            .map(|image| Some(json!({"status": "running", "image": image}).to_string()))
            .collect();
        let hosts = vec!["h1".to_owned(), "h2".to_owned()];
        let mut view =
            containers_view(&containers, 4, &stats, &[None, None, None, None], &hosts, &[None, None], &[], NOW);
        let raw = vec![
            silence("img", TargetKind::Image, "shop/api", HOSTILE, NOW + 60_000),
            silence("web", TargetKind::Container, "h2/web", "rollout", NOW + 120_000),
            silence("proj", TargetKind::Project, "shop", "shop maintenance", NOW + 180_000),
            silence("team", TargetKind::Label, "team=payments", "payments freeze", NOW + 240_000),
            silence("gone", TargetKind::Host, "h1", "ended", NOW - 1),
        ];
        let (live, _) = live_silences(&raw, NOW);
        assert!(needs_alert_facts(&live));
        assert!(!needs_alert_facts(&live[..2]));
        // db's compose project, from its newest health alert's evidence.
        let evidence = |project: &str| {
            json!({"container": "db", "host": "h1", "issues": ["x"], "metrics": {},
                "evidence": {"state": {"compose_project": project, "compose_service": "db"}}})
        };
        // h1/web carries the label the "team" silence selects: its collector said so.
        let web = json!({"container": "web", "host": "h1", "issues": ["x"], "metrics": {}, "silenced_by": ["team"]});
        let alerts = vec![
            entry(NOW, "health_alert", evidence("shop")),
            entry(NOW - 1, "health_alert", evidence("blog")),
            entry(NOW - 2, "health_alert", web),
        ];
        let facts = facts_from_alerts(&alerts);
        assert_eq!(
            (facts["h1/db"].compose_project.as_deref(), facts["h1/db"].compose_service.as_deref()),
            (Some("shop"), Some("db")),
            "the newest alert wins"
        );
        let reason = "circuit breaker open: 3 actions in the last hour did not hold (max 3)";
        let breakers = vec![None, Some((reason.to_owned(), 90_500)), None, Some((HOSTILE.to_owned(), -1))];
        mark_safety(&mut view.containers, &live, &facts, &breakers);

        let marks: Vec<(&str, Option<&str>, Option<&str>)> = view
            .containers
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.silenced.as_ref().map(|s| s.id.as_str()),
                    c.breaker.as_ref().map(|b| b.reason.as_str()),
                )
            })
            .collect();
        assert_eq!(
            marks,
            [
                ("h1/api", Some("img"), None),
                ("h1/db", Some("proj"), Some(reason)),
                ("h1/web", Some("team"), None),
                ("h2/web", Some("web"), Some(HOSTILE)),
            ]
        );
        let api = view.containers[0].silenced.as_ref().unwrap();
        assert_eq!((api.reason.as_str(), api.target.as_str(), api.until_ms), (HOSTILE, "image:shop/api", NOW + 60_000));
        assert_eq!(view.containers[1].breaker.as_ref().unwrap().seconds_left, Some(90.5));
        assert_eq!(view.containers[3].breaker.as_ref().unwrap().seconds_left, None, "no expiry set");
        let json = crate::handler::escape_json_for_html(&serde_json::to_string(&view).unwrap());
        assert!(!json.contains('<'), "{json}");
    }

    #[test]
    fn series_is_oldest_first_and_skips_junk() {
        let c = ContainerRef::new("h", "web");
        let raw: Vec<String> = vec![
            r#"{"t":3,"cpu":3.0,"mem":30.0}"#.into(),
            "junk".into(),
            r#"{"t":1,"cpu":1.0,"mem":10.0}"#.into(),
            r#"{"t":2,"cpu":2}"#.into(),
        ];
        let view = series_view(&c, &raw);
        assert_eq!(
            view.samples,
            [SeriesSample { t: 1, cpu: 1.0, mem: 10.0 }, SeriesSample { t: 3, cpu: 3.0, mem: 30.0 }]
        );
    }
}
