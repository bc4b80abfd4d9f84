//! A storm: N containers on one engine crash (exit 1) at the same moment,
//! then something brings them back: HemoStat's whole stack, or Docker's own
//! restart policy. What the storm benchmark and its test share.
//!
//! "At once" is real: every container blocks opening a FIFO in a folder
//! they all bind-mount; the storm opens it for writing (each reader's open
//! returns and it blocks in `read`) and closes it, and every reader sees
//! end-of-file in the same instant and exits 1. A marker file written before
//! the trigger makes a container started again sleep instead of waiting, so
//! it stays up once healed.
//!
//! The figures come from the engine's own events (`die`, `start`, with
//! nanosecond times), read from a subscription opened before the trigger,
//! so watching does not load the engine being measured. A loaded engine
//! drops events for a subscriber that lags (moby's publisher gives each
//! 100 ms): containers the events leave incomplete are inspected
//! (`FinishedAt`, `StartedAt`) once few remain, and at the end.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bollard::{Docker, models::RestartPolicyNameEnum, query_parameters::EventsOptionsBuilder};
use futures::{StreamExt, stream};
use hemostat_protocol::{
    Command, EventKind,
    command::COMMAND_FIELD,
    event::{FalseAlarm, HealthAlert, RemediationComplete, RemediationStatus},
    keys,
};
use redis::{AsyncCommands, streams::StreamRangeReply};

use crate::{
    container::{ContainerSpec, TEST_LABEL, TestContainer},
    events::stream_events,
    temp_dir::TempDir,
};

/// Containers created or removed at once: the engine serialises most of
/// that work anyway, and more only queues in dockerd.
const SETUP_CONCURRENCY: usize = 8;

/// A healed container sleeps; one not yet crashed waits for the trigger.
const SCRIPT: &str = "[ -e /storm/crashed ] && exec sleep 1000000; \
touch /storm/ready.$(hostname); read x < /storm/go; exit 1";

/// Who brings the containers back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healer {
    /// No restart policy; HemoStat's collector watches them (the test
    /// label's value is the collector's selector).
    HemoStat,
    /// `--restart on-failure`, outside the collector's selector: Docker
    /// alone.
    RestartPolicy,
}

/// N containers waiting for one trigger; removed by [`Storm::remove`] (or
/// each on drop).
pub struct Storm {
    dir: TempDir,
    containers: Vec<TestContainer>,
    label: String,
    pub healer: Healer,
}

/// What became of a storm, from the engine's events.
#[derive(Debug, Clone, Default)]
pub struct StormOutcome {
    pub containers: usize,
    /// Containers whose first exit after the trigger had code 1.
    pub crashed: usize,
    /// First to last of those exits, ms: how "at once" the storm was.
    pub crash_spread_ms: f64,
    /// Per container, its exit to its first start after it, ms (sorted).
    pub heal_ms: Vec<f64>,
    /// The trigger to the last container's first start after its crash, ms;
    /// None when some crashed container never started again.
    pub all_running_ms: Option<f64>,
    /// Crashed and started again within the deadline.
    pub healed: usize,
    /// Names of crashed containers not started again within the deadline.
    pub lost: Vec<String>,
    /// Containers started more than once after their crash.
    pub restarted_twice: usize,
    /// Containers running when the watch ended (one list call).
    pub running_at_end: usize,
    /// Per container name: exit and first start after it (epoch ms).
    pub times: HashMap<String, (f64, Option<f64>)>,
    /// Containers whose exit or start came from inspect, the engine having
    /// dropped the event.
    pub from_inspect: usize,
}

/// A container's last exit and current start as inspect says (epoch ms).
#[derive(Debug, Clone, Copy)]
struct Inspected {
    finished_ms: f64,
    started_ms: f64,
    running: bool,
}

