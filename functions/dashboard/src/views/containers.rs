//! `/api/containers`: the grid across hosts, each container marked with the
//! live silence and the open circuit breaker that hold it.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use hemostat_protocol::{
    ContainerRef, EventKind,
    metrics::Metrics,
    silence::{AlertFacts, Silence, Subject},
};

use super::{parse_entry, str_field, subject};
use crate::store::StreamEntry;

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
            let stats: Option<Metrics> = stats.get(i).cloned().flatten().and_then(|s| Metrics::parse(&s));
            let record: Option<Value> = remediation
                .get(i)
                .cloned()
                .flatten()
                .and_then(|s| serde_json::from_str(&s).ok())
                .filter(Value::is_object);
            let s = stats.as_ref();
            let text = |field: fn(&Metrics) -> &Option<String>| {
                s.and_then(|s| field(s).as_deref()).filter(|t| !t.is_empty()).map(str::to_owned)
            };
            let status = text(|s| &s.status);
            // A stopped container's figures are zeros, not measurements.
            let running = status.as_deref() == Some("running");
            let measured = s.filter(|_| running);
            ContainerRow {
                key: c.key(),
                host: c.host.clone(),
                name: c.name.clone(),
                status: status.unwrap_or_else(|| "unknown".into()),
                health: text(|s| &s.health),
                cpu_pct: measured.map(|s| s.cpu_pct),
                memory_pct: measured.map(|s| s.memory_pct),
                memory_usage: measured.and_then(|s| s.memory_usage),
                memory_limit: s.and_then(|s| s.memory_limit).filter(|l| *l > 0),
                pids: measured.and_then(|s| s.pids),
                image: text(|s| &s.image),
                updated: text(|s| &s.timestamp),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::views::{
        fixtures::{HOSTILE, NOW, entry, silence},
        live_silences,
    };
    use hemostat_protocol::silence::TargetKind;

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
}
