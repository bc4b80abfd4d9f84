//! The Redis key schema and TTLs (the seed's, plus HemoStat's own).
//!
//! Every key that crosses Redis is spelled here and nowhere else.
//!
//! On a Redis Cluster each key lives in one slot, and a script or a
//! transaction may only touch keys of one slot. So keys that one script
//! touches together share a hash tag, and the tag is chosen so that no slot
//! gathers the whole fleet: a container's safety state (remediation record,
//! action log, audit, pending gate decisions) and the analyzer's history
//! share the tag `{host/name}`; the fleet brake's keys share the tag
//! `{image}`. The safety gate therefore decides in two slots (the
//! container's, then the image's), see [`crate::gate`].
//! Keys written alone (stats, series, heartbeats) need no tag. Streams that
//! every event passes through are one key each (one slot each).

use std::time::Duration;

use crate::container::ContainerRef;

/// Seed: `hemostat:stats:<container>`, JSON, TTL 300 s.
pub const STATS_TTL: Duration = Duration::from_secs(300);
/// Seed: `hemostat:remediation:<container>`, JSON, TTL 3600 s.
pub const REMEDIATION_TTL: Duration = Duration::from_secs(3600);
/// Seed: `hemostat:events:<type>` and `:all`, at most 100 (the alert
/// function's `ALERT_MAX_EVENTS` and `ALERT_EVENT_TTL` keep them).
pub const EVENTS_MAX: usize = 100;
/// Seed: the set of monitored containers.
pub const CONTAINERS: &str = "hemostat:containers";
/// How long a command id is remembered, so a redelivery is not executed twice.
pub const COMMAND_DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Durable streams are capped (approximately) at this many entries.
pub const STREAM_MAXLEN: usize = 100_000;
/// Where the bridge moves records that failed every attempt.
pub const DEAD_LETTER_STREAM: &str = "hemostat:stream:dead_letter";

/// The container's stats record: a [`crate::metrics::Metrics`] as JSON.
pub fn stats(c: &ContainerRef) -> String {
    format!("hemostat:stats:{}", c.key())
}

/// Samples kept in a container's [`series`]: two minutes at the default
/// 1 s stats interval, enough for the dashboard's small charts.
pub const SERIES_MAX: usize = 120;
/// A series outlives its last sample as long as the stats key does.
pub const SERIES_TTL: Duration = STATS_TTL;

/// A container's recent samples for charts: a list, newest first, of compact
/// JSON `{"t": epoch ms, "cpu": cpu_pct, "mem": memory_pct}`
/// ([`SeriesSample`](crate::series::SeriesSample)), capped at [`SERIES_MAX`].
pub fn series(c: &ContainerRef) -> String {
    format!("hemostat:series:{}", c.key())
}

/// The hash tag of a container's keys: `{host/name}`, so its safety state
/// and history share a slot, and containers spread over the cluster.
fn container_tag(c: &ContainerRef) -> String {
    format!("{{{}}}", c.key())
}

/// What the container's collector says about it (a hash; see
/// [`crate::facts`]): the only account of it the gate believes.
pub fn facts(c: &ContainerRef) -> String {
    format!("hemostat:facts:{}", container_tag(c))
}

/// The seed's remediation record (`{"last_action", "count"}`).
pub fn remediation(c: &ContainerRef) -> String {
    format!("hemostat:remediation:{}", container_tag(c))
}

/// Timestamps (ms) of the actions taken on a container, for the hourly
/// circuit breaker.
pub fn action_log(c: &ContainerRef) -> String {
    format!("hemostat:actions:{}", container_tag(c))
}

/// A container's open circuit breaker: set (with the reason, expiring by
/// itself) when its fixes keep not holding; while it exists the gate refuses
/// every action, until it expires or an operator's reset deletes it.
pub fn breaker(c: &ContainerRef) -> String {
    format!("hemostat:breaker:{}", container_tag(c))
}

