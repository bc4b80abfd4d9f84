//! Failures for the LLM path against a real model: a container's last log
//! lines, as real programs print them (each with where the line comes
//! from), its exit code, and what an engineer would conclude (the cause,
//! and whether a restart can help).
//!
//! [`evaluate`] feeds each failure's alert to the analyzer's handler twice,
//! without a model (the rules alone) and with one (the two together),
//! keeping the model's own answer (the model alone) and its latency. Shared
//! by the real-model test (`functions/analyzer/tests/llm_real.rs`) and
//! `hemostat-bench-incidents`' model table. Most are failures a restart
//! cannot fix: that is where a model's `restart` would make things worse.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use hemostat_analyzer::{
    Analyzer, AnalyzerError, Config, Llm, LlmClient, LlmConfig, NoLlm, Prompt, Provider, http_client,
};
use hemostat_protocol::{
    Action, Envelope, EventKind, ProtocolError, Publisher, batch,
    connection::Connection,
    diagnosis::Cause,
    event::{FalseAlarm, RemediationNeeded},
    secret::Secret,
};
use serde_json::{Value, json};

/// One failure.
#[derive(Debug, Clone, Copy)]
pub struct LlmIncident {
    pub name: &'static str,
    /// Where the lines come from (program, source file or documentation).
    pub source: &'static str,
    pub exit_code: i64,
    /// The container's last log lines (stderr), oldest first.
    pub log: &'static [&'static str],
    pub cause: Cause,
    /// Would restarting the container fix it?
    pub restart_helps: bool,
}

impl LlmIncident {
    /// The right action: a restart where it helps, nothing otherwise.
    pub fn action(&self) -> Action {
        if self.restart_helps { Action::Restart } else { Action::None }
    }

    /// Whether `action` makes the failure worse: repeating a failure a
    /// restart cannot fix, or keeping down what a restart would bring back.
    pub fn made_worse(&self, action: Action) -> bool {
        match action {
            Action::Restart | Action::Recreate | Action::ScaleUp | Action::Start => !self.restart_helps,
            Action::Stop | Action::Cleanup => self.restart_helps,
            // A command line of the model's own choosing: never right here.
            Action::Exec => true,
            Action::None => false,
        }
    }
}

