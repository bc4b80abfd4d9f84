//! One container's resource usage: the raw counters read at an instant, and
//! the figures computed from two readings the way `docker stats` computes
//! them, so an operator comparing the two sees the same numbers; and the
//! container as its stats key and resource alerts show it. Shared by the
//! sampler that reads, the detectors that judge and the alerts that tell.

use std::time::{Duration, Instant};

use hemostat_protocol::{ContainerRef, event::Metrics, keys};

/// Raw counters of one container at one instant. The cumulative ones
/// (CPU time, network, block I/O) only grow while the container runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Cumulative CPU time of every process in the container, in ns.
    pub cpu_ns: u64,
    /// Memory charged to the container, page cache included.
    pub mem_usage: u64,
    /// Inactive file cache: reclaimable, so `docker stats` subtracts it.
    pub mem_inactive_file: u64,
    /// The memory limit; None when the container has none.
    pub mem_limit: Option<u64>,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// A reading and when it was taken (monotonic, for the CPU rate).
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub reading: Reading,
    pub at: Instant,
}

/// What one sampling interval says about a running container.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// 100 % is one core fully busy, as in `docker stats`.
    pub cpu_pct: f64,
    pub memory_pct: f64,
    /// Usage minus inactive file cache, in bytes.
    pub memory_usage: u64,
    /// The limit the percentage is of: the container's, or the host's.
    pub memory_limit: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub blk_read_bytes: u64,
    pub blk_write_bytes: u64,
    pub pids: u64,
}

/// CPU time used over wall time elapsed, in percent of one core.
pub fn cpu_percent(prev_ns: u64, cur_ns: u64, wall: Duration) -> f64 {
    let wall_ns = wall.as_nanos() as f64;
    // A counter going backwards means a new cgroup (the container
    // restarted): no rate can be computed from the pair.
    if wall_ns <= 0.0 || cur_ns < prev_ns {
        return 0.0;
    }
    (cur_ns - prev_ns) as f64 / wall_ns * 100.0
}

/// Memory in use as `docker stats` shows it: inactive file cache is
/// reclaimable at no cost, so counting it would make every container that
/// reads files look like it is running out of memory.
pub fn memory_used(usage: u64, inactive_file: u64) -> u64 {
    if inactive_file < usage { usage - inactive_file } else { usage }
}

/// The limit a percentage is of: an unlimited container (cgroup v1 reports
/// a huge number, v2 `max`) is limited by the host's memory, as Docker does.
pub fn effective_limit(limit: Option<u64>, host_total: u64) -> u64 {
    match limit {
        Some(l) if l > 0 && (host_total == 0 || l < host_total) => l,
        _ => host_total,
    }
}

pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 * 100.0 }
}

/// The usage over the interval since `prev`; without it (the first reading
/// of a container) CPU is unknown and reported as 0.
pub fn usage(prev: Option<&Timed>, cur: &Timed, host_total: u64) -> Usage {
    let r = &cur.reading;
    let cpu_pct = prev.map_or(0.0, |p| cpu_percent(p.reading.cpu_ns, r.cpu_ns, cur.at.saturating_duration_since(p.at)));
    let memory_usage = memory_used(r.mem_usage, r.mem_inactive_file);
    let memory_limit = effective_limit(r.mem_limit, host_total);
    Usage {
        cpu_pct,
        memory_pct: percent(memory_usage, memory_limit),
        memory_usage,
        memory_limit,
        net_rx_bytes: r.net_rx,
        net_tx_bytes: r.net_tx,
        blk_read_bytes: r.blk_read,
        blk_write_bytes: r.blk_write,
        pids: r.pids,
    }
}

/// Two decimals are plenty for a percentage and keep the JSON short.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Who a container is, for its stats key and alerts.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub host: String,
    pub id: String,
    pub name: String,
    pub image: Option<String>,
}

impl Identity {
    pub fn key(&self) -> String {
        keys::stats(&ContainerRef::new(&self.host, &self.name))
    }
}

/// A container as its stats key and its resource alerts show it. `usage`
/// is None for a container that is not running.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub who: &'a Identity,
    pub status: &'a str,
    pub health: Option<&'a str>,
    pub usage: Option<&'a Usage>,
}

impl View<'_> {
    /// The seed's metrics object (`name`, `status`, `memory_pct`, `cpu_pct`,
    /// `timestamp`) plus everything else measured, as written to
    /// `hemostat:stats:<host/name>` and carried by alerts.
    pub fn metrics(&self, timestamp: String) -> Metrics {
        let (who, u) = (self.who, self.usage.copied().unwrap_or_default());
        Metrics {
            name: who.name.clone(),
            status: Some(self.status.to_owned()),
            memory_pct: round2(u.memory_pct),
            cpu_pct: round2(u.cpu_pct),
            timestamp: Some(timestamp),
            host: Some(who.host.clone()),
            id: Some(who.id.clone()),
            image: who.image.clone(),
            health: self.health.map(str::to_owned),
            memory_usage: Some(u.memory_usage),
            memory_limit: Some(u.memory_limit),
            net_rx_bytes: Some(u.net_rx_bytes),
            net_tx_bytes: Some(u.net_tx_bytes),
            blk_read_bytes: Some(u.blk_read_bytes),
            blk_write_bytes: Some(u.blk_write_bytes),
            pids: Some(u.pids),
            extra: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_per_core_like_docker_stats() {
        let s = Duration::from_secs(1);
        // Half a second of CPU in one second: 50 %.
        assert_eq!(cpu_percent(1_000_000_000, 1_500_000_000, s), 50.0);
        // Two cores busy: 200 %.
        assert_eq!(cpu_percent(0, 2_000_000_000, s), 200.0);
        // Counter reset (restart) or no elapsed time: no rate.
        assert_eq!(cpu_percent(5, 1, s), 0.0);
        assert_eq!(cpu_percent(0, 5, Duration::ZERO), 0.0);
    }

    #[test]
    fn memory_excludes_inactive_file_and_unlimited_uses_host() {
        assert_eq!(memory_used(100, 30), 70);
        assert_eq!(memory_used(100, 300), 100);
        let host = 8 << 30;
        assert_eq!(effective_limit(Some(16 << 20), host), 16 << 20);
        assert_eq!(effective_limit(Some(9_223_372_036_854_771_712), host), host);
        assert_eq!(effective_limit(None, host), host);
        let at = Instant::now();
        let prev = Timed { reading: Reading { cpu_ns: 0, ..Default::default() }, at };
        let cur = Timed {
            reading: Reading {
                cpu_ns: 250_000_000,
                mem_usage: 12 << 20,
                mem_inactive_file: 4 << 20,
                mem_limit: Some(16 << 20),
                ..Default::default()
            },
            at: at + Duration::from_millis(500),
        };
        let u = usage(Some(&prev), &cur, host);
        assert_eq!(u.cpu_pct, 50.0);
        assert_eq!(u.memory_usage, 8 << 20);
        assert_eq!(u.memory_pct, 50.0);
        assert_eq!(usage(None, &cur, host).cpu_pct, 0.0);
    }
}
