//! Where a running container's readings come from: its cgroup files when
//! they are readable (microseconds, no daemon involved), else the Docker
//! stats API (a request to dockerd per container per interval).

use std::time::Instant;

use bollard::{Docker, query_parameters::StatsOptionsBuilder};
use futures::StreamExt;

use crate::{
    cgroup::{Probe, ReadBuffer, Roots, Version},
    stats::{self, Timed},
};

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
        Some(Ok(s)) => stats::from_api(&s).map(|reading| Timed { reading, at: Instant::now() }),
        Some(Err(e)) => {
            tracing::debug!(container = %id, error = %e, "stats API failed");
            None
        }
        None => None,
    }
}
