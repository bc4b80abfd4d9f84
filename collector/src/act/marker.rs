//! The per-command marker (`hemostat:command_seen:<host>/<id>`) that makes
//! execution at-most-once and says what became of a command.
//!
//! `executing:<instance>` is set (SET NX) just before acting and replaced by
//! `done:<status>` after the outcome is published. A redelivered command
//! thus finds either `done` (already handled: skip) or `executing` by a
//! collector process that no longer runs it: that process died mid-action,
//! so the outcome is unknown. Re-executing could restart a container twice
//! and silently dropping would leave the sender waiting forever, so that
//! case is reported as failed instead.

use hemostat_protocol::connection::Connection;
use hemostat_protocol::keys;

use crate::error::CollectorError;

const EXECUTING: &str = keys::COMMAND_EXECUTING;
const DONE: &str = keys::COMMAND_DONE;

#[derive(Debug, Clone, PartialEq)]
pub enum Marker {
    /// Taken by this call: go ahead.
    Taken,
    /// Taken earlier by the collector process `instance`.
    Executing { instance: String },
    /// Finished with `status` (`unknown` for markers of older collectors,
    /// which stored only their name).
    Done { status: String },
}

impl Marker {
    pub fn parse(value: &str) -> Marker {
        if let Some(instance) = value.strip_prefix(EXECUTING) {
            Marker::Executing { instance: instance.to_owned() }
        } else if let Some(status) = value.strip_prefix(DONE) {
            Marker::Done { status: status.to_owned() }
        } else {
            Marker::Done { status: "unknown".into() }
        }
    }
}

/// Takes the marker for `host`'s command `id`, or says who has it.
pub async fn take(conn: &mut Connection, host: &str, id: &str, instance: &str) -> Result<Marker, CollectorError> {
    let key = keys::command_seen(host, id);
    // Twice: the marker can expire between a failed SET and the GET.
    for _ in 0..2 {
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(format!("{EXECUTING}{instance}"))
            .arg("NX")
            .arg("EX")
            .arg(keys::COMMAND_DEDUPE_TTL.as_secs())
            .query_async(conn)
            .await?;
        if set.is_some() {
            return Ok(Marker::Taken);
        }
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
        if let Some(v) = value {
            return Ok(Marker::parse(&v));
        }
    }
    Err(CollectorError::Reply { what: "SET NX", detail: format!("marker {key} neither settable nor readable") })
}

/// Records the final status (`success`, `failed`, ...).
pub async fn finish(conn: &mut Connection, host: &str, id: &str, status: &str) -> Result<(), CollectorError> {
    let _: () = redis::cmd("SET")
        .arg(keys::command_seen(host, id))
        .arg(format!("{DONE}{status}"))
        .arg("EX")
        .arg(keys::COMMAND_DEDUPE_TTL.as_secs())
        .query_async(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_values() {
        assert_eq!(Marker::parse("executing:abc"), Marker::Executing { instance: "abc".into() });
        assert_eq!(Marker::parse("done:success"), Marker::Done { status: "success".into() });
        // A marker written by an older collector (its name): handled.
        assert_eq!(Marker::parse("host-1"), Marker::Done { status: "unknown".into() });
    }
}
