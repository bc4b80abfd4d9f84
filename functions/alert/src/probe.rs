//! `hemostat notify test`: a test notice through each configured sink, the
//! sinks' filters and `ALERT_ENABLED` aside (the point is to see each one
//! work), with the same requests and retries as real notifications. A sink
//! that opens incidents (PagerDuty) is sent the matching recovery right
//! after, so the test leaves nothing open.

use hemostat_protocol::Envelope;

use crate::{
    Config,
    error::AlertError,
    notice::{self, Notice},
    sinks::{Delivered, Policy, Sink, client},
};

/// What one sink made of the test.
#[derive(Debug)]
pub struct Tried {
    pub sink: &'static str,
    pub result: Result<Delivered, AlertError>,
}

/// The test notice (a low `system_alert` of kind `notification_test`, or
/// its `_recovered` counterpart) and its envelope.
pub fn test_notice(host: &str, recovered: bool) -> Result<(String, Notice), AlertError> {
    let kind = if recovered { "notification_test_recovered" } else { "notification_test" };
    let message = if recovered {
        "HemoStat test notification: closing the test incident."
    } else {
        "HemoStat test notification (hemostat notify test): this sink works."
    };
    let envelope = serde_json::json!({
        "timestamp": chrono::Utc::now().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "agent": "HemoStat-CLI",
        "type": "system_alert",
        "data": {"kind": kind, "severity": "low", "host": host, "message": message},
    })
    .to_string();
    let parsed = Envelope::parse(envelope.as_bytes())?;
    Ok((envelope.clone(), notice::of(&parsed)?))
}

/// Sends the test notice through each configured sink (only `only`, when
/// given), all at once; an unknown or unconfigured `only` is an error.
pub async fn try_sinks(config: &Config, host: &str, only: Option<&str>) -> Result<Vec<Tried>, AlertError> {
    let sinks: Vec<Sink> = Sink::configured(config).into_iter().filter(|s| only.is_none_or(|o| o == s.name)).collect();
    if let (Some(name), true) = (only, sinks.is_empty()) {
        return Err(AlertError::Config {
            name: "--sink",
            reason: if crate::sinks::NAMES.contains(&name) {
                format!("{name} is not configured (alert --help lists its settings)")
            } else {
                format!("{name:?}: expected one of {}", crate::sinks::NAMES.join(", "))
            },
        });
    }
    let client = client(config)?;
    let policy = Policy::of(config);
    let (body, notice) = test_notice(host, false)?;
    let (done_body, done) = test_notice(host, true)?;
    let tries = sinks.iter().map(|sink| {
        let (client, body, notice, done_body, done) = (&client, &body, &notice, &done_body, &done);
        async move {
            let mut result = sink.deliver(client, &policy, body, notice).await;
            if result.is_ok() && sink.closes(done) {
                result = sink.deliver(client, &policy, done_body, done).await;
            }
            Tried { sink: sink.name, result }
        }
    });
    Ok(futures::future::join_all(tries).await)
}