/// The failures, in the words of the programs that print them.
pub fn all() -> Vec<LlmIncident> {
    vec![
        LlmIncident {
            name: "node_port_in_use",
            source: "Node.js lib/net.js, setupListenHandle (uvException EADDRINUSE)",
            exit_code: 1,
            log: &[
                "Server starting on port 3000",
                "node:events:497",
                "      throw er; // Unhandled 'error' event",
                "      ^",
                "Error: listen EADDRINUSE: address already in use :::3000",
                "    at Server.setupListenHandle [as _listen2] (node:net:1872:16)",
                "    at listenInCluster (node:net:1920:12)",
            ],
            cause: Cause::PortInUse,
            restart_helps: false,
        },
        LlmIncident {
            name: "nginx_bind_failed",
            source: "nginx src/core/ngx_connection.c, ngx_open_listening_sockets",
            exit_code: 1,
            log: &[
                "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)",
                "nginx: [emerg] still could not bind()",
            ],
            cause: Cause::PortInUse,
            restart_helps: false,
        },
        LlmIncident {
            name: "postgres_no_config",
            source: "PostgreSQL src/backend/utils/misc/guc.c, SelectConfigFiles",
            exit_code: 2,
            log: &[
                "postgres: could not access the server configuration file \"/etc/postgresql/postgresql.conf\": No such file or directory",
            ],
            cause: Cause::MissingFileOrConfig,
            restart_helps: false,
        },
        LlmIncident {
            name: "python_db_refused",
            source: "psycopg2 / libpq fe-connect.c, connectFailureMessage",
            exit_code: 1,
            log: &[
                "Traceback (most recent call last):",
                "  File \"/app/worker.py\", line 12, in <module>",
                "    conn = psycopg2.connect(DSN)",
                "psycopg2.OperationalError: connection to server at \"db\" (192.0.2.10), port 5432 failed: Connection refused",
                "\tIs the server running on that host and accepting TCP/IP connections?",
            ],
            cause: Cause::DependencyUnreachable,
            restart_helps: true,
        },
        LlmIncident {
            name: "nginx_log_permission",
            source: "nginx src/core/ngx_log.c, ngx_log_open_default",
            exit_code: 1,
            log: &["nginx: [emerg] open() \"/var/log/nginx/error.log\" failed (13: Permission denied)"],
            cause: Cause::PermissionDenied,
            restart_helps: false,
        },
        LlmIncident {
            name: "python_disk_full",
            source: "CPython Objects/exceptions.c (OSError errno 28, ENOSPC)",
            exit_code: 1,
            log: &[
                "Traceback (most recent call last):",
                "  File \"/app/export.py\", line 41, in write_chunk",
                "    fh.write(chunk)",
                "OSError: [Errno 28] No space left on device",
            ],
            cause: Cause::DiskFull,
            restart_helps: false,
        },
        LlmIncident {
            name: "go_nil_panic",
            source: "Go runtime/panic.go and runtime/signal_unix.go (sigpanic)",
            exit_code: 2,
            log: &[
                "panic: runtime error: invalid memory address or nil pointer dereference",
                "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6c1f3a]",
                "",
                "goroutine 34 [running]:",
                "main.(*Handler).ServeHTTP(0x0, {0x7f8e60, 0xc0001a2000}, 0xc000190100)",
                "\t/src/handler.go:57 +0x3a",
            ],
            cause: Cause::PanicOrException,
            restart_helps: true,
        },
        LlmIncident {
            name: "java_heap_oom",
            source: "OpenJDK hotspot memory/universe.cpp (OutOfMemoryError: Java heap space)",
            exit_code: 1,
            log: &[
                "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
                "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)",
                "\tat com.acme.ingest.Batcher.add(Batcher.java:88)",
            ],
            cause: Cause::OutOfMemoryInApp,
            restart_helps: true,
        },
    ]
}

/// The keys of the answer's JSON Schema (the analyzer's prompt), sorted.
const SCHEMA_KEYS: [&str; 6] = ["action", "cause", "confidence", "evidence", "recommendation", "root_cause"];

/// One question the model was asked: its answer's text as the server sent
/// it (or the error), and how long it took.
#[derive(Debug, Clone)]
pub struct Call {
    /// The text, or the error's `fallback_reason` and message.
    pub answer: Result<String, (&'static str, String)>,
    pub elapsed: Duration,
}

/// A client that keeps every answer and its latency.
pub struct Recording<L> {
    inner: L,
    calls: Mutex<Vec<Call>>,
}

impl<L: Llm> Recording<L> {
    pub fn new(inner: L) -> Self {
        Recording { inner, calls: Mutex::default() }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<L: Llm> Llm for Recording<L> {
    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        let started = Instant::now();
        let answer = self.inner.complete(prompt).await;
        let kept = match &answer {
            Ok(text) => Ok(text.clone()),
            Err(e) => Err((e.fallback_reason(), e.to_string())),
        };
        let call = Call { answer: kept, elapsed: started.elapsed() };
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
        answer
    }
}

/// Keeps what the handler published.
#[derive(Default)]
struct Published(Mutex<Vec<Envelope>>);

impl Publisher for Published {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(env.clone());
        Ok("0-1".into())
    }
}

/// A published decision: its action (`none` for a false alarm), how it
/// was reached, and the diagnosis it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub confidence: f64,
    /// `analysis_method`: `rule_based`, `llm` or `rule_fallback`.
    pub method: String,
    pub fallback_reason: Option<String>,
    pub cause: Option<Cause>,
    pub evidence: Vec<String>,
}

