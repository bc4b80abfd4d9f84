//! Evidence: what an engineer paged for a container looks at first, gathered
//! by the collector the moment it raises an alert and carried, bounded and
//! redacted, as the optional `evidence` field of a `health_alert`.
//!
//! The analyzer reads it to say *why* a container failed (the exit code as
//! Docker reports it, the last log lines, the health check's own output)
//! instead of guessing from numbers. This file is the single definition of
//! the JSON: field names live here and nowhere else.
//!
//! Every field has `#[serde(default)]` and unknown fields are ignored, so a
//! newer or older collector's evidence never makes an alert unreadable.
//! Redaction happens on the host, before anything is serialized; this crate
//! only carries the count of what was replaced.
//!
//! Shape (optional parts are left out when empty):
//!
//! ```json
//! {
//!   "logs": {
//!     "lines": [{"stream": "stderr", "line": "fatal: password=[REDACTED] rejected",
//!                "timestamp": "2026-12-02T06:50:18.783Z"}],
//!     "since": "2026-12-02T06:50:17.787Z", "tail": 50, "count": 1
//!   },
//!   "health": {"status": "unhealthy", "failing_streak": 3,
//!              "results": [{"exit_code": 1, "output": "connection refused",
//!                           "start": "...", "end": "..."}]},
//!   "state": {"status": "exited", "exit_code": 1, "oom_killed": false, "restart_count": 0,
//!             "started_at": "...", "finished_at": "...", "memory_limit_bytes": 67108864,
//!             "cpu_limit_cores": 0.5, "image": "web:1.2",
//!             "compose_project": "shop", "compose_service": "web"},
//!   "events": [{"action": "start", "time": "..."},
//!              {"action": "kill", "time": "...", "signal": 9},
//!              {"action": "die", "time": "...", "exit_code": 137}],
//!   "samples": {"count": 60, "window_seconds": 59.0, "memory_limit_bytes": 67108864,
//!               "cpu_pct": {"min": 1.0, "max": 97.5, "last": 97.5, "trend_per_minute": 40.2},
//!               "memory_pct": {"min": 40.1, "max": 42.0, "last": 42.0, "trend_per_minute": 1.9},
//!               "memory_bytes": {"min": 26910720.0, "max": 28185395.0, "last": 28185395.0,
//!                                "trend_per_minute": 1275068.42}},
//!   "truncated": false,
//!   "redactions": 1
//! }
//! ```

use serde::{Deserialize, Deserializer, Serialize};

/// Appended to a string [`Evidence::bound`] shortened, so a reader knows
/// the text goes on.
pub const ELLIPSIS: &str = "…";

/// Log lines [`Evidence::bound`] keeps while it still has health outputs and
/// events to cut: the newest lines are usually the crash itself, worth more
/// than the tenth repetition of a health check's output.
const KEEP_LINES: usize = 5;
/// Health output is shortened to this many bytes before older results go.
const HEALTH_OUTPUT_FLOOR: usize = 256;
/// The last few log lines are shortened to this many bytes before they go.
const LINE_FLOOR: usize = 256;
/// Events [`Evidence::bound`] keeps until the newest log lines have been
/// shortened: the last few (a kill, the die and its exit code) are the
/// crash's own story, at some 60 bytes each.
const KEEP_EVENTS: usize = 5;

/// Everything gathered about one container for one alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The container's last log lines since its last start (redacted).
    #[serde(default)]
    pub logs: LogEvidence,
    /// The health check's recent results; absent when the container has no
    /// health check, so "no check" and "a check with no results" differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthEvidence>,
    /// Docker's state and configuration of the container, as inspect shows
    /// them: how it ended, how often it restarted, what it was allowed.
    #[serde(default)]
    pub state: StateEvidence,
    /// The container's recent Docker events, oldest first (supplied by the
    /// caller, who follows the event stream; the gatherer does not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<DockerEvent>,
    /// A summary of the container's recent CPU and memory samples (supplied
    /// by the caller, who keeps them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<SampleSummary>,
    /// Something was left out to respect the size cap (or a read was cut
    /// short): the analysis should not treat absence as evidence.
    #[serde(default)]
    pub truncated: bool,
    /// How many secrets were replaced by `[REDACTED]` (or `***` in URLs)
    /// before the evidence left the host.
    #[serde(default)]
    pub redactions: u32,
}

