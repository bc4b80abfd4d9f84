//! The Redis key schema and TTLs (the seed's, plus HemoStat's own).
//!
//! Keys the safety gate touches together in one Lua script carry one hash
//! tag, [`GATE_TAG`], so they live in one Redis Cluster slot: the gate's
//! decisions span a container (cooldown, breaker) and its image across
//! hosts (fleet brake), and the gate's write rate is far too low for one
//! slot to be a hot spot.

use std::time::Duration;

use crate::container::ContainerRef;

/// Seed: `hemostat:stats:<container>`, JSON, TTL 300 s.
pub const STATS_TTL: Duration = Duration::from_secs(300);
/// Seed: `hemostat:remediation:<container>`, JSON, TTL 3600 s.
pub const REMEDIATION_TTL: Duration = Duration::from_secs(3600);
/// Seed: `hemostat:events:<type>` and `:all`, at most 100, TTL 3600 s.
pub const EVENTS_TTL: Duration = Duration::from_secs(3600);
pub const EVENTS_MAX: usize = 100;
/// Seed: the set of monitored containers.
pub const CONTAINERS: &str = "hemostat:containers";
/// How long a command id is remembered, so a redelivery is not executed twice.
pub const COMMAND_DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Durable streams are capped (approximately) at this many entries.
pub const STREAM_MAXLEN: usize = 100_000;
/// Where the bridge moves records that failed every attempt.
pub const DEAD_LETTER_STREAM: &str = "hemostat:stream:dead_letter";

/// The hash tag shared by every key of the safety gate.
pub const GATE_TAG: &str = "{hemostat-gate}";

pub fn stats(c: &ContainerRef) -> String {
    format!("hemostat:stats:{}", c.key())
}

/// Samples kept in a container's [`series`]: two minutes at the default
/// 1 s stats interval, enough for the dashboard's small charts.
pub const SERIES_MAX: usize = 120;
/// A series outlives its last sample as long as the stats key does.
pub const SERIES_TTL: Duration = STATS_TTL;

/// A container's recent samples for charts: a list, newest first, of compact
/// JSON `{"t": epoch ms, "cpu": cpu_pct, "mem": memory_pct}`, capped at
/// [`SERIES_MAX`].
pub fn series(c: &ContainerRef) -> String {
    format!("hemostat:series:{}", c.key())
}

/// The seed's remediation record (`{"last_action", "count"}`).
pub fn remediation(c: &ContainerRef) -> String {
    format!("hemostat:remediation:{GATE_TAG}:{}", c.key())
}

/// Timestamps (ms) of the actions taken on a container, for the hourly
/// circuit breaker.
pub fn action_log(c: &ContainerRef) -> String {
    format!("hemostat:actions:{GATE_TAG}:{}", c.key())
}

/// Audit trail of every gate decision for a container.
pub fn audit(c: &ContainerRef) -> String {
    format!("hemostat:audit:{GATE_TAG}:{}", c.key())
}

/// Hosts (scored by time) where containers of `image` were remediated
/// recently: the fleet brake's evidence.
pub fn fleet(image: &str) -> String {
    format!("hemostat:fleet:{GATE_TAG}:{image}")
}

/// Present while the fleet brake holds for `image` ("suspected bad release").
pub fn fleet_brake(image: &str) -> String {
    format!("hemostat:fleet_brake:{GATE_TAG}:{image}")
}

/// A collector's heartbeat (JSON: host, pid, version, interval_seconds,
/// timestamp); expires after three missed intervals.
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

/// Marker that a command id was already taken by a collector.
pub fn command_seen(id: &str) -> String {
    format!("hemostat:command_seen:{id}")
}

/// How often each pending record of a route was taken over from a consumer
/// that died (hash id -> count): those deliveries ended unknown, so they do
/// not count as failed attempts.
pub fn bridge_takeovers(stream: &str, group: &str) -> String {
    format!("hemostat:bridge:takeovers:{stream}:{group}")
}

/// The analyzer's recent alerts for a container (newest first, capped).
pub fn history(c: &ContainerRef) -> String {
    format!("hemostat:history:{{{}}}", c.key())
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
    fn gate_keys_share_one_hash_tag() {
        let c = ContainerRef::new("h1", "web");
        for key in [remediation(&c), action_log(&c), audit(&c), fleet("nginx:1.25"), fleet_brake("nginx:1.25")] {
            assert_eq!(hash_tag(&key), "hemostat-gate", "{key}");
        }
        assert_eq!(stats(&c), "hemostat:stats:h1/web");
    }
}