impl Verdict {
    fn of(env: &Envelope) -> Result<Verdict, String> {
        let (action, confidence, context, fallback_reason) = match env.kind {
            EventKind::RemediationNeeded => {
                let n: RemediationNeeded = env.data_as().map_err(|e| e.to_string())?;
                (n.action, n.confidence, n.context, n.fallback_reason)
            }
            EventKind::FalseAlarm => {
                let f: FalseAlarm = env.data_as().map_err(|e| e.to_string())?;
                (Action::None, f.confidence.unwrap_or(0.0), f.context, f.fallback_reason)
            }
            other => return Err(format!("the analyzer published {other}")),
        };
        let (cause, evidence) = context.diagnosis.map(|d| (Some(d.cause), d.evidence)).unwrap_or_default();
        Ok(Verdict {
            action,
            confidence,
            method: context.analysis_method.unwrap_or_default(),
            fallback_reason,
            cause,
            evidence,
        })
    }

    fn show(&self) -> String {
        format!("{}/{}", self.cause.map(Cause::as_str).unwrap_or("-"), self.action)
    }
}

/// The model's own answer, before validation: its cause and action.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswer {
    pub cause: String,
    pub action: String,
    /// Cited lines the container never printed (the answer is refused).
    pub invented: usize,
}

/// One incident three ways.
#[derive(Debug, Clone)]
pub struct Row {
    pub incident: LlmIncident,
    pub rules: Verdict,
    /// The model alone: its answer, or why there is none (no answer, not JSON).
    pub model: Result<ModelAnswer, String>,
    pub together: Verdict,
    /// The model's answer time.
    pub latency: Option<Duration>,
    /// What must hold whatever the model says, and did not.
    pub problems: Vec<String>,
}

impl Row {
    pub fn rules_right(&self) -> (bool, bool) {
        (self.rules.cause == Some(self.incident.cause), self.rules.action == self.incident.action())
    }

    pub fn model_right(&self) -> (bool, bool) {
        match &self.model {
            Ok(m) => (m.cause == self.incident.cause.as_str(), m.action == self.incident.action().as_str()),
            Err(_) => (false, false),
        }
    }

    pub fn together_right(&self) -> (bool, bool) {
        (self.together.cause == Some(self.incident.cause), self.together.action == self.incident.action())
    }

    /// Whether the model's answer would make the incident worse, had
    /// nothing checked it.
    pub fn model_worse(&self) -> bool {
        self.model
            .as_ref()
            .ok()
            .and_then(|m| serde_json::from_value(Value::String(m.action.clone())).ok())
            .is_some_and(|a| self.incident.made_worse(a))
    }
}

/// Every incident three ways, against the OpenAI-compatible server at
/// `base_url` (ending in `/v1`) serving `model`; `conn`: a Redis for the
/// analyzer's history, cache and budget.
pub async fn evaluate(conn: &Connection, base_url: &str, model: &str, timeout: Duration) -> Vec<Row> {
    let config = Config { require_attested_alerts: false, ..Config::default() };
    let llm = LlmConfig {
        provider: Provider::OpenAi,
        model: model.to_owned(),
        base_url: base_url.trim_end_matches('/').to_owned(),
        // Local servers take any key.
        api_key: Secret::new("sk-local"),
    };
    let client = LlmClient::new(http_client(timeout).expect("HTTP client"), &llm, timeout);
    let allowed = config.allowed_for(None);
    let together = Analyzer::new(
        Config { llm: Some(llm), ai_timeout: timeout, ..config.clone() },
        Published::default(),
        conn.clone(),
        Some(Recording::new(client)),
    );
    let rules: Analyzer<_, NoLlm> = Analyzer::new(config, Published::default(), conn.clone(), None);
    let run = format!("{:x}", std::process::id());
    let mut rows = Vec::new();
    for incident in all() {
        let rules_verdict = decide(&rules, &alert(&format!("rules-{run}-{}", incident.name), &incident)).await;
        let recording = together.llm().expect("a model");
        let asked = recording.calls().len();
        let together_verdict = decide(&together, &alert(&format!("model-{run}-{}", incident.name), &incident)).await;
        let calls = recording.calls();
        rows.push(judge(incident, rules_verdict, together_verdict, &calls[asked..], &allowed));
    }
    rows
}

