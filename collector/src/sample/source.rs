//! Where a running container's readings come from: its cgroup files when
//! they are readable (microseconds, no daemon involved), else the Docker
//! stats API (a request to dockerd per container per interval).

use std::time::Instant;

use bollard::{Docker, models::ContainerStatsResponse, query_parameters::StatsOptionsBuilder};
use futures::StreamExt;

use super::cgroup::{Probe, ReadBuffer, Roots, Version};
use crate::usage::{Reading, Timed};

/// Stats API calls in flight at once for containers without readable
/// cgroup files: enough to finish a few hundred within an interval,
/// without stampeding dockerd.
const API_CONCURRENCY: usize = 8;

#[derive(Debug)]
pub enum Source {
    /// Boxed: a probe holds open files, the API variant nothing.
    Cgroup(Box<Probe>),
    /// The Docker stats API: cgroup files not readable.
    Api,
}

impl Source {
    /// The source of a container just started (`pid` its main process);
    /// `version` is None when no cgroup filesystem is readable at all.
    pub fn open(roots: &Roots, version: Option<Version>, pid: Option<u32>, id: &str, name: &str) -> Source {
        let Some(v) = version else {
            return Source::Api;
        };
        match Probe::open(roots, v, pid, id) {
            Ok(p) => Source::Cgroup(Box::new(p)),
            Err(e) => {
                tracing::debug!(container = %name, error = %e, "cgroup not readable; using the stats API");
                Source::Api
            }
        }
    }
}

/// A container to read: its id, its name (for logs) and its source, which
/// falls back to the API when its cgroup files fail.
pub type Due<'a> = (&'a str, &'a str, &'a mut Source);

/// One reading per container, by id; a container whose reading failed is
/// left out of this interval.
pub async fn read_all<'a>(
    docker: &Docker,
    due: impl Iterator<Item = Due<'a>>,
    buf: &mut ReadBuffer,
) -> Vec<(String, Timed)> {
    let mut readings = Vec::with_capacity(due.size_hint().1.unwrap_or_default());
    let mut from_api: Vec<String> = Vec::new();
    // The files are kernel pseudo-files served from memory (never disk),
    // so reading them inline costs microseconds and cannot stall.
    for (id, name, source) in due {
        match source {
            Source::Cgroup(probe) => match probe.read(buf) {
                Ok(reading) => readings.push((id.to_owned(), Timed { reading, at: Instant::now() })),
                Err(e) => {
                    // Usually the container just exited (its cgroup is
                    // gone) and the die event is on its way; otherwise
                    // the API still works.
                    tracing::debug!(container = %name, error = %e, "cgroup read failed; using the stats API");
                    *source = Source::Api;
                }
            },
            Source::Api => from_api.push(id.to_owned()),
        }
    }
    if !from_api.is_empty() {
        let fetched: Vec<(String, Option<Timed>)> = futures::stream::iter(from_api)
            .map(|id| async move {
                let r = api_reading(docker, &id).await;
                (id, r)
            })
            .buffer_unordered(API_CONCURRENCY)
            .collect()
            .await;
        readings.extend(fetched.into_iter().filter_map(|(id, r)| Some((id, r?))));
    }
    readings
}

/// One reading through the Docker stats API (`stream=false`, `one-shot`:
/// no second sample inside dockerd; the rate comes from our previous one).
pub async fn api_reading(docker: &Docker, id: &str) -> Option<Timed> {
    let options = StatsOptionsBuilder::new().stream(false).one_shot(true).build();
    let mut stream = docker.stats(id, Some(options));
    match stream.next().await {
        Some(Ok(s)) => from_api(&s).map(|reading| Timed { reading, at: Instant::now() }),
        Some(Err(e)) => {
            tracing::debug!(container = %id, error = %e, "stats API failed");
            None
        }
        None => None,
    }
}

/// A reading from the Docker stats API (`stream=false`, `one-shot=true`),
/// for when the cgroup files are not readable.
fn from_api(s: &ContainerStatsResponse) -> Option<Reading> {
    let cpu_ns = s.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage?;
    let mem = s.memory_stats.as_ref();
    let stat = |key: &str| mem.and_then(|m| m.stats.as_ref()).and_then(|st| st.get(key)).copied();
    let mem_usage = mem.and_then(|m| m.usage).unwrap_or_default();
    // The Docker CLI's order: cgroup v1's hierarchical key, then v2's.
    let mem_inactive_file =
        stat("total_inactive_file").filter(|v| *v < mem_usage).or_else(|| stat("inactive_file")).unwrap_or_default();
    let (mut net_rx, mut net_tx) = (0, 0);
    for n in s.networks.iter().flat_map(|n| n.values()) {
        net_rx += n.rx_bytes.unwrap_or_default();
        net_tx += n.tx_bytes.unwrap_or_default();
    }
    let (mut blk_read, mut blk_write) = (0, 0);
    let entries = s.blkio_stats.as_ref().and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in entries.into_iter().flatten() {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => blk_read += e.value.unwrap_or_default(),
            Some("write") => blk_write += e.value.unwrap_or_default(),
            _ => {}
        }
    }
    Some(Reading {
        cpu_ns,
        mem_usage,
        mem_inactive_file,
        mem_limit: mem.and_then(|m| m.limit).filter(|l| *l > 0),
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn api_reading() {
        let s: ContainerStatsResponse = serde_json::from_value(json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 123}},
            "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"total_inactive_file": 200}},
            "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 6}, "eth1": {"rx_bytes": 1, "tx_bytes": 1}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 10},
                {"major": 8, "minor": 0, "op": "Write", "value": 20},
                {"major": 8, "minor": 0, "op": "Total", "value": 30}]},
            "pids_stats": {"current": 3}
        }))
        .unwrap();
        let r = from_api(&s).unwrap();
        assert_eq!(
            r,
            Reading {
                cpu_ns: 123,
                mem_usage: 1000,
                mem_inactive_file: 200,
                mem_limit: Some(4000),
                net_rx: 6,
                net_tx: 7,
                blk_read: 10,
                blk_write: 20,
                pids: 3
            }
        );
    }
}