/// The tail of the container's logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEvidence {
    /// The lines, oldest first, stdout and stderr interleaved as written.
    #[serde(default)]
    pub lines: Vec<LogLine>,
    /// Only lines from this time on were asked for (RFC 3339): the start of
    /// the container's last run, so an earlier run's output is not mistaken
    /// for this one's. A second before Docker's `StartedAt` (recorded after
    /// the process began printing), or the previous run's end if later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// How many lines were asked for (the tail length).
    #[serde(default)]
    pub tail: u32,
    /// How many lines were read, before any were dropped for the size cap:
    /// `count - lines.len()` older lines exist but did not fit.
    #[serde(default)]
    pub count: u32,
    /// Why there are no lines at all, when they were not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<LogsSkipped>,
}

/// One log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Which stream it was written to; stderr often holds the cause.
    #[serde(default)]
    pub stream: LogStream,
    /// The text, redacted, without its newline or terminal escapes.
    #[serde(default)]
    pub line: String,
    /// When Docker received it (RFC 3339), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The stream a log line came from. A TTY container's output is `stdout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    #[default]
    Stdout,
    Stderr,
}

/// Why no log lines were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogsSkipped {
    /// Log evidence is turned off for this collector.
    Disabled,
    /// The container's label `hemostat.evidence.logs=false` turned it off.
    OptedOut,
    /// Docker did not answer in time; the alert did not wait longer.
    Timeout,
    /// Docker refused or failed the read (e.g. a log driver without reads).
    Unavailable,
    /// A reason this version does not know (a newer collector's).
    #[serde(other)]
    Unknown,
}

/// The health check's state (`State.Health`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthEvidence {
    /// `starting`, `healthy` or `unhealthy`.
    #[serde(default)]
    pub status: String,
    /// Consecutive failed checks up to now.
    #[serde(default)]
    pub failing_streak: i64,
    /// The most recent checks, oldest first (Docker keeps five).
    #[serde(default)]
    pub results: Vec<HealthResult>,
}

/// One health check run (an entry of `State.Health.Log`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// 0 healthy, 1 unhealthy, anything else: the probe itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// What the check printed (redacted): usually the reason it failed.
    #[serde(default)]
    pub output: String,
    /// When the check started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When the check ended (RFC 3339); end minus start near the timeout
    /// means the check hung rather than failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// Docker's view of the container: how it ended and what it was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateEvidence {
    /// `running`, `exited`, `restarting`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The main process's exit code (137 = SIGKILL, 139 = SIGSEGV, 143 = SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The kernel's OOM killer ended it: tells a 137 from memory apart from
    /// a 137 from `docker kill`.
    #[serde(default)]
    pub oom_killed: bool,
    /// Docker's own error for the container (e.g. a start that failed
    /// because a port is taken), redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times Docker restarted it under its restart policy.
    #[serde(default)]
    pub restart_count: i64,
    /// Start of the last run (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// End of the last run (RFC 3339); before `started_at` while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The memory limit in bytes; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<i64>,
    /// The CPU limit in cores (`NanoCpus` / 1e9, or quota / period);
    /// absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit_cores: Option<f64>,
    /// The image as configured (`Config.Image`, e.g. `web:1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The compose project, from the label `com.docker.compose.project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    /// The compose service, from the label `com.docker.compose.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
}

/// One Docker event of the container. Only these few facts are kept: the
/// event's attributes also carry every label of the container, which may
/// hold secrets, and never travel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEvent {
    /// Docker's action: `start`, `die`, `oom`, `kill`, `stop`, `restart`,
    /// `health_status: unhealthy`, ...
    #[serde(default)]
    pub action: String,
    /// When it happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// A `die`'s exit code (Docker's `exitCode` attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// A `kill`'s signal number (Docker's `signal` attribute): 9 or 15 is
    /// an API stop or kill, anything else a signal someone chose to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Recent resource samples, summarised: enough to tell a spike from a
/// climb, in a few bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    /// How many samples the summary covers.
    #[serde(default)]
    pub count: u32,
    /// Time from the first sample to the last, in seconds.
    #[serde(default, deserialize_with = "finite")]
    pub window_seconds: f64,
    /// CPU, percent of one core (as `docker stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<SeriesSummary>,
    /// Memory, percent of the limit (the container's, or the host's
    /// memory when it has none, as `docker stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pct: Option<SeriesSummary>,
    /// Memory in use, in bytes (page cache excluded, as `docker stats`);
    /// its trend is bytes per minute, what a leak's growth is read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<SeriesSummary>,
    /// The limit `memory_pct` is of, in bytes, at the latest sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
}

