//! Where the host's cgroup filesystem and `/proc` are, which hierarchy it
//! uses, and where a container's cgroup directories are in it.

use std::path::PathBuf;

use super::files::parse_proc_cgroup;

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (`memory/`, `cpuacct/`, ...).
    V1,
    /// The unified hierarchy (`cgroup.controllers` at the root).
    V2,
}

/// Where the host's `/proc` and cgroup filesystem are mounted.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    pub cgroup: PathBuf,
}

impl Roots {
    /// None when no cgroup filesystem is readable there (e.g. a collector
    /// in a container without the host's `/sys/fs/cgroup`).
    pub fn version(&self) -> Option<Version> {
        if self.cgroup.join("cgroup.controllers").is_file() {
            Some(Version::V2)
        } else if self.cgroup.join("memory").is_dir() {
            // Also the hybrid layout: v2 mounted at `unified/` carries no
            // controllers there, so the v1 hierarchies are the ones to read.
            Some(Version::V1)
        } else {
            None
        }
    }
}

/// The container's cgroup directories (all the same one on v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub cpu: PathBuf,
    pub memory: PathBuf,
    pub blkio: Option<PathBuf>,
    pub pids: Option<PathBuf>,
}

/// Finds the container's cgroup: first where `/proc/<pid>/cgroup` says it
/// is, then the places Docker's cgroupfs and systemd drivers put it (for a
/// collector in its own cgroup namespace, where those paths read `/..`).
pub fn locate(roots: &Roots, version: Version, pid: Option<u32>, id: &str) -> Option<Dirs> {
    let members = pid
        .and_then(|pid| std::fs::read_to_string(roots.proc.join(pid.to_string()).join("cgroup")).ok())
        .map(|t| parse_proc_cgroup(&t))
        .unwrap_or_default();
    let guesses = [format!("docker/{id}"), format!("system.slice/docker-{id}.scope")];
    let root = &roots.cgroup;
    match version {
        Version::V2 => {
            let from_proc =
                members.iter().find(|m| m.controllers.is_empty()).map(|m| m.path.trim_start_matches('/').to_owned());
            let dir = from_proc
                .into_iter()
                .chain(guesses)
                .filter(|p| !p.split('/').any(|c| c == ".."))
                .map(|p| root.join(p))
                .find(|d| d.join("cpu.stat").is_file() && d.join("memory.current").is_file())?;
            Some(Dirs { cpu: dir.clone(), memory: dir.clone(), blkio: Some(dir.clone()), pids: Some(dir) })
        }
        Version::V1 => {
            // A controller's directory: mounts may be per controller
            // (`cpuacct/`) or joint (`cpu,cpuacct/`, with symlinks).
            let find = |controller: &str, probe: &str| -> Option<PathBuf> {
                let from_proc = members
                    .iter()
                    .find(|m| m.controllers.iter().any(|c| c == controller))
                    .map(|m| {
                        let rel = m.path.trim_start_matches('/').to_owned();
                        vec![(m.controllers.join(","), rel.clone()), (controller.to_owned(), rel)]
                    })
                    .unwrap_or_default();
                let guessed = guesses.iter().map(|g| (controller.to_owned(), g.clone()));
                from_proc
                    .into_iter()
                    .chain(guessed)
                    .filter(|(_, p)| !p.split('/').any(|c| c == ".."))
                    .map(|(mount, p)| root.join(mount).join(p))
                    .find(|d| d.join(probe).is_file())
            };
            Some(Dirs {
                cpu: find("cpuacct", "cpuacct.usage")?,
                memory: find("memory", "memory.usage_in_bytes")?,
                blkio: find("blkio", "blkio.throttle.io_service_bytes_recursive"),
                pids: find("pids", "pids.current"),
            })
        }
    }
}