async fn decide<L: Llm>(analyzer: &Analyzer<Published, L>, body: &str) -> Verdict {
    let record = batch::record("1-0", EventKind::HealthAlert.stream(), body.to_owned(), 1);
    let response = analyzer.handle(batch::event(vec![record])).await;
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");
    let published = std::mem::take(&mut *analyzer.publisher().0.lock().unwrap_or_else(|p| p.into_inner()));
    assert_eq!(published.len(), 1, "one decision per alert: {published:?}");
    Verdict::of(&published[0]).expect("a decision")
}

/// The collector's alert for a container that exited with the incident's
/// code after printing its log (stderr), as `health_alert` JSON.
fn alert(container: &str, i: &LlmIncident) -> String {
    let now = chrono::Utc::now();
    let lines: Vec<Value> = i.log.iter().map(|l| json!({"stream": "stderr", "line": l})).collect();
    json!({
        "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "agent": "HemoStat-Monitor",
        "type": "health_alert",
        "data": {
            "container": container,
            "host": "llm-eval",
            "image": format!("acme/{}:1", i.name),
            "container_id": "0123456789ab",
            "issues": ["non_zero_exit detected"],
            "metrics": {"name": container, "status": "exited", "cpu_pct": 0.0, "memory_pct": 3.0,
                "timestamp": now.format("%Y-%m-%dT%H:%M:%S").to_string()},
            "anomalies": [{"type": "non_zero_exit", "severity": "high", "threshold": 0.0, "actual": i.exit_code}],
            "exit_code": i.exit_code,
            "evidence": {
                "logs": {"lines": lines, "tail": 50, "count": i.log.len()},
                "state": {"status": "exited", "exit_code": i.exit_code, "oom_killed": false, "restart_count": 0},
            },
        }
    })
    .to_string()
}

/// The row, and what must hold whatever the model said.
fn judge(incident: LlmIncident, rules: Verdict, together: Verdict, calls: &[Call], allowed: &[Action]) -> Row {
    let mut problems = Vec::new();
    let call = match calls {
        [call] => Some(call),
        _ => {
            problems.push(format!("the model was asked {} times, not once", calls.len()));
            None
        }
    };
    let model = match call.map(|c| &c.answer) {
        None => Err("not asked".to_owned()),
        // The model's own failure (an answer cut off at the server's
        // token limit while looping, a refusal): the rules decide.
        Some(Err(("llm_invalid_response" | "llm_refusal", e))) => Err(e.clone()),
        Some(Err((_, e))) => {
            problems.push(format!("the server did not answer: {e}"));
            Err(e.clone())
        }
        Some(Ok(raw)) => model_answer(raw, allowed, incident.log).inspect_err(|e| problems.push(e.clone())),
    };
    match (together.method.as_str(), together.fallback_reason.as_deref()) {
        ("llm", None) => {
            for line in &together.evidence {
                if !incident.log.iter().any(|l| l.contains(line.as_str())) {
                    problems.push(format!("the decision cites {line:?}, which the container never printed"));
                }
            }
        }
        ("rule_fallback", Some("llm_invalid_response" | "llm_overruled")) => {
            if together.action != rules.action {
                problems.push(format!("fell back to the rules, yet {} is not their {}", together.action, rules.action));
            }
        }
        (method, reason) => {
            problems.push(format!("decided by {method} ({reason:?}), not by the model or a fallback from its answer"))
        }
    }
    if incident.made_worse(together.action) && !incident.made_worse(rules.action) {
        problems.push(format!("the model made it worse: {} (the rules: {})", together.action, rules.action));
    }
    Row { incident, rules, model, together, latency: call.map(|c| c.elapsed), problems }
}

/// The answer as structured output must have it: one bare JSON object with
/// exactly the schema's keys, a cause and an action from their lists.
fn model_answer(raw: &str, allowed: &[Action], log: &[&str]) -> Result<ModelAnswer, String> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
        return Err(format!("the answer is not a bare JSON object (was the schema honoured?): {raw:?}"));
    };
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != SCHEMA_KEYS {
        return Err(format!("the answer's keys {keys:?} are not the schema's: {raw:?}"));
    }
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (cause, action) = (text("cause"), text("action"));
    if !Cause::ALL.iter().any(|c| c.as_str() == cause) {
        return Err(format!("cause {cause:?} is not one of the schema's: {raw:?}"));
    }
    if action != "none" && !allowed.iter().any(|a| a.as_str() == action) {
        return Err(format!("action {action:?} is not one of the schema's: {raw:?}"));
    }
    let cited = o.get("evidence").and_then(Value::as_array).cloned().unwrap_or_default();
    let invented = cited
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty() && !log.iter().any(|l| l.contains(c)))
        .count();
    Ok(ModelAnswer { cause, action, invented })
}