/// One series' summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    /// Smallest sample.
    #[serde(default, deserialize_with = "finite")]
    pub min: f64,
    /// Largest sample.
    #[serde(default, deserialize_with = "finite")]
    pub max: f64,
    /// Latest sample.
    #[serde(default, deserialize_with = "finite")]
    pub last: f64,
    /// Least-squares slope, units per minute: positive and steady means a
    /// climb (a leak), near zero with a high max means a spike.
    #[serde(default, deserialize_with = "finite")]
    pub trend_per_minute: f64,
}

impl SeriesSummary {
    /// Summarises `(seconds, value)` points (any order of time; non-finite
    /// points are ignored). `None` without a finite point.
    pub fn from_points(points: &[(f64, f64)]) -> Option<SeriesSummary> {
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|(t, v)| t.is_finite() && v.is_finite()).collect();
        let (&(_, first), rest) = points.split_first()?;
        let (mut min, mut max) = (first, first);
        for &(_, v) in rest {
            min = min.min(v);
            max = max.max(v);
        }
        let last = points.iter().copied().fold(points[0], |a, b| if b.0 >= a.0 { b } else { a }).1;
        let n = points.len() as f64;
        let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
        let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
        let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
        let slope = if var_t > 0.0 { cov / var_t * 60.0 } else { 0.0 };
        Some(SeriesSummary { min: round2(min), max: round2(max), last: round2(last), trend_per_minute: round2(slope) })
    }
}

/// Two decimals: more is noise, and every digit counts against the cap.
fn round2(x: f64) -> f64 {
    let r = (x * 100.0).round() / 100.0;
    if r.is_finite() { r } else { 0.0 }
}

/// serde_json writes a non-finite float as `null`; reading it back as 0
/// keeps one bad number from making a whole alert unreadable.
fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.filter(|x| x.is_finite()).unwrap_or_default())
}

impl Evidence {
    /// Size of the compact JSON, in bytes: what the cap limits.
    pub fn json_len(&self) -> usize {
        let mut counter = Counter(0);
        // Serializing plain structs into a counter cannot fail; if it ever
        // did, "too big" is the safe answer.
        match serde_json::to_writer(&mut counter, self) {
            Ok(()) => counter.0,
            Err(_) => usize::MAX,
        }
    }

    /// Shrinks the evidence until its JSON is at most `cap` bytes, marking
    /// it `truncated` when anything was cut. Returns whether it fits: only a
    /// cap smaller than the bare state (a few hundred bytes) cannot be met.
    ///
    /// What goes, in order: stack frames of log lines (all but the first
    /// few of each trace, see [`crate::stack`]); the oldest log lines (down
    /// to the newest few);
    /// health outputs, shortened, then older health results; the oldest
    /// events (down to the newest few); then the remaining log lines,
    /// shortened; the remaining events; the remaining log lines; and last,
    /// the samples, the health results and Docker's error text. The newest
    /// log lines outlive everything but the state because they usually are
    /// the failure itself.
    pub fn bound(&mut self, cap: usize) -> bool {
        if self.json_len() <= cap {
            return true;
        }
        self.truncated = true;
        let mut size = self.json_len();
        // A trace's frames go before the lines around them: the line that
        // names the failure is often the trace's first (see crate::stack).
        crate::stack::drop_frames(
            &mut self.logs.lines,
            |l| l.line.as_str(),
            |frame| {
                let over = size > cap;
                if over {
                    // The frame and its comma.
                    size = size.saturating_sub(json_len(frame) + 1);
                }
                over
            },
        );
        size = self.json_len();
        drop_oldest(&mut self.logs.lines, KEEP_LINES, &mut size, cap);
        if let Some(health) = &mut self.health {
            for result in &mut health.results {
                shorten(&mut result.output, HEALTH_OUTPUT_FLOOR, &mut size, cap);
            }
            drop_oldest(&mut health.results, 1, &mut size, cap);
        }
        drop_oldest(&mut self.events, KEEP_EVENTS, &mut size, cap);
        for line in &mut self.logs.lines {
            shorten(&mut line.line, LINE_FLOOR, &mut size, cap);
        }
        drop_oldest(&mut self.events, 0, &mut size, cap);
        drop_oldest(&mut self.logs.lines, 0, &mut size, cap);
        if size > cap {
            self.samples = None;
            if let Some(health) = &mut self.health {
                health.results.clear();
            }
            size = self.json_len();
            if let Some(error) = &mut self.state.error {
                shorten(error, 0, &mut size, cap);
            }
        }
        self.json_len() <= cap
    }
}

