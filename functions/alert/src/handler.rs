//! The Lambda handler: a batch of `remediation_complete`, `false_alarm` and
//! `system_alert` records in; events stored, people told.
//!
//! Store first, in record order (the dashboard's lists stay in stream
//! order), then notify every record at once: one slow receiver costs the
//! batch one notification deadline, not one per record. A notification that
//! fails after its retries is logged and counted, and the record still
//! succeeds: redelivering it would not make Slack come back, and the event
//! is already safe in the log. Only Redis failures ask for redelivery, which
//! the idempotent store and the dedupe claims make harmless.

use futures::future::join_all;

use hemostat_protocol::batch::{self, BatchEvent, BatchRecord, BatchResponse, RecordOutcome};

use crate::{
    AlertError, Config,
    notice::{self, Notice},
    sinks::{Policy, Sink},
    store::EventLog,
};

pub struct Alert<L> {
    log: L,
    sinks: Vec<Sink>,
    /// Built only when a sink is configured: a client needs the system's
    /// CA certificates, which an alert function that only keeps the event
    /// log (a static binary on a bare host) may not have.
    client: Option<reqwest::Client>,
    policy: Policy,
}

impl<L: EventLog> Alert<L> {
    /// Sinks come from `config` (none when `ALERT_ENABLED` is false); the
    /// HTTP client every sink shares is built here, once, if one is.
    pub fn new(config: &Config, log: L) -> Result<Self, AlertError> {
        let sinks = Sink::from_config(config);
        let client = if sinks.is_empty() { None } else { Some(crate::sinks::client(config)?) };
        Ok(Alert { log, sinks, client, policy: Policy::of(config) })
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    pub async fn handle(&self, event: BatchEvent) -> BatchResponse {
        let mut response = BatchResponse::default();
        let mut to_notify = Vec::new();
        for record in &event.records {
            match self.accept(record).await {
                Ok(notice) => to_notify.push((record, notice)),
                Err(outcome) => batch::report(&mut response, record, outcome),
            }
        }
        if !self.sinks.is_empty() {
            let outcomes = join_all(to_notify.iter().map(|(record, notice)| self.notify(record, notice))).await;
            for ((record, _), outcome) in to_notify.iter().zip(outcomes) {
                if let Err(outcome) = outcome {
                    batch::report(&mut response, record, outcome);
                }
            }
        }
        response
    }

    /// Parses and stores one record.
    async fn accept(&self, record: &BatchRecord) -> Result<Notice, RecordOutcome> {
        let env = batch::envelope(record).map_err(|e| RecordOutcome::Rejected(e.to_string()))?;
        let notice = notice::of(&env).map_err(|e| RecordOutcome::Rejected(e.to_string()))?;
        let stored =
            self.log.store(env.kind, batch::body(record)).await.map_err(|e| RecordOutcome::Retry(e.to_string()))?;
        tracing::info!(
            kind = %env.kind,
            status = %notice.status,
            host = %notice.host,
            container = notice.container.as_deref(),
            critical_no_action = notice.critical_no_action,
            cause = notice.cause.as_deref(),
            redelivered = !stored,
            "event stored"
        );
        Ok(notice)
    }

    /// Every sink at once; `Err` only when Redis could not be asked for the
    /// dedupe claim (the record is then delivered again).
    async fn notify(&self, record: &BatchRecord, notice: &Notice) -> Result<(), RecordOutcome> {
        let results = join_all(self.sinks.iter().map(|sink| self.notify_sink(sink, batch::body(record), notice))).await;
        results.into_iter().collect()
    }

    async fn notify_sink(&self, sink: &Sink, body: &str, notice: &Notice) -> Result<(), RecordOutcome> {
        if !sink.wants(notice) {
            tracing::debug!(sink = sink.name, kind = %notice.kind, level = notice.level().as_str(), "not for this sink (its filter)");
            return Ok(());
        }
        let claimed =
            self.log.claim(sink.name, &notice.fingerprint).await.map_err(|e| RecordOutcome::Retry(e.to_string()))?;
        if !claimed {
            tracing::info!(sink = sink.name, fingerprint = %notice.fingerprint, kind = %notice.kind, "duplicate notification suppressed");
            return Ok(());
        }
        // Sinks exist only with a client (see `new`).
        let Some(client) = &self.client else { return Ok(()) };
        match sink.deliver(client, &self.policy, body, notice).await {
            Ok(delivered) => {
                tracing::info!(
                    sink = sink.name,
                    kind = %notice.kind,
                    status = %notice.status,
                    attempts = delivered.attempts,
                    elapsed_ms = delivered.elapsed.as_millis() as u64,
                    "notified"
                );
            }
            Err(e) => {
                // The error never carries the URL (deliver strips it).
                tracing::error!(
                    sink = sink.name,
                    kind = %notice.kind,
                    status = %notice.status,
                    host = %notice.host,
                    container = notice.container.as_deref(),
                    error = %e,
                    "notification failed; the event is stored, the failure counted"
                );
                if let Err(e) = self.log.release(sink.name, &notice.fingerprint).await {
                    tracing::warn!(sink = sink.name, error = %e, "dedupe claim not released");
                }
                if let Err(e) = self.log.count_failure(sink.name).await {
                    tracing::warn!(sink = sink.name, error = %e, "notification failure not counted");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::{EventKind, batch, secret::Secret};
    use std::{
        collections::{HashMap, HashSet},
        sync::{Arc, Mutex},
        time::Duration,
    };

    /// In-memory event log: lists by key, claims without expiry.
    #[derive(Default)]
    struct MemoryLog {
        lists: Mutex<HashMap<String, Vec<String>>>,
        stored: Mutex<HashSet<String>>,
        claims: Mutex<HashSet<String>>,
        failures: Mutex<u64>,
        redis_down: bool,
    }

    impl EventLog for MemoryLog {
        async fn store(&self, kind: EventKind, json: &str) -> Result<bool, AlertError> {
            if self.redis_down {
                return Err(AlertError::Config { name: "test", reason: "redis down".into() });
            }
            if !self.stored.lock().unwrap().insert(json.to_owned()) {
                return Ok(false);
            }
            let mut lists = self.lists.lock().unwrap();
            for list in crate::store::lists(kind) {
                lists.entry(list).or_default().insert(0, json.to_owned());
            }
            Ok(true)
        }
        async fn claim(&self, sink: &str, fp: &str) -> Result<bool, AlertError> {
            Ok(self.claims.lock().unwrap().insert(format!("{sink}:{fp}")))
        }
        async fn release(&self, sink: &str, fp: &str) -> Result<(), AlertError> {
            self.claims.lock().unwrap().remove(&format!("{sink}:{fp}"));
            Ok(())
        }
        async fn count_failure(&self, _sink: &str) -> Result<(), AlertError> {
            *self.failures.lock().unwrap() += 1;
            Ok(())
        }
    }

    /// A Slack stand-in on a real socket: answers with the statuses given,
    /// then 200; records every body.
    async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses));
        let sink = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let sink = sink.clone();
                let script = script.clone();
                async move {
                    sink.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    let mut s = script.lock().unwrap();
                    let code = if s.is_empty() { 200 } else { s.remove(0) };
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), seen)
    }

    fn record(id: &str, body: &str) -> BatchRecord {
        batch::record(id, EventKind::RemediationComplete.stream(), body, 1)
    }

    fn complete(container: &str, status: &str) -> String {
        format!(
            r#"{{"timestamp":"2025-11-03T10:30:53.789012","agent":"HemoStat-Responder","type":"remediation_complete","data":{{"container":"{container}","host":"h1","action":"restart","result":{{"status":"{status}","action":"restart","container":"{container}"}}}}}}"#
        )
    }

    fn alert(url: Option<&str>, log: MemoryLog) -> Alert<MemoryLog> {
        let config = Config {
            slack_webhook_url: url.map(Secret::new),
            http_timeout: Duration::from_millis(500),
            retry_base: Duration::from_millis(10),
            notify_deadline: Duration::from_secs(2),
            ..Config::default()
        };
        Alert::new(&config, log).unwrap()
    }

    #[tokio::test]
    async fn stores_then_notifies_once_per_fingerprint() {
        let (url, seen) = receiver(vec![]).await;
        let a = alert(Some(&url), MemoryLog::default());
        let body = complete("web", "success");
        let again = body.replace("10:30:53", "10:30:54");
        let response = a.handle(batch::event(vec![record("1-0", &body), record("2-0", &again)])).await;
        assert_eq!(response, BatchResponse::default());
        assert_eq!(a.log.lists.lock().unwrap()["hemostat:events:all"], vec![again.clone(), body.clone()]);
        assert_eq!(seen.lock().unwrap().len(), 1, "same fingerprint: one message");
        assert_eq!(seen.lock().unwrap()[0]["attachments"][0]["color"], "#36a64f");
    }

    #[tokio::test]
    async fn malformed_records_are_rejected_and_neighbours_served() {
        let (url, seen) = receiver(vec![]).await;
        let a = alert(Some(&url), MemoryLog::default());
        let records = vec![
            record("1-0", &complete("a", "success")),
            record("2-0", "{not json"),
            record("3-0", &complete("b", "teleported")),
            record("4-0", &complete("c", "failed")),
        ];
        let response = a.handle(batch::event(records)).await;
        let rejected: Vec<&str> = response.rejected_items.iter().map(|r| r.item_identifier.as_str()).collect();
        assert_eq!(rejected, ["2-0", "3-0"]);
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(a.log.lists.lock().unwrap()["hemostat:events:remediation_complete"].len(), 2);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_dead_receiver_is_counted_not_retried_forever() {
        let (url, seen) = receiver(vec![500, 500, 500, 500]).await;
        let a = alert(Some(&url), MemoryLog::default());
        let response = a.handle(batch::event(vec![record("1-0", &complete("web", "failed"))])).await;
        assert_eq!(response, BatchResponse::default(), "the event is stored; the record succeeds");
        assert_eq!(seen.lock().unwrap().len(), 3, "ALERT_MAX_ATTEMPTS = 3");
        assert_eq!(*a.log.failures.lock().unwrap(), 1);
        assert!(a.log.claims.lock().unwrap().is_empty(), "claim released for the next identical event");
    }

    #[tokio::test]
    async fn redis_down_asks_for_redelivery_and_sends_nothing() {
        let (url, seen) = receiver(vec![]).await;
        let a = alert(Some(&url), MemoryLog { redis_down: true, ..MemoryLog::default() });
        let response = a.handle(batch::event(vec![record("1-0", &complete("web", "success"))])).await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn no_url_or_disabled_only_stores() {
        let a = alert(None, MemoryLog::default());
        assert!(a.sinks().is_empty());
        a.handle(batch::event(vec![record("1-0", &complete("web", "success"))])).await;
        assert_eq!(a.log.lists.lock().unwrap()["hemostat:events:all"].len(), 1);

        let config = Config {
            slack_webhook_url: Some(Secret::new("http://127.0.0.1:9/x")),
            enabled: false,
            ..Config::default()
        };
        assert!(Sink::from_config(&config).is_empty());
    }
}