impl Storm {
    /// Starts `n` containers labelled `label` (the test label's value)
    /// that will heal as `healer` says, and waits until every one waits
    /// for the trigger.
    pub async fn start(docker: &Docker, n: usize, healer: Healer, label: &str) -> Storm {
        let dir = TempDir::new();
        let fifo = dir.0.join("go");
        let path = std::ffi::CString::new(fifo.to_str().expect("utf-8 temp path")).expect("no NUL");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        if unsafe { libc::mkfifo(path.as_ptr(), 0o666) } != 0 {
            panic!("mkfifo {}: {}", fifo.display(), std::io::Error::last_os_error());
        }
        let bind = format!("{}:/storm", dir.0.display());
        let spec = {
            let spec = ContainerSpec::shell(SCRIPT).label(TEST_LABEL, label).bind(bind);
            match healer {
                Healer::HemoStat => spec.restart_policy(RestartPolicyNameEnum::NO),
                Healer::RestartPolicy => spec.restart_policy(RestartPolicyNameEnum::ON_FAILURE),
            }
        };
        let containers: Vec<TestContainer> =
            stream::iter(0..n).map(|_| spec.clone().start(docker)).buffer_unordered(SETUP_CONCURRENCY).collect().await;
        let storm = Storm { dir, containers, label: label.to_owned(), healer };
        let ready =
            crate::polling::wait_until(Duration::from_secs(60 + n as u64 / 2), || async { storm.ready() == n }).await;
        assert!(ready, "only {} of {n} storm containers reached the trigger", storm.ready());
        storm
    }

    fn ready(&self) -> usize {
        std::fs::read_dir(&self.dir.0)
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("ready.")).count())
            .unwrap_or(0)
    }

    pub fn names(&self) -> HashSet<String> {
        self.containers.iter().map(|c| c.name().to_owned()).collect()
    }

    /// Crashes every container at once and follows the engine's events
    /// until each crashed container has started again or `deadline` has
    /// passed since the trigger, then `settle` longer to see second
    /// restarts.
    pub async fn crash(&self, docker: &Docker, deadline: Duration, settle: Duration) -> StormOutcome {
        let events: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let since = epoch_ms() / 1000.0 - 1.0;
        let watcher = tokio::spawn(follow(docker.clone(), self.label.clone(), since, events.clone()));
        // Let the subscription open (it replays from `since` regardless).
        tokio::time::sleep(Duration::from_millis(300)).await;

        std::fs::write(self.dir.0.join("crashed"), b"").expect("writing the marker");
        let trigger_ms = pull_trigger(&self.dir.0.join("go")).await;
        let ids: HashMap<String, String> =
            self.containers.iter().map(|c| (c.id().to_owned(), c.name().to_owned())).collect();

        let started = Instant::now();
        let mut inspected = HashMap::new();
        let mut last_inspect = Instant::now();
        loop {
            let outcome = outcome(&ids, trigger_ms, &events.lock().unwrap_or_else(|p| p.into_inner()), &inspected);
            let incomplete = incomplete(&ids, &outcome);
            if incomplete.is_empty() || started.elapsed() >= deadline {
                break;
            }
            // Few left: look at them (events may have been dropped).
            if incomplete.len() <= (ids.len() / 10).max(3) && last_inspect.elapsed() >= Duration::from_secs(2) {
                inspect_into(docker, &incomplete, &mut inspected).await;
                last_inspect = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(settle).await;
        watcher.abort();
        let seen = events.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let incomplete = incomplete(&ids, &outcome(&ids, trigger_ms, &seen, &inspected));
        inspect_into(docker, &incomplete, &mut inspected).await;
        let mut outcome = outcome(&ids, trigger_ms, &seen, &inspected);
        outcome.running_at_end = self.running(docker).await;
        outcome
    }

    async fn running(&self, docker: &Docker) -> usize {
        let filters = HashMap::from([
            ("label", vec![format!("{TEST_LABEL}={}", self.label)]),
            ("status", vec!["running".to_owned()]),
        ]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default().filters(&filters).build();
        let ours: HashSet<&str> = self.containers.iter().map(TestContainer::id).collect();
        docker
            .list_containers(Some(options))
            .await
            .map(|list| list.iter().filter(|c| c.id.as_deref().is_some_and(|id| ours.contains(id))).count())
            .unwrap_or(0)
    }

    /// Removes every container (a few at a time).
    pub async fn remove(self) {
        let Storm { containers, dir, .. } = self;
        stream::iter(containers).for_each_concurrent(SETUP_CONCURRENCY, TestContainer::remove).await;
        drop(dir);
    }
}

/// Ids of containers not yet known to have crashed and started again.
fn incomplete(ids: &HashMap<String, String>, o: &StormOutcome) -> Vec<String> {
    ids.iter().filter(|(_, name)| !matches!(o.times.get(*name), Some((_, Some(_))))).map(|(id, _)| id.clone()).collect()
}

async fn inspect_into(docker: &Docker, ids: &[String], into: &mut HashMap<String, Inspected>) {
    let ms = |t: Option<&str>| {
        t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp_micros() as f64 / 1000.0)
    };
    for id in ids {
        let Ok(inspect) = docker.inspect_container(id, None).await else { continue };
        let Some(state) = inspect.state else { continue };
        let (Some(finished_ms), Some(started_ms)) = (ms(state.finished_at.as_deref()), ms(state.started_at.as_deref()))
        else {
            continue;
        };
        into.insert(id.clone(), Inspected { finished_ms, started_ms, running: state.running == Some(true) });
    }
}

/// Opens the FIFO for writing (every waiting reader's open returns), then
/// closes it: every reader reads end-of-file at once. Returns the moment
/// of the close, epoch ms.
async fn pull_trigger(fifo: &Path) -> f64 {
    let fifo = fifo.to_owned();
    tokio::task::spawn_blocking(move || {
        let writer = std::fs::OpenOptions::new().write(true).open(&fifo).expect("opening the trigger");
        // Every reader is released from its open now; give them time to
        // block in read, so the close reaches them all.
        std::thread::sleep(Duration::from_millis(300));
        let at = epoch_ms();
        drop(writer);
        at
    })
    .await
    .expect("trigger thread")
}

fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// One engine event of a storm container.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    action: String,
    at_ms: f64,
    exit_code: Option<String>,
}

