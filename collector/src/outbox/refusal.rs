//! Why a publish failed, and whether trying again can help.
//!
//! The outbox sends its records one at a time, in order, so a record
//! Redis will never take must not stay at the head: outcomes (and the
//! command acknowledgements waiting for them) would stall behind it for
//! good. Three kinds of failure:
//!
//! - [`Refusal::Transient`]: Redis (or the path to it) is unavailable, not
//!   this record: no connection, a timeout, `LOADING`, `TRYAGAIN`,
//!   `CLUSTERDOWN`, `MASTERDOWN`, `READONLY` (a failover; `MOVED` and
//!   `ASK` are followed by the client), `BUSY`, `NOREPLICAS`, a refused
//!   login (`NOAUTH`, `WRONGPASS`: a setting to fix, and every record
//!   would fail alike), too many clients. Retried as long as it lasts:
//!   the outbox holds records meanwhile, within its bound.
//! - [`Refusal::ForNow`]: Redis answers but refuses this write, for a
//!   reason that may pass or may not: `OOM` (used memory above
//!   `maxmemory`: freed if keys expire or are evicted, or if an operator
//!   acts; never, if the policy is `noeviction` and nothing expires),
//!   `EXECABORT` without a reason given, and any error this code does not
//!   know. Retried with backoff for the outbox's patience (10 minutes by
//!   default, `HEMOSTAT_OUTBOX_REFUSAL_PATIENCE`), then dead-lettered: past
//!   that, an alert is stale (the bridge refuses records older than
//!   `HEMOSTAT_BRIDGE_MAX_AGE_SECONDS`, 10 minutes by default) while
//!   holding it would keep every newer event and outcome waiting.
//! - [`Refusal::Final`]: this record can never be written as it is:
//!   `WRONGTYPE` (a key of its stream is something else), `NOPERM` (the
//!   collector's ACL user may not write there), `CROSSSLOT`, a payload
//!   Redis rejects (larger than `proto-max-bulk-len`, a protocol error),
//!   or a record that is not an envelope. Dead-lettered after a few
//!   attempts (a moment: an ACL being reloaded), so the records behind it
//!   go on.

use hemostat_protocol::ProtocolError;
use redis::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    Transient,
    ForNow,
    Final,
}

/// What kind of failure `e` is (see the module's documentation).
pub fn classify(e: &ProtocolError) -> Refusal {
    match e {
        ProtocolError::Redis(e) => redis_error(e),
        ProtocolError::Undelivered(_) | ProtocolError::MalformedEnvelope(_) | ProtocolError::Json(_) => Refusal::Final,
        _ => Refusal::Transient,
    }
}

fn redis_error(e: &redis::RedisError) -> Refusal {
    // A transaction's error carries each command's: the worst decides.
    if let Some(errors) = e.clone().into_server_errors()
        && !errors.is_empty()
    {
        return errors
            .iter()
            .map(|(_, s)| server_error(s.code(), s.details().unwrap_or("")))
            .max()
            .unwrap_or(Refusal::ForNow);
    }
    match e.kind() {
        ErrorKind::Io
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::AuthenticationFailed
        | ErrorKind::Parse
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => Refusal::Transient,
        ErrorKind::Server(_) | ErrorKind::Extension => server_error(e.code().unwrap_or(""), e.detail().unwrap_or("")),
        _ => Refusal::ForNow,
    }
}

fn server_error(code: &str, detail: &str) -> Refusal {
    match code {
        "LOADING" | "TRYAGAIN" | "MOVED" | "ASK" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" | "BUSY"
        | "NOREPLICAS" | "NOAUTH" | "WRONGPASS" | "NOTBUSY" => Refusal::Transient,
        "WRONGTYPE" | "NOPERM" | "CROSSSLOT" => Refusal::Final,
        "ERR" if detail.contains("max number of clients") => Refusal::Transient,
        "ERR" if detail.contains("maximum allowed size") || detail.contains("Protocol error") => Refusal::Final,
        _ => Refusal::ForNow,
    }
}

/// A refusal's text fit for a file others may read: one line, bounded,
/// with anything that looks like a URL's credentials removed (a connection
/// error can quote the URL).
pub fn redacted(reason: &str) -> String {
    const MAX: usize = 500;
    let line: String = reason
        .split_whitespace()
        .map(|w| if w.contains("://") { hemostat_protocol::connection::redact(w) } else { w.to_owned() })
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> ProtocolError {
        ProtocolError::Redis(redis::make_extension_error(code.into(), Some(detail.into())))
    }

    #[test]
    fn what_the_record_cannot_change_is_final_what_redis_may_get_over_is_not() {
        let io = ProtocolError::Redis(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into());
        assert_eq!(classify(&io), Refusal::Transient);
        let timeout = ProtocolError::Redis(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into());
        assert_eq!(classify(&timeout), Refusal::Transient);
        for code in ["LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOAUTH", "WRONGPASS"] {
            assert_eq!(classify(&server(code, "x")), Refusal::Transient, "{code}");
        }
        assert_eq!(classify(&server("ERR", "max number of clients reached")), Refusal::Transient);
        let wrongtype = server("WRONGTYPE", "Operation against a key holding the wrong kind of value");
        assert_eq!(classify(&wrongtype), Refusal::Final);
        assert_eq!(classify(&server("NOPERM", "User x has no permissions to access the 'k' key")), Refusal::Final);
        assert_eq!(
            classify(&server("ERR", "string exceeds maximum allowed size (proto-max-bulk-len)")),
            Refusal::Final
        );
        assert_eq!(classify(&server("OOM", "command not allowed when used memory > 'maxmemory'.")), Refusal::ForNow);
        assert_eq!(classify(&server("ERR", "something new")), Refusal::ForNow);
        assert_eq!(classify(&server("SOMETHINGNEW", "")), Refusal::ForNow);
        assert_eq!(classify(&ProtocolError::Undelivered("dead-lettered".into())), Refusal::Final);
        assert_eq!(classify(&ProtocolError::RedisUrl("down".into())), Refusal::Transient);
    }

    #[test]
    fn reasons_lose_credentials_and_length() {
        let r = redacted("connect to redis://user:hunter2@r.example:6379 failed:\n refused");
        assert!(!r.contains("hunter2") && !r.contains('\n'), "{r}");
        assert!(redacted(&"x ".repeat(1000)).len() < 520);
    }
}