/// Where a container stands on its escalation ladder (see
/// [`crate::gate::ladder`]): JSON of the last step taken (a
/// [`Rung`](crate::gate::Rung)), expiring once the container has been quiet
/// (its cooldown, then the ladder's quiet period) since that step.
pub fn ladder(c: &ContainerRef) -> String {
    format!("hemostat:ladder:{}", container_tag(c))
}

/// Audit trail of every gate decision for a container (and its resets):
/// a list of [`AuditEntry`](crate::audit::AuditEntry), newest first, at
/// most [`AUDIT_MAX`], kept [`AUDIT_TTL`] after the newest.
pub fn audit(c: &ContainerRef) -> String {
    format!("hemostat:audit:{}", container_tag(c))
}

pub const AUDIT_MAX: usize = 1000;
pub const AUDIT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Gate decisions allowed for the container but still waiting for the fleet
/// brake's answer (hash: command id -> the remediation record before it).
pub fn gate_pending(c: &ContainerRef) -> String {
    format!("hemostat:gate_pending:{}", container_tag(c))
}

/// Hosts (scored by time) where containers of `image` were remediated
/// recently: the fleet brake's evidence.
pub fn fleet(image: &str) -> String {
    format!("hemostat:fleet:{{{image}}}")
}

/// Present while the fleet brake holds for `image` ("suspected bad release").
pub fn fleet_brake(image: &str) -> String {
    format!("hemostat:fleet_brake:{{{image}}}")
}

/// "Command `id` is in its host's stream": the responder's check that a
/// redelivered, already allowed request was dispatched.
pub fn dispatched(id: &str) -> String {
    format!("hemostat:dispatched:{id}")
}

/// How long [`dispatched`] is remembered.
pub const DISPATCHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// Commands kept (approximately) per host stream.
pub const COMMANDS_MAXLEN: usize = 10_000;

/// A host's command stream expires this long after its last command: a
/// host decommissioned (or named by mistake) does not keep its stream
/// forever. A command older than minutes is refused anyway, and a collector
/// whose stream expired makes its group again.
pub const COMMANDS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Marks a message (its exact JSON) as already in `stream`. It shares the
/// stream's slot (its hash tag is the stream's name), so the publisher's
/// `MULTI` of mark, `XADD` and `PUBLISH` runs on a cluster.
pub fn published_mark(stream: &str, digest: &str) -> String {
    format!("hemostat:published:{{{stream}}}:{digest}")
}

/// Present while an envelope with this digest is in the event log `list`;
/// in the list's slot, so the store script runs on a cluster.
pub fn alert_stored(list: &str, digest: &str) -> String {
    format!("hemostat:alert:stored:{{{list}}}:{digest}")
}

/// Held by whoever sends notice `fingerprint` to `sink`, for the dedupe TTL.
pub fn alert_dedupe(sink: &str, fingerprint: &str) -> String {
    format!("hemostat:alert:dedupe:{sink}:{fingerprint}")
}

/// Notifications that failed after every retry (a plain counter, INCR).
pub const ALERT_FAILURES: &str = "hemostat:alert:failures";

/// The hash tag of the exporter's counting script: the metrics hash and one
/// dedupe key per record. One slot takes every count: the write rate is the
/// event rate, like the streams', far below what one slot serves.
const EXPORTER_TAG: &str = "{hemostat-exporter}";

/// Every stored series (counters, histogram buckets, sums and counts):
/// field = the series in Prometheus syntax, value = its number.
pub fn exporter_metrics() -> String {
    format!("hemostat:exporter:{EXPORTER_TAG}:metrics")
}

/// Marks a record as counted by the exporter; expires after its dedupe TTL.
pub fn exporter_seen(source: &str, message_id: &str) -> String {
    format!("hemostat:exporter:{EXPORTER_TAG}:seen:{source}:{message_id}")
}

/// Present while `host`'s collector is reported missing: set with NX when
/// it goes silent (only the instance that sets it publishes the alert),
/// deleted when it beats again (only the instance whose DEL removed it
/// publishes the recovery).
pub fn collector_missing(host: &str) -> String {
    format!("hemostat:exporter:collector_missing:{host}")
}

