//! The incident suite: containers that really fail, each in one way, on the
//! test engine, with the cause and the action an engineer paged for them
//! would settle on, and the actions that would make them worse.
//!
//! One definition, two users: `tests/tests/incidents.rs` asserts every
//! incident's cause and action through the whole stack, and
//! `hemostat-bench-incidents` prints the same runs as a table with the
//! rules path's accuracy and an LLM-path run.
//!
//! Every container prints what real software prints when it fails that way
//! (Node's `EADDRINUSE`, Python's `OSError: [Errno 28]`, Go's panic with its
//! goroutine trace, Java's `OutOfMemoryError`), after the failure really
//! happened: the port really is bound twice, the tmpfs really is full, the
//! connection really is refused, the kernel really OOM-kills.
//!
//! The suite's collector runs with short windows ([`stack_env`]): high CPU
//! or memory sustained for 3 s is an alert (10 s by default), a leak is fit
//! over 8 samples, so the whole suite takes well under a minute.
//!
//! Two incidents must end with nothing done ([`Expect::Quiet`]): a CPU
//! spike shorter than the sustain window (the collector sees it, its
//! chart shows it, and it raises no alert) and an operator's `docker stop`
//! (the collector recognises the requested stop). The runner tells by
//! waiting the incident's window after the provocation and finding no
//! `remediation_needed` for the container (a `false_alarm` is fine), and
//! by checking the incident really happened (the chart's peak, the
//! container's exit), so nothing passes by not happening.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_protocol::{
    Action, ContainerRef, EventKind,
    connection::Connection,
    diagnosis::Cause,
    event::{AnomalyKind, FalseAlarm, HealthAlert, IncidentContext, RemediationNeeded},
    keys,
    series::SeriesSample,
};
use redis::AsyncCommands;

use crate::{container::ContainerSpec, events::stream_events, stack::StackEnv};

const MIB: i64 = 1024 * 1024;
/// The suite collector's sustain window (high CPU or memory this long is
/// an alert).
pub const SUSTAIN_SECONDS: u64 = 3;
/// The CPU threshold the suite's collector alerts above: below the default
/// 85, so the burner still crosses it when other work shares the 2 cores.
pub const CPU_THRESHOLD: f64 = 70.0;

/// The collector settings the suite runs with, on top of the stack's.
pub fn stack_env() -> StackEnv {
    StackEnv::default()
        .collector("HEMOSTAT_SUSTAIN_SECONDS", format!("{SUSTAIN_SECONDS}s"))
        .collector("THRESHOLD_CPU_PERCENT", CPU_THRESHOLD.to_string())
        // Re-armed one second after the value fell back, so a burner that
        // resumes after its restart is seen again within the suite.
        .collector("HEMOSTAT_CLEAR_SECONDS", "1s")
        // A leak is fit over 8 one-second samples (2 minutes by default).
        .collector("HEMOSTAT_LEAK_WINDOW", "8s")
        // Restarts are quick: the suite's processes stop at once.
        .collector("HEMOSTAT_STOP_TIMEOUT", "1s")
        .collector("HEMOSTAT_VERIFY_SECONDS", "1s")
}

/// Which of a container's alerts a step judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// The container's first alert.
    First,
    /// The `n`th alert (1-based) carrying this anomaly.
    Nth(AnomalyKind, usize),
    /// The `n`th alert (1-based) about an exit, whatever its code.
    NthExit(usize),
}

/// What the suite expects of one incident, step by step.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// A decision on the judged alert: its diagnosis's cause and the action
    /// (`none` for a `false_alarm`).
    Decision { judge: Judge, cause: Cause, action: Action },
    /// A verdict on the judged alert: its cause, and whether it is
    /// restarted (exactly when a restart can help; any other action for a
    /// failure a restart cannot fix).
    Verdict { judge: Judge, cause: Cause, restart: bool },
    /// Nothing to fix: no `remediation_needed` within `window` after the
    /// provocation (a `false_alarm`, or no alert at all), and proof that
    /// the incident happened.
    Quiet { window: Duration, proof: Proof },
}