async fn follow(docker: Docker, label: String, since_s: f64, into: Arc<Mutex<Vec<Seen>>>) {
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("event", vec!["die".to_owned(), "start".to_owned()]),
        ("label", vec![format!("{TEST_LABEL}={label}")]),
    ]);
    let since = format!("{since_s:.3}");
    let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
    let mut events = docker.events(Some(options));
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        let Some(actor) = event.actor else { continue };
        let at_ms = event.time_nano.map(|n| n as f64 / 1e6).or(event.time.map(|s| s as f64 * 1000.0));
        let (Some(id), Some(action), Some(at_ms)) = (actor.id, event.action, at_ms) else { continue };
        let exit_code = actor.attributes.and_then(|mut a| a.remove("exitCode"));
        into.lock().unwrap_or_else(|p| p.into_inner()).push(Seen { id, action, at_ms, exit_code });
    }
}

fn outcome(
    ids: &HashMap<String, String>,
    trigger_ms: f64,
    events: &[Seen],
    inspected: &HashMap<String, Inspected>,
) -> StormOutcome {
    let mut per: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for e in events.iter().filter(|e| e.at_ms >= trigger_ms - 1000.0) {
        per.entry(e.id.as_str()).or_default().push(e);
    }
    let mut o = StormOutcome { containers: ids.len(), ..Default::default() };
    let (mut first_crash, mut last_crash, mut last_start) = (f64::MAX, f64::MIN, f64::MIN);
    for (id, name) in ids {
        let mut seen = per.remove(id.as_str()).unwrap_or_default();
        seen.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let die = seen.iter().position(|e| e.action == "die");
        // Inspect, for what the events miss: an exit after the trigger,
        // and a run started after it.
        let inspect = inspected.get(id.as_str()).filter(|i| i.finished_ms >= trigger_ms - 1000.0);
        let (died, mut starts) = match (die, inspect) {
            (Some(die), _) if seen[die].exit_code.as_deref() != Some("1") => continue,
            (Some(die), _) => {
                let starts: Vec<f64> = seen[die..].iter().filter(|e| e.action == "start").map(|e| e.at_ms).collect();
                (seen[die].at_ms, starts)
            }
            (None, Some(i)) => {
                o.from_inspect += 1;
                (i.finished_ms, Vec::new())
            }
            (None, None) => continue,
        };
        if let Some(i) = inspect.filter(|i| starts.is_empty() && i.running && i.started_ms > died) {
            o.from_inspect += usize::from(die.is_some());
            starts.push(i.started_ms);
        }
        o.crashed += 1;
        first_crash = first_crash.min(died);
        last_crash = last_crash.max(died);
        match starts.first() {
            Some(&start) => {
                o.healed += 1;
                o.heal_ms.push(start - died);
                last_start = last_start.max(start);
            }
            None => o.lost.push(name.clone()),
        }
        if starts.len() > 1 {
            o.restarted_twice += 1;
        }
        o.times.insert(name.clone(), (died, starts.first().copied()));
    }
    o.heal_ms.sort_by(f64::total_cmp);
    o.lost.sort();
    o.crash_spread_ms = if o.crashed > 0 { last_crash - first_crash } else { 0.0 };
    o.all_running_ms = (o.crashed > 0 && o.lost.is_empty()).then_some(last_start - trigger_ms);
    o
}

