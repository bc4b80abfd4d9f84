//! Liveness: what the collector knows of its own progress, and who hears
//! of it. The heartbeat used to say only "the process is up", while the
//! event watcher, the stats sampler, the command consumer and the outbox
//! run apart from it: a collector whose Docker event stream hung looked
//! healthy. Each of those tasks now records its last progress here, and the
//! heartbeat, `/healthz` and `/metrics` report it.
//!
//! - [`Progress`]: each task's last progress and counters, shared without
//!   a lock (a task's hot path stores an integer or two).
//! - `http`: `/healthz` and `/metrics`, off unless `HEMOSTAT_COLLECTOR_LISTEN`.
//! - `supervisor`: restarts a stalled task once and, if it stays stalled,
//!   reports the collector degraded (a `system_alert`), then its recovery.

mod http;
mod supervisor;

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use hemostat_protocol::liveness::{Beat, TaskProgress};

pub(crate) use http::Server;
pub(crate) use supervisor::{Body, Stop, Supervised, Supervisor};

/// A long-running task whose progress is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// The Docker event stream: an event handled, a reopening by the idle
    /// watchdog, a catch-up attempt.
    Watcher,
    /// A round of stats readings.
    Sampler,
    /// An XREADGROUP that returned (an empty read after its BLOCK too).
    Consumer,
    /// A turn of the outbox's delivery loop (a delivery, an attempt, or an
    /// idle wake-up with nothing to send).
    Outbox,
}

impl Task {
    pub(crate) const ALL: [Task; 4] = [Task::Watcher, Task::Sampler, Task::Consumer, Task::Outbox];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Task::Watcher => "watcher",
            Task::Sampler => "sampler",
            Task::Consumer => "consumer",
            Task::Outbox => "outbox",
        }
    }
}

/// One task's record.
#[derive(Debug, Default)]
struct Slot {
    beat: Beat,
    count: AtomicU64,
    /// Milliseconds without progress after which the task is stalled; 0:
    /// not watched (the sampler when sampling is off, the watcher without
    /// an idle watchdog: a quiet engine is then indistinguishable from a
    /// hung stream).
    stall_after_ms: AtomicU64,
    /// Restarts by the supervisor, since start.
    restarts: AtomicU64,
    /// Stalled still after its restart, until it progresses again.
    degraded: AtomicBool,
}

/// Every task's progress, and the counters `/metrics` shows.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    slots: [Slot; 4],
    /// Commands read (entries returned by XREADGROUP).
    commands: AtomicU64,
    /// Events the outbox delivered to Redis.
    delivered: AtomicU64,
    /// The idle watchdog's reopenings of the event stream, and of those,
    /// the ones that found events the stream had not delivered.
    reopenings: AtomicU64,
    stalls: AtomicU64,
    /// What the label probes did (`probe/`).
    pub(crate) probes: ProbeCounts,
}

/// Label probes since start.
#[derive(Debug, Default)]
pub(crate) struct ProbeCounts {
    pub(crate) run: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Probes that could not run: the namespace could not be entered.
    pub(crate) unavailable: AtomicU64,
    /// Container starts not probed because a probe label is wrong.
    pub(crate) bad_labels: AtomicU64,
    pub(crate) alerts: AtomicU64,
}

impl Progress {
    fn slot(&self, task: Task) -> &Slot {
        &self.slots[task as usize]
    }

    /// `task` is watched: stalled after `period` without progress (about
    /// three of its intervals plus a margin; None: not watched).
    pub(crate) fn expect(&self, task: Task, period: Option<Duration>) {
        let ms = period.map_or(0, |p| p.as_millis().max(1) as u64);
        let slot = self.slot(task);
        slot.stall_after_ms.store(ms, Relaxed);
        slot.beat.now();
    }

    /// `task` progressed.
    pub(crate) fn progressed(&self, task: Task) {
        let slot = self.slot(task);
        slot.beat.now();
        slot.count.fetch_add(1, Relaxed);
    }

    /// `task` is alive without news to count (a replayed duplicate, a
    /// catch-up that found nothing).
    pub(crate) fn alive(&self, task: Task) {
        self.slot(task).beat.now();
    }

    pub(crate) fn commands_read(&self, n: usize) {
        self.commands.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
    }

    pub(crate) fn reopened(&self, stalled: bool) {
        self.reopenings.fetch_add(1, Relaxed);
        if stalled {
            self.stalls.fetch_add(1, Relaxed);
        }
    }

    /// A watched task stayed stalled after the supervisor restarted it:
    /// the collector is up but partly blind or deaf.
    pub(crate) fn degraded(&self) -> bool {
        Task::ALL.into_iter().any(|t| self.slot(t).degraded.load(Relaxed))
    }