/// What shows a quiet incident really happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Proof {
    /// The collector's chart of the container peaked above this CPU %.
    CpuPeak(f64),
    /// The container is exited (after the operator's stop).
    Exited,
}

/// One expectation and the actions that would make the incident worse.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub expect: Expect,
    pub worse: &'static [Action],
}

/// How the test provokes the failure, beyond starting the container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Provoke {
    /// The container fails by itself.
    Nothing,
    /// An operator runs `docker stop` once the container printed this.
    OperatorStop { after: &'static str },
    /// The container fails this many times in all: after each exit but the
    /// last, once HemoStat decided, it is started again if HemoStat did not
    /// (as an operator or a deploy retrying would).
    Repeat(usize),
}

/// How an incident's container is made.
pub(crate) enum Spec {
    /// Written in Rust, in [`all`].
    Code(fn() -> ContainerSpec),
    /// Written as data ([`crate::incident_files`]).
    Written(crate::incident_files::IncidentFile),
}

/// One incident.
pub struct Incident {
    pub name: String,
    /// What happens, for the table's legend.
    pub what: String,
    pub(crate) spec: Spec,
    pub provoke: Provoke,
    pub steps: Vec<Step>,
    /// How long its decisions may take to arrive, from the container's start.
    pub deadline: Duration,
}

impl Incident {
    /// The container, labelled for the running test (call it from the
    /// test's own thread: the label is the thread's test name).
    pub fn spec(&self) -> ContainerSpec {
        match &self.spec {
            Spec::Code(spec) => spec(),
            Spec::Written(file) => file.spec(),
        }
    }
}

/// Actions that keep a service down or remove it, for incidents a restart
/// fixes (`cleanup` removes exited containers: the crashed one too).
const KEEPS_DOWN: &[Action] = &[Action::Stop, Action::Cleanup];
/// Actions that repeat or multiply a failure a restart cannot fix.
const REPEATS: &[Action] = &[Action::Restart, Action::ScaleUp];

fn decision(judge: Judge, cause: Cause, action: Action, worse: &'static [Action]) -> Step {
    Step { expect: Expect::Decision { judge, cause, action }, worse }
}

fn first(cause: Cause, action: Action, worse: &'static [Action]) -> Step {
    decision(Judge::First, cause, action, worse)
}