/// The longest heartbeat interval a live collector announced at the
/// exporter's last check that saw one (seconds): after Redis restarts with
/// every heartbeat expired, how long to wait before judging any missing.
pub const EXPORTER_COLLECTOR_INTERVAL: &str = "hemostat:exporter:collector_interval";

/// A collector's heartbeat (JSON: [`crate::liveness::CollectorHeartbeat`]:
/// host, pid, version, interval_seconds, timestamp, and each task's
/// progress); expires after three missed intervals.
pub fn heartbeat(host: &str) -> String {
    format!("hemostat:heartbeat:{host}")
}

/// Every collector ever seen: a sorted set of host scored by the epoch ms of
/// its last heartbeat, so a collector whose heartbeat key expired is still
/// known and can be reported missing.
pub const COLLECTORS: &str = "hemostat:collectors";

pub fn events(kind: &str) -> String {
    format!("hemostat:events:{kind}")
}

/// The stream a host's collector reads its commands from.
pub fn commands(host: &str) -> String {
    format!("hemostat:commands:{host}")
}

/// "`host`'s collector published the alert with this digest": under the
/// host's prefix, which only that host's collector (and the operator) may
/// write, so the analyzer can tell an alert a host's own collector raised
/// from one that names the host but was published by anybody else.
pub fn attestation(host: &str, digest: &str) -> String {
    format!("hemostat:attested:{host}/{digest}")
}

/// "An analyzer asked for the remediation with this digest": writable only
/// by the analyzer, a custom analyzer's publisher and the operator, so the
/// responder can tell a request an analyzer made from one put on the
/// stream by anybody else who may write streams (the bridge, which
/// delivers and dead-letters every stream's records).
pub fn request_attestation(digest: &str) -> String {
    format!("hemostat:requested:{digest}")
}

/// "The dashboard published the approval answer with this digest":
/// writable only by the dashboard (and the operator), see
/// [`crate::attestation`].
pub fn answer_attestation(digest: &str) -> String {
    format!("hemostat:answered:{digest}")
}

/// How long an [`attestation`] (or [`request_attestation`]) is kept: longer than any alert waits in its
/// stream (the bridge gives up on a record after minutes), short enough
/// that one key per alert never piles up.
pub const ATTESTATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Marker that command `id` was already taken by `host`'s collector: under
/// the host's prefix, so one host's credentials cannot mark (and so
/// suppress) another host's commands.
pub fn command_seen(host: &str, id: &str) -> String {
    format!("hemostat:command_seen:{host}/{id}")
}

/// A [`command_seen`] marker's value while its collector acts:
/// `executing:<instance>`.
pub const COMMAND_EXECUTING: &str = "executing:";
/// A [`command_seen`] marker's value once the outcome is published:
/// `done:<status>` (`success`, `failed`, ...). The escalation ladder takes
/// its next step only after this.
pub const COMMAND_DONE: &str = "done:";

/// How often each pending record of a route was taken over from a consumer
/// that died (hash id -> count): those deliveries ended unknown, so they do
/// not count as failed attempts.
pub fn bridge_takeovers(stream: &str, group: &str) -> String {
    format!("hemostat:bridge:takeovers:{stream}:{group}")
}

/// A bridge replica's heartbeat ([`crate::liveness::BridgeHeartbeat`]),
/// expiring three intervals after its last refresh.
pub fn bridge_heartbeat(consumer: &str) -> String {
    format!("hemostat:bridge:heartbeat:{consumer}")
}

/// Every bridge replica seen: a sorted set of consumer names scored by the
/// epoch ms of its last heartbeat.
pub const BRIDGES: &str = "hemostat:bridge:replicas";

/// Present while one replica has alerted about `what` (a stream's lag), so
/// the replicas of one fleet alert once per episode, not once each.
pub fn bridge_alerted(what: &str) -> String {
    format!("hemostat:bridge:alerted:{what}")
}

/// The channel a bridge replica pings itself on, through Redis, to know
/// its relay's subscription still hears (a half-open connection is silent,
/// not closed).
pub fn bridge_keepalive(consumer: &str) -> String {
    format!("hemostat:bridge:keepalive:{consumer}")
}

