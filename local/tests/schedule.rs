//! `Type: Schedule` events delivered to a real function binary (noop-function,
//! which appends every event it gets to `NOOP_RECORD_FILE`).

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{TestEmulator, config, temp_dir};
use hemostat_local::{Emulator, Error};
use serde_json::Value;

/// Shortened from the template's schedules, as compose and tests do.
const INTERVAL: Duration = Duration::from_millis(300);

fn template(dir: &Path) -> String {
    let function = |id: &str, name: &str, events: &str| {
        format!(
            r#"
  {id}:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: {name}
      Environment:
        Variables:
          NOOP_RECORD_FILE: "{}"
      Events:
{events}"#,
            dir.join(format!("{name}.jsonl")).display()
        )
    };
    let mut yaml = String::from("Resources:");
    yaml += &function(
        "TickerFunction",
        "ticker",
        "        Tick:\n          Type: Schedule\n          Properties:\n            Schedule: rate(1 minute)\n",
    );
    yaml += &function(
        "InputFunction",
        "with-input",
        "        Gauges:\n          Type: Schedule\n          Properties:\n            Schedule: cron(0 12 * * ? *)\n            Name: gauges-rule\n            Input: '{\"task\": \"gauges\", \"n\": 1}'\n",
    );
    yaml += &function(
        "OffFunction",
        "off",
        "        Tick:\n          Type: Schedule\n          Properties:\n            Schedule: rate(5 minutes)\n            Enabled: false\n",
    );
    yaml
}

fn recorded(dir: &Path, function: &str) -> Vec<Value> {
    let path: PathBuf = dir.join(format!("{function}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("recorded events are JSON"))
        .collect()
}

async fn wait_for_events(dir: &Path, function: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = recorded(dir, function);
        if events.len() >= count {
            return events;
        }
        assert!(Instant::now() < deadline, "{function}: {} of {count} scheduled events after 15 s", events.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_deliver_eventbridge_events_at_the_overridden_interval() {
    let dir = temp_dir();
    let mut config = config(&template(&dir), 4);
    config.account_id = "123456789012".into();
    config.region = "eu-west-1".into();
    config.schedules.intervals = [
        ("ticker".to_owned(), INTERVAL),
        // By logical id, and on a cron expression: the override replaces it.
        ("InputFunction".to_owned(), INTERVAL),
        ("off".to_owned(), INTERVAL),
    ]
    .into_iter()
    .collect();
    let started = Instant::now();
    let emulator = TestEmulator::with_config(config).await;

    let events = wait_for_events(&dir, "ticker", 3).await;
    let elapsed = started.elapsed();
    // The first delivery is one interval after start, as with a new EventBridge rule.
    assert!(elapsed >= INTERVAL * 3, "3 deliveries after only {elapsed:?}");
    let delivered = recorded(&dir, "ticker").len() as u32;
    let at_most = started.elapsed().as_millis() as u32 / INTERVAL.as_millis() as u32;
    assert!(delivered <= at_most, "{delivered} deliveries in {:?}: faster than every {INTERVAL:?}", started.elapsed());

    let mut ids = Vec::new();
    for event in &events {
        let object = event.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = ["account", "detail", "detail-type", "id", "region", "resources", "source", "time", "version"];
        assert_eq!(keys, expected, "{event}");
        assert_eq!(event["version"], "0");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["account"], "123456789012");
        assert_eq!(event["region"], "eu-west-1");
        assert_eq!(
            event["resources"],
            serde_json::json!(["arn:aws:events:eu-west-1:123456789012:rule/hemostat-local-TickerFunctionTick"])
        );
        assert_eq!(event["detail"], serde_json::json!({}));
        let time = event["time"].as_str().expect("time");
        // RFC 3339 in UTC, whole seconds: 2025-11-03T10:30:45Z.
        assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
        let parsed = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
        let age = chrono::Utc::now() - parsed.with_timezone(&chrono::Utc);
        assert!(age < chrono::Duration::seconds(30), "time {time} is not now");
        let id = event["id"].as_str().expect("id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every delivery has its own id");

    // Input replaces the scheduled-event JSON entirely.
    let with_input = wait_for_events(&dir, "with-input", 2).await;
    for event in with_input {
        assert_eq!(event, serde_json::json!({"task": "gauges", "n": 1}));
    }
    // A disabled rule never fires, override or not.
    assert!(recorded(&dir, "off").is_empty());
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_schedules_delivers_nothing() {
    let dir = temp_dir();
    let mut config = config(&template(&dir), 4);
    config.schedules.disabled = true;
    config.schedules.intervals = [("*".to_owned(), Duration::from_millis(100))].into_iter().collect();
    let emulator = TestEmulator::with_config(config).await;
    // The functions work; they are just never called on a schedule.
    let reply = emulator.invoke("ticker", r#"{"direct":true}"#).await;
    assert_eq!(reply.status, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(recorded(&dir, "ticker"), vec![serde_json::json!({"direct": true})]);
    assert!(recorded(&dir, "with-input").is_empty());
    emulator.stop().await;
}

#[tokio::test]
async fn schedule_errors_are_clear_at_startup() {
    let dir = temp_dir();
    let mut unknown = config(&template(&dir), 4);
    unknown.schedules.intervals = [("tikcer".to_owned(), INTERVAL)].into_iter().collect();
    let err = Emulator::start(unknown).await.err().expect("start fails");
    assert!(matches!(err, Error::ScheduleIntervalUnknown { .. }), "{err:?}");
    assert!(err.to_string().contains("tikcer") && err.to_string().contains("ticker"), "{err}");

    let bad = template(&dir).replace("rate(1 minute)", "rate(1 fortnight)");
    let err = Emulator::start(config(&bad, 4)).await.err().expect("start fails");
    assert!(err.to_string().contains("TickerFunction.Events.Tick.Properties.Schedule"), "{err}");

    let bad = template(&dir).replace("\"n\": 1}", "\"n\": }");
    let err = Emulator::start(config(&bad, 4)).await.err().expect("start fails");
    assert!(err.to_string().contains("Input is not valid JSON"), "{err}");
}