/// The suite: 17 incidents, 19 judged steps.
pub fn all() -> Vec<Incident> {
    use Action::{None as Nothing, Restart};
    let secs = Duration::from_secs;
    vec![
        Incident {
            name: "oom_kill".into(),
            what: "a loader outgrows its 16 MiB limit (no swap): the kernel OOM-kills it".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(r#"echo "loader: reading 2.1 GB training set into memory"; exec tail /dev/zero"#)
                    .memory_without_swap(16 * MIB)
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::OomKilled, Restart, KEEPS_DOWN)],
            deadline: secs(20),
        },
        Incident {
            name: "segfault".into(),
            what: "a native worker dies of SIGSEGV (exit 139)".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "encoder: processing frame 1024"; sh -c 'kill -SEGV $$'; rc=$?; [ "$rc" = 139 ] && echo "Segmentation fault (core dumped)" >&2; exit $rc"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::Segfault, Restart, KEEPS_DOWN)],
            deadline: secs(20),
        },
        Incident {
            name: "port_in_use".into(),
            what: "a second server binds a port another process of the container holds".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"nc -l -p 8080 >/dev/null & sleep 0.3
echo "Server starting on :8080"
if ! nc -l -p 8080 >/dev/null; then
  echo "Error: listen EADDRINUSE: address already in use :::8080" >&2
  echo "    at Server.setupListenHandle [as _listen2] (node:net:1817:16)" >&2
  exit 1
fi"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::PortInUse, Nothing, REPEATS)],
            deadline: secs(20),
        },
        Incident {
            name: "disk_full".into(),
            what: "a spooler fills its 1 MiB tmpfs, then dies writing".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "spooler: writing batches to /data"
while dd if=/dev/zero bs=64k count=1 2>/tmp/dd.err >> /data/spool.bin; do sleep 0.25; done
cat /tmp/dd.err >&2
echo "Traceback (most recent call last):" >&2
echo '  File "/app/spool.py", line 41, in flush' >&2
echo "OSError: [Errno 28] No space left on device" >&2
exit 1"#,
                )
                .tmpfs("/data", "size=1m")
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::DiskFull, Action::Cleanup, REPEATS)],
            deadline: secs(25),
        },
        Incident {
            name: "dependency_refused".into(),
            what: "an API cannot reach its database: the connection is refused, at every start".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "api: connecting to postgres at 127.0.0.1:5432"
if ! nc 127.0.0.1 5432 </dev/null; then
  echo 'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: Connection refused' >&2
  echo "	Is the server running on that host and accepting TCP/IP connections?" >&2
  exit 1
fi"#,
                )
            }),
            // The database may be starting or being recreated: restarted,
            // until the third refusal in ten minutes leaves it to a human
            // (started again, as a deploy would, when the gate holds a restart).
            provoke: Provoke::Repeat(3),
            steps: vec![
                first(Cause::DependencyUnreachable, Restart, &[Action::Stop, Action::Cleanup]),
                decision(Judge::NthExit(3), Cause::DependencyUnreachable, Nothing, REPEATS),
            ],
            deadline: secs(40),
        },
        Incident {
            name: "missing_config".into(),
            what: "a service starts without its configuration file".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "app: loading /etc/app/config.yaml"
if ! cat /etc/app/config.yaml >/dev/null; then
  echo "Error: ENOENT: no such file or directory, open '/etc/app/config.yaml'" >&2
  exit 1
fi"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::MissingFileOrConfig, Nothing, REPEATS)],
            deadline: secs(20),
        },
        Incident {
            name: "permission_denied".into(),
            what: "a service running as nobody cannot write its state file".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "app: writing pid file /app.pid"
if ! echo $$ > /app.pid; then
  echo "PermissionError: [Errno 13] Permission denied: '/app.pid'" >&2
  exit 1
fi"#,
                )
                .user("65534")
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::PermissionDenied, Nothing, REPEATS)],
            deadline: secs(20),
        },
        Incident {
            name: "health_timeout".into(),
            what: "a server accepts connections and never answers: its health check times out".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"trap 'exit 143' TERM
echo "Listening on 127.0.0.1:8080"
while :; do nc -l -p 8080 >/dev/null; done"#,
                )
                .healthcheck("wget -q -O- http://127.0.0.1:8080/health", 1000)
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::HealthCheckFailing, Restart, KEEPS_DOWN)],
            deadline: secs(25),
        },
        Incident {
            name: "cpu_burner".into(),
            what: "a busy loop pegs a core; restarted, it burns again".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"trap 'exit 143' TERM
echo "indexer: rebuilding search index"
while :; do :; done"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![
                decision(Judge::Nth(AnomalyKind::HighCpu, 1), Cause::CpuBurn, Restart, &[Action::Stop]),
                // A restart did not help: restarting again only drops work.
                decision(
                    Judge::Nth(AnomalyKind::HighCpu, 2),
                    Cause::CpuBurn,
                    Nothing,
                    &[Action::Restart, Action::Stop, Action::ScaleUp],
                ),
            ],
            deadline: secs(45),
        },
        Incident {
            name: "memory_leak".into(),
            what: "a cache grows 1 MiB every 250 ms toward its 48 MiB limit".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"trap 'exit 143' TERM
n=0
while :; do
  dd if=/dev/zero bs=256k count=1 2>/dev/null >> /dev/shm/cache.bin
  n=$((n+1)); [ $((n % 8)) = 0 ] && echo "cache: $((n / 4)) MiB in $((n * 512)) entries"
  sleep 0.06
done"#,
                )
                .memory_without_swap(48 * MIB)
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::MemoryLeak, Restart, &[Action::Stop])],
            deadline: secs(30),
        },
        Incident {
            name: "crash_loop".into(),
            what: "a worker exits 1 at once, restarted by Docker's restart policy again and again".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "worker: starting"; echo "Error: worker 1 exited with status 1" >&2; exit 1"#,
                )
                .restart_policy(RestartPolicyNameEnum::ALWAYS)
            }),
            provoke: Provoke::Nothing,
            steps: vec![decision(Judge::Nth(AnomalyKind::ExcessiveRestarts, 1), Cause::CrashLoop, Nothing, REPEATS)],
            deadline: secs(30),
        },
        Incident {
            name: "clean_exit".into(),
            what: "a one-shot migration finishes (exit 0) under restart policy always".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(r#"echo "migrate: applied 3 migrations, schema at version 42"; exit 0"#)
                    .restart_policy(RestartPolicyNameEnum::ALWAYS)
            }),
            provoke: Provoke::Nothing,
            steps: vec![decision(Judge::Nth(AnomalyKind::ExcessiveRestarts, 1), Cause::CleanExit, Nothing, REPEATS)],
            deadline: secs(30),
        },
        Incident {
            name: "transient_spike".into(),
            what: "5 s after start (once the collector samples it, also on a loaded machine), a 2 s CPU burst on two threads, shorter than the sustain window; then idle".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"trap 'exit 143' TERM
sleep 5
echo "report: rendering monthly report"
timeout 2 sh -c 'while :; do :; done' &
timeout 2 sh -c 'while :; do :; done'
wait
echo "report: done"
while :; do sleep 0.2; done"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![Step {
                expect: Expect::Quiet {
                    window: Duration::from_secs(SUSTAIN_SECONDS + 11),
                    // Proof the burst registered, well above idle (under
                    // 1 %): on a loaded 2-core machine (the suite's own
                    // burners, other suites) it may get a tenth of a core.
                    proof: Proof::CpuPeak(5.0),
                },
                worse: &[Action::Restart, Action::Stop, Action::ScaleUp],
            }],
            deadline: secs(20),
        },
        Incident {
            name: "operator_stop".into(),
            what: "an operator runs docker stop on a healthy service".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"trap 'echo "Received SIGTERM, shutting down"; exit 143' TERM
echo "service ready"
while :; do sleep 0.2; done"#,
                )
            }),
            provoke: Provoke::OperatorStop { after: "service ready" },
            steps: vec![Step {
                expect: Expect::Quiet { window: Duration::from_secs(6), proof: Proof::Exited },
                worse: &[Action::Restart, Action::Start, Action::ScaleUp],
            }],
            deadline: secs(20),
        },
        Incident {
            name: "go_panic".into(),
            what: "a Go service dereferences a nil pointer and panics with its goroutine trace".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo '2026/12/02 07:00:00 listening on :8080'
cat >&2 <<'EOF'
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b2c1a]