/// Every silence (see [`crate::silence`]): a sorted set, member = the
/// silence's JSON, score = its end in epoch ms; readers prune ended ones.
pub const SILENCES: &str = "hemostat:silences";

/// Every recurring silence (see [`crate::maintenance`]): a hash, field =
/// its id, value = its JSON. Not in [`SILENCES`]: a schedule has no end to
/// score it by.
pub const MAINTENANCE: &str = "hemostat:maintenance";

/// What an operator's reset clears (`hemostat reset`): the container's
/// cooldown, circuit breaker and escalation ladder, i.e. its remediation
/// record, action log, pending gate decisions, open breaker and ladder
/// step. Its audit stays (the reset is appended to it). One hash tag, so
/// one `MULTI` clears them on a cluster.
pub fn safety_state(c: &ContainerRef) -> [String; 5] {
    [remediation(c), action_log(c), gate_pending(c), breaker(c), ladder(c)]
}

/// An approval (see [`crate::approval`]): a hash, in the container's slot
/// so each of its moves and the audit entry saying so are one script.
pub fn approval(c: &ContainerRef, id: &str) -> String {
    format!("hemostat:approval:{}:{id}", container_tag(c))
}

/// `<id> <deadline ms>` of the approval the container waits on, expiring
/// at that deadline: one question at a time per container.
pub fn approval_waiting(c: &ContainerRef) -> String {
    format!("hemostat:approval_waiting:{}", container_tag(c))
}

/// Which container approval `id` is about (`host/name`): finds its record
/// from the id alone.
pub fn approval_where(id: &str) -> String {
    format!("hemostat:approval_where:{id}")
}

/// The approvals still waiting for an answer: a sorted set of ids scored
/// by their deadline (epoch ms).
pub const APPROVALS: &str = "hemostat:approvals";

/// A restart asked again when the cooldown that refused it ends (see
/// [`crate::deferred`]): the request's JSON, in the container's slot.
pub fn deferred(c: &ContainerRef) -> String {
    format!("hemostat:deferred:{}", container_tag(c))
}

/// The containers with a deferred restart: a sorted set of `host/name`
/// scored by when it is due (epoch ms).
pub const DEFERRED: &str = "hemostat:deferred_due";

/// The analyzer's recent alerts for a container (newest first, capped).
pub fn history(c: &ContainerRef) -> String {
    format!("hemostat:history:{}", container_tag(c))
}

/// A cached LLM verdict for a failure signature.
pub fn ai_verdict(signature: &str) -> String {
    format!("hemostat:ai_verdict:{signature}")
}

/// The analyzer's LLM call counter for one hour (`YYYYMMDDHH`, UTC).
pub fn ai_calls(hour: &str) -> String {
    format!("hemostat:ai_calls:{hour}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn a_containers_keys_share_its_tag_and_images_theirs() {
        let c = ContainerRef::new("h1", "web");
        for key in [
            remediation(&c),
            action_log(&c),
            audit(&c),
            gate_pending(&c),
            history(&c),
            ladder(&c),
            approval(&c, "ab"),
            approval_waiting(&c),
        ] {
            assert_eq!(hash_tag(&key), "h1/web", "{key}");
        }
        let other = ContainerRef::new("h2", "web");
        assert_eq!(hash_tag(&audit(&other)), "h2/web");
        for key in [fleet("nginx:1.25"), fleet_brake("nginx:1.25")] {
            assert_eq!(hash_tag(&key), "nginx:1.25", "{key}");
        }
        assert_eq!(stats(&c), "hemostat:stats:h1/web");
    }

    #[test]
    fn markers_share_the_slot_of_what_they_mark() {
        assert_eq!(hash_tag(&published_mark("hemostat:stream:health_alert", "ab")), "hemostat:stream:health_alert");
        assert_eq!(hash_tag(&alert_stored("hemostat:events:all", "ab")), "hemostat:events:all");
        assert_eq!(hash_tag(&exporter_seen("s", "1-0")), hash_tag(&exporter_metrics()));
    }
}