/// What HemoStat's streams say of a storm's containers: alerts, decisions,
/// outcomes, refusals with their reasons, and where each container's time
/// went.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    /// health_alert events for the storm's containers.
    pub alerts: usize,
    /// Containers alerted more than once.
    pub alerted_twice: usize,
    /// Commands sent to the host for the storm's containers.
    pub commands: usize,
    pub false_alarms: usize,
    /// remediation_complete per status (`success`, `rejected`, ...).
    pub outcomes: BTreeMap<String, usize>,
    /// Rejected and failed outcomes per reason (or error).
    pub refusals: BTreeMap<String, usize>,
    /// Per container (sorted ms): exit to alert entry, alert to command
    /// entry, command entry to the container's start.
    pub to_alert_ms: Vec<f64>,
    pub to_command_ms: Vec<f64>,
    pub to_start_ms: Vec<f64>,
}

impl Pipeline {
    /// Reads the durable streams and `host`'s command stream for the
    /// storm's containers (`names`), with the engine times of `outcome`.
    pub async fn read(
        conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
        host: &str,
        names: &HashSet<String>,
        outcome: &StormOutcome,
    ) -> Pipeline {
        let mut p = Pipeline::default();
        let mut alert_at: HashMap<String, f64> = HashMap::new();
        for (ms, a) in stream_events::<HealthAlert>(conn, EventKind::HealthAlert).await {
            if names.contains(&a.container) {
                p.alerts += 1;
                if alert_at.insert(a.container, ms as f64).is_some() {
                    p.alerted_twice += 1;
                }
            }
        }
        for (_, f) in stream_events::<FalseAlarm>(conn, EventKind::FalseAlarm).await {
            p.false_alarms += usize::from(names.contains(&f.container));
        }
        for (_, c) in stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete).await {
            if !names.contains(&c.container) {
                continue;
            }
            let status = serde_json::to_value(c.result.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            *p.outcomes.entry(status).or_default() += 1;
            if matches!(c.result.status, RemediationStatus::Rejected | RemediationStatus::Failed) {
                let why = c.result.reason.or(c.result.error).unwrap_or_else(|| "no reason given".into());
                *p.refusals.entry(why).or_default() += 1;
            }
        }
        let reply: StreamRangeReply = conn.xrange_all(keys::commands(host)).await.unwrap_or_default();
        let mut command_at: HashMap<String, f64> = HashMap::new();
        for entry in &reply.ids {
            let Some(json) = entry.get::<String>(COMMAND_FIELD) else { continue };
            let Ok(cmd) = serde_json::from_str::<Command>(&json) else { continue };
            if names.contains(&cmd.container) {
                p.commands += 1;
                command_at.entry(cmd.container).or_insert(crate::bench::id_ms(&entry.id));
            }
        }
        for (name, (died, started)) in &outcome.times {
            let (Some(alert), Some(command)) = (alert_at.get(name), command_at.get(name)) else { continue };
            p.to_alert_ms.push(alert - died);
            p.to_command_ms.push(command - alert);
            if let Some(started) = started {
                p.to_start_ms.push(started - command);
            }
        }
        for v in [&mut p.to_alert_ms, &mut p.to_command_ms, &mut p.to_start_ms] {
            v.sort_by(f64::total_cmp);
        }
        p
    }
}