goroutine 42 [running]:
main.(*Handler).ServeHTTP(0x0, {0x7f3c20, 0xc0001a2000}, 0xc000190100)
	/src/app/handler.go:57 +0x3a
net/http.serverHandler.ServeHTTP({0xc00009c0f0?}, {0x7f3c20?, 0xc0001a2000?}, 0x6?)
	/usr/local/go/src/net/http/server.go:3142 +0x8e
EOF
exit 2"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::PanicOrException, Restart, KEEPS_DOWN)],
            deadline: secs(20),
        },
        Incident {
            name: "java_heap".into(),
            what: "a JVM runs out of heap and exits".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "INFO  Started ReportService in 4.2 seconds"
cat >&2 <<'EOF'
Exception in thread "main" java.lang.OutOfMemoryError: Java heap space
	at java.base/java.util.Arrays.copyOf(Arrays.java:3537)
	at com.example.report.Aggregator.collect(Aggregator.java:88)
EOF
exit 1"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::OutOfMemoryInApp, Restart, KEEPS_DOWN)],
            deadline: secs(20),
        },
        Incident {
            name: "app_error".into(),
            what: "a consumer gives up on a stalled queue and exits 3 for its supervisor".into(),
            spec: Spec::Code(|| {
                ContainerSpec::shell(
                    r#"echo "INFO  consumer: 4 workers started"
echo "ERROR consumer: no progress for 30s on partition 7, exiting for a clean restart" >&2
exit 3"#,
                )
            }),
            provoke: Provoke::Nothing,
            steps: vec![first(Cause::AppError, Restart, KEEPS_DOWN)],
            deadline: secs(20),
        },
    ]
}

