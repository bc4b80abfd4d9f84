//! What the benchmark binaries share: wall-clock and stream-id times,
//! percentiles, the crash alert they publish, the thread they run on and
//! their command-line flags.

use std::{
    future::Future,
    time::{SystemTime, UNIX_EPOCH},
};

use chrono::{SecondsFormat, Utc};
use hemostat_protocol::{
    Envelope, EventKind,
    envelope::agent,
    event::{Anomaly, AnomalyKind, HealthAlert, Metrics, Severity},
};

/// The `health_alert` a collector publishes when `container` (on `host`,
/// running `image`) exits with code 1, detected now.
pub fn crash_alert(host: &str, container: &str, container_id: Option<&str>, image: &str) -> Envelope {
    let now = Utc::now();
    let alert = HealthAlert {
        container: container.to_owned(),
        issues: vec!["Exited with code 1".into()],
        metrics: Metrics {
            name: container.to_owned(),
            status: Some("exited".into()),
            memory_pct: 0.0,
            cpu_pct: 0.0,
            timestamp: Some(now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            ..Default::default()
        },
        host: host.to_owned(),
        container_id: container_id.map(str::to_owned),
        image: Some(image.to_owned()),
        anomalies: vec![Anomaly {
            kind: AnomalyKind::NonZeroExit,
            severity: Severity::High,
            threshold: None,
            actual: Some(1.0),
        }],
        exit_code: Some(1),
        detected_at: Some(now.to_rfc3339_opts(SecondsFormat::Nanos, true)),
        evidence: None,
        policy: None,
        held: None,
        silenced_by: Vec::new(),
    };
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert).expect("serialisable")
}

/// Now, in epoch milliseconds (fractional).
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// When Redis took a stream entry: the milliseconds of its id (`ms-seq`).
pub fn id_ms(id: &str) -> f64 {
    id.split('-').next().and_then(|ms| ms.parse::<f64>().ok()).unwrap_or(0.0)
}

/// Stream ids compare as (milliseconds, sequence).
pub fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Nearest-rank percentile `p` (0 to 1) of sorted values; `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1])
}

/// Runs the future `run` makes on a runtime of two workers, on a thread
/// named `name`, and returns its output; exits with 1 if it panicked.
/// Children the harness spawns die with the thread that spawned them
/// (PR_SET_PDEATHSIG), and their logs are named after it: one named thread
/// spawns them all, from the future it blocks on (never a spawned task).
pub fn on_named_thread<T, F>(name: &str, run: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let runner = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(run())
        })
        .expect("thread");
    runner.join().unwrap_or_else(|_| std::process::exit(1))
}

/// Prints `msg` and the usage to stderr and exits with 2.
pub fn usage_error(usage: &str, msg: &str) -> ! {
    eprintln!("{msg}\nusage: {usage}");
    std::process::exit(2)
}

/// A benchmark's command line as (flag, value) pairs: `--flag value` or
/// `--flag=value`; `-h` or `--help` prints the usage and exits; a flag
/// without its value is a [`usage_error`].
pub fn flags(usage: &'static str) -> impl Iterator<Item = (String, String)> {
    let mut args = std::env::args().skip(1);
    std::iter::from_fn(move || {
        let arg = args.next()?;
        if arg == "-h" || arg == "--help" {
            println!("usage: {usage}");
            std::process::exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let value =
            inline.or_else(|| args.next()).unwrap_or_else(|| usage_error(usage, &format!("{flag} needs a value")));
        Some((flag, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_and_ids() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!((percentile(&v, 0.5), percentile(&v, 0.99), percentile(&v, 0.0)), (Some(5), Some(10), Some(1)));
        assert_eq!(percentile::<u8>(&[], 0.5), None);
        assert_eq!(id_key("17-3"), (17, 3));
        assert!(id_key("17-3") < id_key("17-10"));
        assert_eq!(id_ms("1700000000000-0"), 1_700_000_000_000.0);
    }

    #[test]
    fn crash_alert_is_a_collector_crash() {
        let env = crash_alert("h1", "svc-1", Some("abc"), "bench/app:1");
        let alert: HealthAlert = env.data_of(EventKind::HealthAlert).unwrap();
        assert_eq!((alert.host.as_str(), alert.container.as_str(), alert.exit_code), ("h1", "svc-1", Some(1)));
        assert_eq!(alert.anomalies[0].kind, AnomalyKind::NonZeroExit);
        assert_eq!((alert.container_id.as_deref(), alert.image.as_deref()), (Some("abc"), Some("bench/app:1")));
        assert!(alert.detected_at.is_some() && alert.metrics.timestamp.is_some());
    }
}
