//! Admission: what the checks that need neither Redis nor Docker (the
//! signature, the host, the age) make of one command stream entry. Pure,
//! so the fuzzer drives it as the consumer does.

use std::time::Duration;

use hemostat_protocol::{
    Command,
    command::{SignedCommand, VerifyingKeys},
};

use super::report::Claimed;

/// What the checks that need neither Redis nor Docker make of one entry.
#[derive(Debug)]
pub enum Admission {
    /// Verified, for this host, not expired: to be executed.
    Run(Command),
    /// Unsigned, forged or unreadable: only what its JSON claims, for the
    /// report, and why it was not opened.
    Unopened { claimed: Claimed, why: String },
    /// Verified but not to run here or now (another host, expired).
    Refused { cmd: Command, reason: String },
}

/// The signature (with `keys`), then the host, then the age: everything a
/// command must pass before it is executed, decided without side effects
/// (the reader reports and acknowledges what is not [`Admission::Run`]).
pub fn admit(
    signed: &SignedCommand,
    keys: Option<&VerifyingKeys>,
    host: &str,
    entry_id: &str,
    max_age: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Admission {
    let cmd = match signed.open(keys) {
        Ok(cmd) => cmd,
        Err(e) => return Admission::Unopened { claimed: Claimed::read(&signed.json), why: e.to_string() },
    };
    if cmd.host != host {
        let reason = format!("command for host {:?} refused by the collector of {host:?}", cmd.host);
        return Admission::Refused { cmd, reason };
    }
    match expired(&cmd, entry_id, max_age, now) {
        Some(reason) => Admission::Refused { cmd, reason },
        None => Admission::Run(cmd),
    }
}

/// `Some(reason)` when `cmd` was issued more than `max_age` before `now`:
/// by its signed `issued_at`, or, when that is unreadable, by the time Redis
/// gave its stream entry. A command from the future (clock skew) is fresh.
fn expired(cmd: &Command, entry_id: &str, max_age: Duration, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    // Its own end, which the signature covers: a command is not replayed later.
    let expires = cmd.expires_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if let Some(expires) = expires.filter(|t| *t < now) {
        return Some(format!("expired: valid until {}, not executed", expires.to_rfc3339()));
    }
    if max_age.is_zero() {
        return None;
    }
    let issued = chrono::DateTime::parse_from_rfc3339(&cmd.issued_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            let ms: i64 = entry_id.split('-').next()?.parse().ok()?;
            chrono::DateTime::from_timestamp_millis(ms)
        })?;
    let age = (now - issued).to_std().ok()?;
    (age > max_age).then(|| {
        format!(
            "expired: issued {:.0}s ago, older than the maximum age of {}s (HEMOSTAT_COMMAND_MAX_AGE); not executed",
            age.as_secs_f64(),
            max_age.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_expire_by_issue_time_or_entry_time() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let mut cmd: Command = serde_json::from_value(serde_json::json!({
            "id": "1", "host": "h", "container": "c", "action": "restart", "reason": "r",
            "confidence": 0.9, "issued_at": "2026-12-01T11:59:00Z"}))
        .unwrap();
        let five = Duration::from_secs(300);
        assert_eq!(expired(&cmd, "0-0", five, now), None);
        cmd.issued_at = "2026-12-01T11:00:00Z".into();
        let reason = expired(&cmd, "0-0", five, now).unwrap();
        assert!(reason.starts_with("expired: issued 3600s ago, older than the maximum age of 300s"), "{reason}");
        assert_eq!(expired(&cmd, "0-0", Duration::ZERO, now), None, "0 accepts any age");
        // From the future (clock skew): fresh.
        cmd.issued_at = "2026-12-01T12:10:00Z".into();
        assert_eq!(expired(&cmd, "0-0", five, now), None);
        // Unreadable issue time: the stream entry's time decides.
        cmd.issued_at = "yesterday".into();
        let an_hour_ago = (now.timestamp_millis() - 3_600_000).to_string();
        assert!(expired(&cmd, &format!("{an_hour_ago}-0"), five, now).is_some());
        let just_now = now.timestamp_millis().to_string();
        assert_eq!(expired(&cmd, &format!("{just_now}-3"), five, now), None);
        // Past its own end (which its signature covers): expired whatever the maximum age.
        cmd.issued_at = "2026-12-01T11:59:00Z".into();
        cmd.expires_at = Some("2026-12-01T11:59:30Z".into());
        let reason = expired(&cmd, "0-0", Duration::ZERO, now).unwrap();
        assert!(reason.starts_with("expired: valid until 2026-12-01T11:59:30"), "{reason}");
    }
}