/// One incident run on the LLM path: what the fake model answers (as
/// OpenAI's Chat Completions would), the line it cites, and what the events
/// must then say.
#[derive(Debug, Clone, Copy)]
pub struct LlmRun {
    pub incident: &'static str,
    /// The model's answer text.
    pub answer: &'static str,
    /// The log line the container printed, which the prompt must carry and
    /// the answer cites.
    pub evidence: &'static str,
    pub cause: Cause,
    pub action: Action,
}

/// The incidents the LLM path is shown on. The model's `root_cause`
/// starts with `fake model:`, so the events show whose diagnosis they carry.
pub fn llm_runs() -> [LlmRun; 2] {
    [
        LlmRun {
            incident: "port_in_use",
            answer: r#"{"cause": "port_in_use", "root_cause": "fake model: another process in the container holds port 8080", "action": "none", "confidence": 0.9, "evidence": ["Error: listen EADDRINUSE: address already in use :::8080"], "recommendation": "Stop the other listener or move the server to another port."}"#,
            evidence: "Error: listen EADDRINUSE: address already in use :::8080",
            cause: Cause::PortInUse,
            action: Action::None,
        },
        LlmRun {
            incident: "go_panic",
            answer: r#"{"cause": "panic_or_exception", "root_cause": "fake model: nil pointer dereference in Handler.ServeHTTP", "action": "restart", "confidence": 0.88, "evidence": ["panic: runtime error: invalid memory address or nil pointer dereference"], "recommendation": "Fix the nil check at handler.go:57."}"#,
            evidence: "panic: runtime error: invalid memory address or nil pointer dereference",
            cause: Cause::PanicOrException,
            action: Action::Restart,
        },
    ]
}

/// A decision the analyzer published about a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `remediation_needed` or `false_alarm`.
    pub kind: EventKind,
    /// The action; `none` for a `false_alarm`.
    pub action: Action,
    pub reason: String,
    pub context: IncidentContext,
    /// When Redis took the decision, epoch ms.
    pub at_ms: u64,
}

impl Decision {
    pub fn cause(&self) -> Option<Cause> {
        self.context.diagnosis.as_ref().map(|d| d.cause)
    }
}

/// What happened to one step of an incident.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub incident: String,
    /// `name`, or `name#2` for an incident's second step.
    pub label: String,
    pub step: Step,
    /// The judged decision; for a quiet step, the first `remediation_needed`
    /// (which is wrong) or the first `false_alarm`.
    pub decision: Option<Decision>,
    /// The judged alert's `detected_at` to the decision, ms.
    pub detection_to_decision_ms: Option<i64>,
    /// Alerts the container raised in all.
    pub alerts: usize,
    /// Why the step is not judged correct, beyond a wrong cause or action
    /// (no decision in time, the quiet incident did not happen).
    pub problem: Option<String>,
}

impl Outcome {
    pub fn action(&self) -> Option<Action> {
        self.decision.as_ref().map(|d| d.action)
    }

    pub fn cause(&self) -> Option<Cause> {
        self.decision.as_ref().and_then(Decision::cause)
    }

    /// Cause and action as expected (for a quiet step: nothing done).
    pub fn correct(&self) -> bool {
        if self.problem.is_some() {
            return false;
        }
        match &self.step.expect {
            Expect::Decision { cause, action, .. } => self.cause() == Some(*cause) && self.action() == Some(*action),
            Expect::Verdict { .. } => self.cause_correct() && self.action_correct(),
            Expect::Quiet { .. } => self.action().is_none_or(|a| a == Action::None),
        }
    }