/// Drops the oldest elements of `items`, keeping at least `keep`, until
/// `size` is within `cap`; `size` follows exactly (compact JSON: an element
/// and its comma).
fn drop_oldest<T: Serialize>(items: &mut Vec<T>, keep: usize, size: &mut usize, cap: usize) {
    let mut n = 0;
    while *size > cap && items.len() - n > keep {
        let comma = usize::from(items.len() - n > 1);
        *size = size.saturating_sub(json_len(&items[n]) + comma);
        n += 1;
    }
    items.drain(..n);
}

/// Cuts `text` (at a character boundary, with [`ELLIPSIS`]) by what `size`
/// exceeds `cap`, but not below `floor` bytes.
fn shorten(text: &mut String, floor: usize, size: &mut usize, cap: usize) {
    if *size <= cap {
        return;
    }
    let excess = *size - cap;
    // Each byte cut saves at least one byte of JSON (escapes save more).
    let target = text.len().saturating_sub(excess + ELLIPSIS.len()).max(floor);
    if target >= text.len() {
        return;
    }
    let before = json_len(text.as_str());
    let mut end = target;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(ELLIPSIS);
    *size = (*size + json_len(text.as_str())).saturating_sub(before);
}

fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// Counts bytes instead of storing them.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize, len: usize) -> LogLine {
        LogLine {
            stream: if i.is_multiple_of(2) { LogStream::Stdout } else { LogStream::Stderr },
            line: format!("{i:05} {}", "x".repeat(len)),
            timestamp: Some("2026-12-02T06:50:18.783Z".into()),
        }
    }

    fn event(i: usize) -> DockerEvent {
        DockerEvent {
            action: if i.is_multiple_of(2) { "kill".into() } else { "die".into() },
            time: Some(format!("2026-12-02T06:{:02}:{:02}.000Z", i / 60 % 60, i % 60)),
            exit_code: (!i.is_multiple_of(2)).then_some(137),
            signal: i.is_multiple_of(2).then_some(9),
        }
    }

    fn full() -> Evidence {
        Evidence {
            logs: LogEvidence {
                lines: (0..3).map(|i| line(i, 10)).collect(),
                since: Some("2026-12-02T06:50:17.787Z".into()),
                tail: 50,
                count: 3,
                skipped: None,
            },
            health: Some(HealthEvidence {
                status: "unhealthy".into(),
                failing_streak: 3,
                results: vec![HealthResult {
                    exit_code: Some(1),
                    output: "curl: (7) connection refused\n".into(),
                    start: Some("2026-12-02T06:50:18.1Z".into()),
                    end: Some("2026-12-02T06:50:18.2Z".into()),
                }],
            }),
            state: StateEvidence {
                status: Some("exited".into()),
                exit_code: Some(137),
                oom_killed: true,
                error: Some("".into()),
                restart_count: 2,
                started_at: Some("2026-12-02T06:50:17.787Z".into()),
                finished_at: Some("2026-12-02T06:50:19.0Z".into()),
                memory_limit_bytes: Some(64 << 20),
                cpu_limit_cores: Some(0.5),
                image: Some("web:1.2".into()),
                compose_project: Some("shop".into()),
                compose_service: Some("web".into()),
            },
            events: vec![DockerEvent {
                action: "die".into(),
                time: Some("2026-12-02T06:50:19Z".into()),
                exit_code: Some(137),
                signal: None,
            }],
            samples: Some(SampleSummary {
                count: 3,
                window_seconds: 20.0,
                cpu_pct: SeriesSummary::from_points(&[(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)]),
                memory_pct: None,
                memory_bytes: SeriesSummary::from_points(&[(0.0, 1e6), (10.0, 2e6), (20.0, 3e6)]),
                memory_limit_bytes: Some(64 << 20),
            }),
            truncated: false,
            redactions: 2,
        }
    }

    /// A 100 KB evidence: many lines, long health outputs, many events.
    fn huge() -> Evidence {
        let mut e = full();
        e.logs.lines = (0..800).map(|i| line(i, 60)).collect();
        e.logs.count = 800;
        let health = e.health.get_or_insert_with(Default::default);
        health.results = (0..5)
            .map(|i| HealthResult {
                exit_code: Some(1),
                output: format!("{i} {}", "é\"\n".repeat(1300)),
                ..Default::default()
            })
            .collect();
        e.events = (0..300).map(event).collect();
        e
    }

    #[test]
    fn round_trips() {
        let e = full();
        let json = serde_json::to_string(&e).unwrap();
        let back: Evidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.json_len(), json.len());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["logs"]["lines"][1]["stream"], "stderr");
        assert_eq!(value["state"]["oom_killed"], true);
        assert_eq!(value["samples"]["cpu_pct"]["trend_per_minute"], 6.0);
        assert_eq!(value["samples"]["memory_bytes"]["trend_per_minute"], 6e6);
        assert_eq!(value["samples"]["memory_limit_bytes"], 64 << 20);
        assert_eq!(
            value["events"][0],
            serde_json::json!({"action": "die", "time": "2026-12-02T06:50:19Z", "exit_code": 137})
        );
    }

    /// What the collector attaches at most: 20 events, a full sample
    /// summary, 50 lines of 1 KiB and five 1 KiB health outputs.
    fn fullest() -> Evidence {
        let mut e = full();
        e.logs.lines = (0..50).map(|i| line(i, 1018)).collect();
        e.logs.count = 50;
        let health = e.health.get_or_insert_with(Default::default);
        health.results = (0..5)
            .map(|i| HealthResult { exit_code: Some(1), output: format!("{i:0>1024}"), ..Default::default() })
            .collect();
        e.events = (0..20).map(event).collect();
        let series =
            SeriesSummary { min: 0.01, max: 123_456_789.12, last: 98_765_432.1, trend_per_minute: -1_234_567.89 };
        e.samples = Some(SampleSummary {
            count: 60,
            window_seconds: 59.01,
            cpu_pct: Some(series),
            memory_pct: Some(series),
            memory_bytes: Some(series),
            memory_limit_bytes: Some(u64::MAX),
        });
        e
    }

    #[test]
    fn bound_holds_with_events_and_samples_and_keeps_the_newest_events() {
        let original = fullest();
        for cap in [1024, 2048, 4096, 8192, 16384] {
            let mut e = original.clone();
            assert!(e.bound(cap), "cap {cap}: {}", e.json_len());
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.len() <= cap, "cap {cap}: {}", json.len());
            assert!(e.truncated);
            // Whatever events survive are the newest, in order.
            let kept = e.events.len();
            assert_eq!(e.events[..], original.events[original.events.len() - kept..], "cap {cap}");
            assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), e);
        }
        // At the default cap the summary and the crash's last events stay,
        // beside the newest log lines (shortened).
        let mut e = original.clone();
        assert!(e.bound(4096));
        assert_eq!(e.samples, original.samples);
        assert_eq!(e.events[..], original.events[20 - KEEP_EVENTS..]);
        assert!(!e.logs.lines.is_empty());
        assert_eq!(e.logs.lines.last().map(|l| &l.line[..5]), Some("00049"));
        // Lines go only after every event went.
        let mut e = original.clone();
        assert!(e.bound(1024));
        assert!(e.events.is_empty() || e.logs.lines.len() == KEEP_LINES, "{e:?}");
    }

    #[test]
    fn every_field_is_optional_and_unknown_fields_are_ignored() {
        let e: Evidence = serde_json::from_str("{}").unwrap();
        assert_eq!(e, Evidence::default());
        let e: Evidence = serde_json::from_str(
            r#"{"logs": {"lines": [{}], "skipped": "from_the_future"}, "health": {}, "newer": 1,
                "samples": {"window_seconds": null, "cpu_pct": {"min": null}}}"#,
        )
        .unwrap();
        assert_eq!(e.logs.lines, vec![LogLine::default()]);
        assert_eq!(e.logs.skipped, Some(LogsSkipped::Unknown));
        assert_eq!(e.health, Some(HealthEvidence::default()));
        assert_eq!(e.samples.and_then(|s| s.cpu_pct).map(|c| c.min), Some(0.0));
    }

    #[test]
    fn small_evidence_is_left_alone() {
        let mut e = full();
        assert!(e.bound(4096));
        assert_eq!(e, full());
        assert!(!e.truncated);
    }

    #[test]
    fn bound_holds_for_a_100_kb_input() {
        let mut e = huge();
        let original = e.clone();
        assert!(e.json_len() > 100_000, "{}", e.json_len());
        assert!(e.bound(4096));
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.len() <= 4096, "{}", json.len());
        assert!(e.truncated);
        // What survived is the newest: a suffix of the original lines.
        let kept = e.logs.lines.len();
        assert!(kept >= 1, "the newest lines outlive health outputs and events");
        assert_eq!(e.logs.lines[..], original.logs.lines[original.logs.lines.len() - kept..]);
        assert_eq!(e.logs.count, 800);
        // Still valid JSON of the same shape.
        let back: Evidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_traces_frames_go_before_the_exception_it_follows() {
        let mut e = full();
        let text = |t: &str| LogLine { stream: LogStream::Stderr, line: t.into(), timestamp: None };
        e.logs.lines = vec![text("Exception in thread \"main\" java.lang.IllegalStateException: no datasource")];
        e.logs.lines.extend((0..150).map(|i| text(&format!("\tat org.example.layer{i}.Thing.call(Thing.java:{i})"))));
        assert!(e.bound(4096));
        assert!(e.json_len() <= 4096);
        let kept: Vec<&str> = e.logs.lines.iter().map(|l| l.line.as_str()).collect();
        assert!(kept[0].starts_with("Exception in thread"), "{kept:?}");
        assert!(kept[1].contains("layer0.") && kept.last().unwrap().contains("layer149."), "{kept:?}");
        assert_eq!(e.health, full().health, "frames went, nothing else");
    }

    #[test]
    fn oldest_lines_go_first_and_nothing_else_when_that_suffices() {
        let mut e = full();
        e.logs.lines = (0..100).map(|i| line(i, 40)).collect();
        let cap = full().json_len() + 1000;
        assert!(e.bound(cap));
        assert!(e.json_len() <= cap);
        assert!(e.truncated);
        assert_eq!(e.logs.lines.last(), Some(&line(99, 40)));
        assert!(e.logs.lines.len() > KEEP_LINES && e.logs.lines.len() < 100);
        assert_eq!(e.health, full().health);
        assert_eq!(e.events, full().events);
        // As tight as whole lines allow: one more line would not fit.
        let mut one_more = e.clone();
        one_more.logs.lines.insert(0, line(0, 40));
        assert!(one_more.json_len() > cap);
    }

    #[test]
    fn health_outputs_shrink_before_the_newest_lines_go() {
        let mut e = huge();
        e.events.clear();
        let cap = 4096;
        assert!(e.bound(cap));
        assert!(e.json_len() <= cap);
        assert_eq!(e.logs.lines.len(), KEEP_LINES);
        let health = e.health.as_ref().unwrap();
        assert!(health.results.len() <= 5 && !health.results.is_empty());
        assert!(health.results.iter().all(|r| r.output.ends_with(ELLIPSIS)));
    }

    #[test]
    fn tiny_caps_and_empty_evidence_never_panic() {
        for cap in [0, 1, 10, 100, 300, 1000] {
            let mut e = huge();
            let fits = e.bound(cap);
            assert_eq!(fits, e.json_len() <= cap);
            let mut empty = Evidence::default();
            assert_eq!(empty.bound(cap), empty.json_len() <= cap);
        }
        let mut empty = Evidence::default();
        assert!(empty.bound(4096));
        assert!(!empty.truncated);
        let mut e = huge();
        assert!(e.bound(600), "the bare state fits in 600 bytes: {}", e.json_len());
    }

    #[test]
    fn shortening_respects_character_boundaries() {
        let mut e = Evidence::default();
        e.state.error = Some("ünïcödé ".repeat(500));
        assert!(e.bound(200));
        let error = e.state.error.unwrap();
        assert!(error.ends_with(ELLIPSIS));
    }

    #[test]
    fn series_summary() {
        let s = SeriesSummary::from_points(&[(60.0, 30.0), (0.0, 10.0), (30.0, 20.0), (f64::NAN, 99.0)]).unwrap();
        assert_eq!(s, SeriesSummary { min: 10.0, max: 30.0, last: 30.0, trend_per_minute: 20.0 });
        assert_eq!(SeriesSummary::from_points(&[]), None);
        let one = SeriesSummary::from_points(&[(5.0, 7.0)]).unwrap();
        assert_eq!(one.trend_per_minute, 0.0);
    }
}