    /// The supervisor restarted `task`.
    pub(crate) fn restarted(&self, task: Task) {
        self.slot(task).restarts.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_degraded(&self, task: Task, degraded: bool) {
        self.slot(task).degraded.store(degraded, Relaxed);
    }

    /// The expected period of `task` (None: not watched).
    pub(crate) fn period(&self, task: Task) -> Option<Duration> {
        self.stall_after(task)
    }

    /// Since `task` last progressed.
    pub(crate) fn ago(&self, task: Task) -> Duration {
        self.slot(task).beat.ago()
    }

    fn stall_after(&self, task: Task) -> Option<Duration> {
        let ms = self.slot(task).stall_after_ms.load(Relaxed);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// Whether `task` is watched and has gone without progress too long.
    pub(crate) fn is_stalled(&self, task: Task) -> bool {
        self.stall_after(task).is_some_and(|after| self.ago(task) > after)
    }

    /// The watched tasks stalled now.
    pub(crate) fn stalled(&self) -> Vec<Task> {
        Task::ALL.into_iter().filter(|t| self.is_stalled(*t)).collect()
    }

    /// Each watched task's progress, for the heartbeat and `/healthz`.
    pub(crate) fn tasks(&self) -> Vec<TaskProgress> {
        Task::ALL
            .into_iter()
            .filter_map(|task| {
                let after = self.stall_after(task)?;
                let ago = self.ago(task);
                let slot = self.slot(task);
                Some(TaskProgress {
                    task: task.name().to_owned(),
                    // Milliseconds are enough, and read better.
                    progress_seconds_ago: (ago.as_millis() as f64) / 1000.0,
                    stalled_after_seconds: after.as_secs_f64(),
                    count: slot.count.load(Relaxed),
                    stalled: ago > after,
                    restarts: slot.restarts.load(Relaxed),
                    degraded: slot.degraded.load(Relaxed),
                })
            })
            .collect()
    }

    /// The counters `/metrics` shows: (name, help, value).
    pub(crate) fn counters(&self) -> [(&'static str, &'static str, u64); 11] {
        let count = |t: Task| self.slot(t).count.load(Relaxed);
        [
            ("hemostat_collector_events_total", "Docker events handled", count(Task::Watcher)),
            ("hemostat_collector_samples_total", "rounds of stats readings", count(Task::Sampler)),
            ("hemostat_collector_commands_total", "remediation commands read", self.commands.load(Relaxed)),
            (
                "hemostat_collector_delivered_total",
                "events the outbox delivered to Redis",
                self.delivered.load(Relaxed),
            ),
            (
                "hemostat_collector_event_stream_reopenings_total",
                "idle Docker event streams reopened from the cursor",
                self.reopenings.load(Relaxed),
            ),
            (
                "hemostat_collector_event_stream_stalls_total",
                "reopenings that found events the stream had not delivered",
                self.stalls.load(Relaxed),
            ),
            ("hemostat_collector_probes_total", "label probes run (hemostat.probe)", self.probes.run.load(Relaxed)),
            ("hemostat_collector_probe_failures_total", "label probes that failed", self.probes.failed.load(Relaxed)),
            (
                "hemostat_collector_probes_unavailable_total",
                "label probes that could not run: the container's network namespace could not be entered",
                self.probes.unavailable.load(Relaxed),
            ),
            (
                "hemostat_collector_probe_bad_labels_total",
                "container starts not probed because a hemostat.probe label is wrong",
                self.probes.bad_labels.load(Relaxed),
            ),
            (
                "hemostat_collector_probe_alerts_total",
                "unhealthy alerts raised by label probes",
                self.probes.alerts.load(Relaxed),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_task_without_progress_is_stalled_and_progress_clears_it() {
        let p = Progress::default();
        p.expect(Task::Consumer, Some(Duration::from_millis(20)));
        p.expect(Task::Sampler, None);
        assert!(p.stalled().is_empty());
        std::thread::sleep(Duration::from_millis(40));
        // The sampler is not watched: never stalled, not reported.
        assert_eq!(p.stalled(), vec![Task::Consumer]);
        let tasks = p.tasks();
        assert_eq!(tasks.iter().map(|t| t.task.as_str()).collect::<Vec<_>>(), ["consumer"]);
        assert!(tasks[0].stalled && tasks[0].progress_seconds_ago >= 0.04);
        p.progressed(Task::Consumer);
        assert!(p.stalled().is_empty());
        assert_eq!(p.tasks()[0].count, 1);
    }
}