    /// The diagnosed cause is the expected one (a quiet step has none).
    pub fn cause_correct(&self) -> bool {
        match &self.step.expect {
            Expect::Decision { cause, .. } | Expect::Verdict { cause, .. } => {
                self.problem.is_none() && self.cause() == Some(*cause)
            }
            Expect::Quiet { .. } => self.correct(),
        }
    }

    /// The action is right: the expected one, or for a verdict, a restart
    /// exactly when one can help.
    pub fn action_correct(&self) -> bool {
        if self.problem.is_some() {
            return false;
        }
        match &self.step.expect {
            Expect::Decision { action, .. } => self.action() == Some(*action),
            Expect::Verdict { restart, .. } => self.action().is_some_and(|a| (a == Action::Restart) == *restart),
            Expect::Quiet { .. } => self.correct(),
        }
    }

    /// The action taken is one that makes the incident worse.
    pub fn made_worse(&self) -> bool {
        self.action().is_some_and(|a| self.step.worse.contains(&a))
    }

    pub fn expected(&self) -> String {
        match &self.step.expect {
            Expect::Decision { cause, action, .. } => format!("{cause} / {action}"),
            Expect::Verdict { cause, restart: true, .. } => format!("{cause} / restart"),
            Expect::Verdict { cause, restart: false, .. } => format!("{cause} / not restart"),
            Expect::Quiet { .. } => "nothing done".into(),
        }
    }

    pub fn diagnosed(&self) -> String {
        match (&self.decision, &self.problem) {
            (Some(d), _) => {
                let cause = d.cause().map(|c| c.to_string()).unwrap_or_else(|| "(no diagnosis)".into());
                let kind = if d.kind == EventKind::FalseAlarm { " (false_alarm)" } else { "" };
                format!("{cause} / {}{kind}", d.action)
            }
            (None, Some(p)) => p.clone(),
            (None, None) if self.alerts == 0 => "no alert".into(),
            (None, None) => format!("no decision ({} alerts)", self.alerts),
        }
    }

    /// One line of the table.
    pub fn row(&self) -> String {
        let ms = self.detection_to_decision_ms.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
        let method = self.decision.as_ref().and_then(|d| d.context.analysis_method.clone()).unwrap_or_default();
        format!(
            "| {} | {} | {} | {} | {} | {} | {ms} |",
            self.label,
            self.expected(),
            self.diagnosed(),
            if self.correct() { "yes" } else { "NO" },
            if self.made_worse() { "WORSE" } else { "no" },
            if method.is_empty() { "-" } else { &method },
        )
    }
}

/// The table's header, for [`Outcome::row`].
pub const TABLE_HEADER: &str = "| incident | expected cause / action | diagnosed cause / action | correct | made worse | method | detection to diagnosis (ms) |\n|---|---|---|---|---|---|---|";

/// The container's alerts from this host, oldest first.
async fn alerts(conn: &mut Connection, host: &str, container: &str) -> Vec<HealthAlert> {
    stream_events::<HealthAlert>(conn, EventKind::HealthAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.host == host && a.container == container)
        .collect()
}

/// Every decision about the container, oldest first.
pub async fn decisions(conn: &mut Connection, host: &str, container: &str) -> Vec<Decision> {
    let mut out: Vec<Decision> = stream_events::<RemediationNeeded>(conn, EventKind::RemediationNeeded)
        .await
        .into_iter()
        .filter(|(_, d)| d.host == host && d.container == container)
        .map(|(at_ms, d)| Decision {
            kind: EventKind::RemediationNeeded,
            action: d.action,
            reason: d.reason,
            context: d.context,
            at_ms,
        })
        .collect();
    out.extend(
        stream_events::<FalseAlarm>(conn, EventKind::FalseAlarm)
            .await
            .into_iter()
            .filter(|(_, d)| d.host == host && d.container == container)
            .map(|(at_ms, d)| Decision {
                kind: EventKind::FalseAlarm,
                action: Action::None,
                reason: d.reason,
                context: d.context,
                at_ms,
            }),
    );
    out.sort_by_key(|d| d.at_ms);
    out
}

