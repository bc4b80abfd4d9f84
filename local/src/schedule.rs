//! Scheduled events: a function's SAM `Events` of `Type: Schedule`, delivered as
//! EventBridge delivers them — an asynchronous (`Event`) invocation carrying the
//! standard "Scheduled Event" JSON, or the rule's `Input` when it has one.
//!
//! `rate(...)` and AWS's six-field `cron(...)` (UTC) are both understood; cron's
//! `L`, `W` and `#` are not, and such a rule is skipped with a warning. Tests
//! and local stacks shorten the wait with an interval override per function
//! (`--schedule-interval FUNCTION=2s`), or turn schedules off (`--no-schedules`).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::ScheduleOverrides,
    error::{Error, Result},
    function::Function,
    invocation::{Invocation, request_id},
    schedule_expression::{Cron, Expression, ScheduleEvent},
    state::Shared,
};

/// The JSON EventBridge sends for a scheduled rule (field order as AWS's).
#[derive(Serialize)]
struct ScheduledEvent<'a> {
    version: &'static str,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: &'static str,
    source: &'static str,
    account: &'a str,
    time: String,
    region: &'a str,
    resources: [String; 1],
    detail: serde_json::Map<String, serde_json::Value>,
}

/// The event body for one delivery of `event` at `time`.
pub fn event_payload(event: &ScheduleEvent, time: DateTime<Utc>, region: &str, account: &str) -> String {
    if let Some(input) = &event.input {
        return input.clone();
    }
    let body = ScheduledEvent {
        version: "0",
        id: request_id(),
        detail_type: "Scheduled Event",
        source: "aws.events",
        account,
        time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
        region,
        resources: [format!("arn:aws:events:{region}:{account}:rule/{}", event.rule_name)],
        detail: serde_json::Map::new(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// The `--schedule-interval` that replaces `function`'s expressions, if any:
/// its name's, else its logical id's, else `*`'s.
fn interval(overrides: &ScheduleOverrides, function: &Function) -> Option<Duration> {
    let spec = &function.spec;
    overrides
        .intervals
        .get(&spec.name)
        .or_else(|| overrides.intervals.get(&spec.logical_id))
        .or_else(|| overrides.intervals.get("*"))
        .copied()
}

/// Parses a `FUNCTION=DURATION` flag (`500ms`, `2s`, `5m`, `1h`; a bare number is seconds).
pub fn parse_interval_flag(flag: &str) -> Result<(String, Duration)> {
    let bad = || Error::ScheduleIntervalFlag(flag.to_owned());
    let (name, duration) = flag.split_once('=').ok_or_else(bad)?;
    let (name, duration) = (name.trim(), duration.trim());
    if name.is_empty() {
        return Err(bad());
    }
    let (number, unit) = match duration.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => duration.split_at(at),
        None => (duration, "s"),
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    let duration = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
    if duration < Duration::from_millis(1) {
        return Err(bad());
    }
    Ok((name.to_owned(), duration))
}

/// Starts one task per enabled schedule of the loaded functions; they stop when
/// `stop` is cancelled.
pub fn start(shared: &Shared, stop: &CancellationToken) {
    let (overrides, region, account) = (shared.schedules(), shared.region(), shared.account_id());
    for function in shared.functions() {
        for event in &function.spec.schedules {
            let rule = event.rule_name.as_str();
            let name = function.name();
            if overrides.disabled {
                info!(function = %name, rule, "schedule not started (--no-schedules)");
                continue;
            }
            if !event.enabled {
                info!(function = %name, rule, "schedule is disabled in the template");
                continue;
            }
            let every = interval(overrides, function);
            let timing = match (&event.expression, every) {
                (_, Some(every)) => Timing::Every(every),
                (Expression::Rate(every), None) => Timing::Every(*every),
                (Expression::Cron(cron), None) => Timing::Cron(cron.clone()),
                (Expression::Unsupported { text, reason }, None) => {
                    warn!(function = %name, rule, schedule = %text, "schedule skipped: {reason}; give it a --schedule-interval to run it locally");
                    continue;
                }
            };
            info!(function = %name, rule, schedule = ?event.expression, ?timing, "schedule started");
            let delivery = Delivery {
                function: function.clone(),
                event: event.clone(),
                rule: Arc::from(rule),
                region: region.to_owned(),
                account: account.to_owned(),
            };
            tokio::spawn(run(delivery, timing, stop.clone()));
        }
    }
}

#[derive(Debug)]
enum Timing {
    Every(Duration),
    Cron(Box<Cron>),
}

struct Delivery {
    function: Arc<Function>,
    event: ScheduleEvent,
    rule: Arc<str>,
    region: String,
    account: String,
}

impl Delivery {
    fn deliver(&self, time: DateTime<Utc>) {
        let payload = event_payload(&self.event, time, &self.region, &self.account);
        let (invocation, outcome) = Invocation::new(payload.into());
        info!(
            function = %self.function.name(),
            rule = %self.rule,
            request_id = %invocation.request_id,
            "scheduled event delivered"
        );
        self.function.submit_event(invocation, outcome, Some(self.rule.clone()));
    }
}

async fn run(delivery: Delivery, timing: Timing, stop: CancellationToken) {
    match timing {
        Timing::Every(every) => {
            // Like a new EventBridge rate rule: the first delivery one period from now.
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // A stalled emulator does not owe a burst of missed deliveries.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => delivery.deliver(Utc::now()),
                }
            }
        }
        Timing::Cron(cron) => loop {
            let Some(next) = cron.next_after(Utc::now()) else {
                info!(function = %delivery.function.name(), rule = %delivery.rule, "cron schedule has no future run");
                return;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => delivery.deliver(next),
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn scheduled_event_json() {
        let event = ScheduleEvent {
            event_id: "Tick".into(),
            rule_name: "hemostat-local-ExporterFunctionTick".into(),
            expression: Expression::Rate(Duration::from_secs(60)),
            enabled: true,
            input: None,
        };
        let time = at("2025-11-03T10:30:45.123Z");
        let text = event_payload(&event, time, "eu-west-1", "123456789012");
        assert!(text.starts_with(r#"{"version":"0","id":""#), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["detail-type"], "Scheduled Event");
        assert_eq!(json["source"], "aws.events");
        assert_eq!(json["account"], "123456789012");
        assert_eq!(json["time"], "2025-11-03T10:30:45Z");
        assert_eq!(json["region"], "eu-west-1");
        assert_eq!(
            json["resources"],
            serde_json::json!(["arn:aws:events:eu-west-1:123456789012:rule/hemostat-local-ExporterFunctionTick"])
        );
        assert_eq!(json["detail"], serde_json::json!({}));
        assert_eq!(json["id"].as_str().map(str::len), Some(36));

        let with_input = ScheduleEvent { input: Some(r#"{"task":"gauges"}"#.into()), ..event };
        assert_eq!(event_payload(&with_input, time, "eu-west-1", "1"), r#"{"task":"gauges"}"#);
    }

    #[test]
    fn interval_flags() {
        let ok = |f: &str| parse_interval_flag(f).unwrap();
        assert_eq!(ok("exporter=2s"), ("exporter".into(), Duration::from_secs(2)));
        assert_eq!(ok("exporter=500ms"), ("exporter".into(), Duration::from_millis(500)));
        assert_eq!(ok("*=3"), ("*".into(), Duration::from_secs(3)));
        assert_eq!(ok("f = 1m"), ("f".into(), Duration::from_secs(60)));
        assert_eq!(ok("f=1.5s"), ("f".into(), Duration::from_millis(1500)));
        for bad in ["exporter", "=2s", "f=", "f=2x", "f=0s", "f=-1s"] {
            assert!(parse_interval_flag(bad).is_err(), "{bad}");
        }
    }
}