/// The rows as a Markdown table, then the totals: accuracy (cause, action)
/// and made-worse count for the rules alone, the model alone and the two
/// together, and the model's latency.
pub fn table(rows: &[Row]) -> String {
    let mark =
        |(cause, action): (bool, bool)| format!("{}{}", if cause { "C" } else { "-" }, if action { "A" } else { "-" });
    let mut out = String::from(
        "| incident | expected | rules alone | model alone | together | model latency |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let model = match &r.model {
            Ok(m) if m.invented > 0 => {
                format!("{}/{} {}, {} invented line(s)", m.cause, m.action, mark(r.model_right()), m.invented)
            }
            Ok(m) => format!("{}/{} {}", m.cause, m.action, mark(r.model_right())),
            Err(_) => "no valid answer --".into(),
        };
        let how = match r.together.fallback_reason.as_deref() {
            Some(reason) => format!(" (rules: {reason})"),
            None => String::new(),
        };
        out.push_str(&format!(
            "| {} | {}/{} | {} {} | {model} | {}{how} {} | {} |\n",
            r.incident.name,
            r.incident.cause,
            r.incident.action(),
            r.rules.show(),
            mark(r.rules_right()),
            r.together.show(),
            mark(r.together_right()),
            r.latency.map(|l| format!("{:.1} s", l.as_secs_f64())).unwrap_or_else(|| "-".into()),
        ));
    }
    let n = rows.len();
    let share = |k: usize| if n == 0 { 0.0 } else { 100.0 * k as f64 / n as f64 };
    let line = |name: &str, right: &dyn Fn(&Row) -> (bool, bool), worse: usize| {
        let causes = rows.iter().filter(|r| right(r).0).count();
        let actions = rows.iter().filter(|r| right(r).1).count();
        format!(
            "{name:<12} cause {causes}/{n} ({:.0} %), action {actions}/{n} ({:.0} %), made worse {worse}\n",
            share(causes),
            share(actions)
        )
    };
    out.push('\n');
    out.push_str(&line(
        "rules alone",
        &Row::rules_right,
        rows.iter().filter(|r| r.incident.made_worse(r.rules.action)).count(),
    ));
    out.push_str(&line("model alone", &Row::model_right, rows.iter().filter(|r| r.model_worse()).count()));
    out.push_str(&line(
        "together",
        &Row::together_right,
        rows.iter().filter(|r| r.incident.made_worse(r.together.action)).count(),
    ));
    let mut ms: Vec<i64> = rows.iter().filter_map(|r| r.latency).map(|l| l.as_millis() as i64).collect();
    ms.sort_unstable();
    let p = |q| {
        crate::bench::percentile(&ms, q).map(|v| format!("{:.1} s", v as f64 / 1000.0)).unwrap_or_else(|| "-".into())
    };
    let accepted = rows.iter().filter(|r| r.together.method == "llm").count();
    out.push_str(&format!(
        "model latency: p50 {}, max {} over {} answers; the model's verdict decided {accepted} of {n} (the rest fell back to the rules)\n",
        p(0.5),
        p(1.0),
        ms.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_incident_has_a_log() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|i| i.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|i| !i.log.is_empty() && i.exit_code != 0));
        // Both kinds, so a model that always restarts (or never does) is caught.
        assert!(all.iter().any(|i| i.restart_helps) && all.iter().any(|i| !i.restart_helps));
        let worse = all.iter().find(|i| !i.restart_helps).unwrap();
        assert!(worse.made_worse(Action::Restart) && !worse.made_worse(Action::None));
    }
}