fn detected_ms(detected_at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(detected_at).ok().map(|t| t.timestamp_millis())
}

/// The judged alert, and the decision on it once published (matched by
/// the alert's `detected_at`, which the decision carries).
async fn judged(
    conn: &mut Connection,
    host: &str,
    container: &str,
    judge: Judge,
) -> (usize, Option<(HealthAlert, Option<Decision>)>) {
    let all = alerts(conn, host, container).await;
    let alert = match judge {
        Judge::First => all.first(),
        Judge::Nth(kind, n) => {
            all.iter().filter(|a| a.anomalies.iter().any(|x| x.kind == kind)).nth(n.saturating_sub(1))
        }
        Judge::NthExit(n) => all.iter().filter(|a| a.exit_code.is_some()).nth(n.saturating_sub(1)),
    };
    let Some(alert) = alert.cloned() else { return (all.len(), None) };
    let decision = decisions(conn, host, container)
        .await
        .into_iter()
        .find(|d| d.context.detected_at.is_some() && d.context.detected_at == alert.detected_at);
    (all.len(), Some((alert, decision)))
}

/// Runs one started incident to its outcomes: provokes it, then waits for
/// each step's decision (or, for a quiet step, through its window).
pub async fn run(incident: &Incident, container: &crate::TestContainer, conn: &Connection, host: &str) -> Vec<Outcome> {
    let started = tokio::time::Instant::now();
    let deadline = started + incident.deadline;
    let mut conn = conn.clone();
    match incident.provoke {
        Provoke::Nothing => {}
        Provoke::OperatorStop { after } => {
            container.wait_for_log(after, Duration::from_secs(10)).await;
            container.stop(5).await;
        }
        Provoke::Repeat(exits) => {
            for n in 1..exits {
                let mut decided = None;
                while decided.is_none() && tokio::time::Instant::now() < deadline {
                    if let (_, Some((_, Some(d)))) = judged(&mut conn, host, container.name(), Judge::NthExit(n)).await
                    {
                        decided = Some(d.action);
                    } else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                // A restart HemoStat decided is waited for (the gate may
                // still refuse it); starting it too would kill the restarted
                // process and add an exit of its own.
                let mut waited = Duration::ZERO;
                if decided == Some(Action::Restart) {
                    while waited < Duration::from_secs(5) && container.state().await.running != Some(true) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        waited += Duration::from_millis(200);
                    }
                }
                if container.state().await.running != Some(true) {
                    let _ = container.docker().start_container(container.id(), None).await;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (i, step) in incident.steps.iter().enumerate() {
        let label = if i == 0 { incident.name.to_owned() } else { format!("{}#{}", incident.name, i + 1) };
        let mut outcome = Outcome {
            incident: incident.name.clone(),
            label,
            step: step.clone(),
            decision: None,
            detection_to_decision_ms: None,
            alerts: 0,
            problem: None,
        };
        match &step.expect {
            Expect::Decision { judge, .. } | Expect::Verdict { judge, .. } => loop {
                let (count, found) = judged(&mut conn, host, container.name(), *judge).await;
                outcome.alerts = count;
                if let Some((alert, Some(d))) = found {
                    outcome.detection_to_decision_ms =
                        alert.detected_at.as_deref().and_then(detected_ms).map(|at| d.at_ms as i64 - at);
                    outcome.decision = Some(d);
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    outcome.problem = Some(format!("no decision within {:?} ({count} alerts)", incident.deadline));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            Expect::Quiet { window, proof } => {
                if *proof == Proof::Exited {
                    // Checked at once: a cleanup elsewhere in the suite may
                    // remove exited containers later.
                    let state = container.state().await;
                    if state.status != Some(ContainerStateStatusEnum::EXITED) {
                        outcome.problem = Some(format!("not stopped: {:?}", state.status));
                    }
                }
                tokio::time::sleep(*window).await;
                outcome.alerts = alerts(&mut conn, host, container.name()).await.len();
                let all = decisions(&mut conn, host, container.name()).await;
                outcome.decision =
                    all.iter().find(|d| d.kind == EventKind::RemediationNeeded).or_else(|| all.first()).cloned();
                if let Proof::CpuPeak(min) = proof {
                    let series: Vec<String> = conn
                        .lrange(keys::series(&ContainerRef::new(host, container.name())), 0, -1)
                        .await
                        .unwrap_or_default();
                    let peak = series
                        .iter()
                        .filter_map(|s| serde_json::from_str::<SeriesSample>(s).ok())
                        .map(|s| s.cpu)
                        .fold(0.0, f64::max);
                    if peak <= *min && outcome.problem.is_none() {
                        outcome.problem = Some(format!("no spike seen: CPU peaked at {peak:.1}%"));
                    }
                }
            }
        }
        out.push(outcome);
    }
    out
}

/// Starts every incident's container at once (from the calling task, so
/// they carry its test's label), runs them concurrently, and returns the
/// outcomes in suite order with the containers (dropped: removed).
pub async fn run_all(docker: &Docker, conn: &Connection, host: &str, incidents: &[Incident]) -> Vec<Outcome> {
    use futures::StreamExt;
    let runs = incidents.iter().map(|i| async move {
        let container = i.spec().start(docker).await;
        run(i, &container, conn, host).await
    });
    // The written sets are 150-odd containers: all at once, two cores spend
    // more time starting them than HemoStat spends deciding.
    futures::stream::iter(runs).buffered(AT_ONCE).collect::<Vec<_>>().await.into_iter().flatten().collect()
}

/// Incidents run at once by [`run_all`], in order.
const AT_ONCE: usize = 40;

/// Correct steps out of all, and the share.
pub fn accuracy(outcomes: &[Outcome]) -> (usize, usize, f64) {
    let correct = outcomes.iter().filter(|o| o.correct()).count();
    let total = outcomes.len();
    (correct, total, if total == 0 { 0.0 } else { correct as f64 / total as f64 })
}

/// The table, one row per step, then the accuracy line.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(TABLE_HEADER);
    for o in outcomes {
        out.push('\n');
        out.push_str(&o.row());
    }
    let (correct, total, share) = accuracy(outcomes);
    let worse = outcomes.iter().filter(|o| o.made_worse()).count();
    out.push_str(&format!(
        "\n\naccuracy: {correct}/{total} steps correct ({:.0} %), {worse} made worse",
        share * 100.0
    ));
    out
}

/// A set's figures in one paragraph: cause and action accuracy, made
/// worse, and detection to diagnosis p50/p99.
pub fn summary(set: &str, outcomes: &[Outcome]) -> String {
    let total = outcomes.len();
    let share = |n: usize| if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 };
    let cause = outcomes.iter().filter(|o| o.cause_correct()).count();
    let action = outcomes.iter().filter(|o| o.action_correct()).count();
    let worse = outcomes.iter().filter(|o| o.made_worse()).count();
    let undecided = outcomes.iter().filter(|o| o.decision.is_none()).count();
    let mut ms: Vec<i64> = outcomes.iter().filter_map(|o| o.detection_to_decision_ms).collect();
    ms.sort_unstable();
    let p = |q| crate::bench::percentile(&ms, q).map_or("-".to_owned(), |v: i64| v.to_string());
    format!(
        "{set}: {total} incidents; action right {action}/{total} ({:.0} %), cause right {cause}/{total} ({:.0} %), \
         made worse {worse}, undecided {undecided}; detection to diagnosis p50 {} ms, p99 {} ms",
        share(action),
        share(cause),
        p(0.5),
        p(0.99)
    )
}
