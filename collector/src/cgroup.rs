//! Reading a container's counters straight from its cgroup (v1 or v2) and
//! `/proc/<pid>/net/dev`.
//!
//! This is what dockerd itself does for `docker stats`, minus an HTTP round
//! trip, JSON, and dockerd's own per-container goroutines: a few `pread`s of
//! kernel pseudo-files per container and interval. The files are opened
//! once and re-read at offset 0, so a steady-state sample costs no path
//! lookups. The roots are configurable so a collector running in a
//! container can read the host's `/proc` and `/sys/fs/cgroup` mounted
//! elsewhere.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::{error::CollectorError, stats::Reading};

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

/// One line of `/proc/<pid>/cgroup`: `id:controllers:path`. Controllers are
/// empty on the v2 line (`0::/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?.trim();
            Some(Membership {
                controllers: controllers.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// A single number (`cpuacct.usage`, `memory.current`, `pids.current`).
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A limit: v2 writes `max` for none; v1 writes a number near `i64::MAX`,
/// which [`crate::stats::effective_limit`] caps at the host's memory.
pub fn parse_limit(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// The value of `key` in a `key value` file (`memory.stat`, `cpu.stat`).
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `8:0 Read 4096` lines
/// per device (and a `Total` line), summed over devices.
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or_default();
        match op {
            "Read" => read += v,
            "Write" => write += v,
            _ => {}
        }
    }
    (read, write)
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 ...` per device, summed.
pub fn parse_io_stat_v2(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some((k, v)) = field.split_once('=') {
            let v: u64 = v.parse().unwrap_or_default();
            match k {
                "rbytes" => read += v,
                "wbytes" => write += v,
                _ => {}
            }
        }
    }
    (read, write)
}

/// `/proc/<pid>/net/dev` of a process in the container's network
/// namespace: received and sent bytes over every interface but loopback
/// (traffic a container sends itself is not network traffic, and Docker
/// leaves it out too).
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<&str> = counters.split_whitespace().collect();
        if f.len() >= 9 {
            rx += f[0].parse::<u64>().unwrap_or_default();
            tx += f[8].parse::<u64>().unwrap_or_default();
        }
    }
    (rx, tx)
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

/// Descriptors kept open by probes, and how many they may keep: half the
/// process's limit, so Redis and Docker reconnects never starve.
static KEPT: AtomicUsize = AtomicUsize::new(0);
static BUDGET: AtomicUsize = AtomicUsize::new(400);

/// Raises the soft descriptor limit to the hard one (1024 by default is
/// about 150 containers' worth of kept-open files) and sets the budget.
pub fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return BUDGET.load(Ordering::Relaxed);
        }
        let want = lim.rlim_max.min(1 << 20);
        if want > lim.rlim_cur {
            let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
        lim.rlim_cur
    };
    let budget = (soft / 2) as usize;
    BUDGET.store(budget, Ordering::Relaxed);
    budget
}

/// Bytes asked for per read: more than any counter file a container has,
/// so one read returns all of it.
const CHUNK: usize = 16 * 1024;

/// The bytes of the file being parsed, shared by every probe a sampler
/// reads in turn: one per probe cost each container a 16 KiB allocation
/// that the kernel's pages made most of its memory.
#[derive(Debug)]
pub struct ReadBuffer(Vec<u8>);

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer(Vec::with_capacity(CHUNK))
    }
}

/// A pseudo-file kept open and re-read from offset 0.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    file: Option<File>,
}

impl Source {
    fn new(path: PathBuf) -> Self {
        // Kept open while the budget lasts; beyond it, reading still works
        // by opening the file for each read.
        let file = if KEPT.fetch_add(1, Ordering::Relaxed) < BUDGET.load(Ordering::Relaxed) {
            File::open(&path).ok()
        } else {
            None
        };
        if file.is_none() {
            KEPT.fetch_sub(1, Ordering::Relaxed);
        }
        Source { path, file }
    }

    fn read<'b>(&self, buf: &'b mut Vec<u8>) -> Result<&'b str, CollectorError> {
        buf.clear();
        let fail = |e: std::io::Error| CollectorError::Stats(format!("{}: {e}", self.path.display()));
        let opened;
        let file = match &self.file {
            Some(f) => f,
            None => {
                opened = File::open(&self.path).map_err(fail)?;
                &opened
            }
        };
        let mut chunk = [0u8; CHUNK];
        loop {
            let n = file.read_at(&mut chunk, buf.len() as u64).map_err(fail)?;
            buf.extend_from_slice(&chunk[..n]);
            // A short read is the end: a seq_file fills the whole buffer
            // while it has records. Asking again to hear "0" is not free:
            // a read at a non-zero offset makes the kernel format the whole
            // file again to find its place, doubling the cost of a sample.
            if n < CHUNK || buf.len() > 1 << 20 {
                break;
            }
        }
        std::str::from_utf8(buf).map_err(|_| CollectorError::Stats(format!("{}: not text", self.path.display())))
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if self.file.is_some() {
            KEPT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Re-read the limit every this many samples: it only changes through
/// `docker update`, and not reading it saves a file read per sample.
const LIMIT_EVERY: u32 = 30;
/// The detail files (`memory.stat`, block I/O, `net/dev`) are re-read every
/// this many samples. They are what the kernel spends most of a sample on
/// (formatting dozens of counters each), while what they give changes
/// slowly or only matters as a running total: the page cache subtracted from
/// memory usage, and I/O and network byte counts.
const DETAIL_EVERY: u32 = 5;
/// ... except `memory.stat`, re-read at once when usage moved by more than
/// this since it was last read: a growing or shrinking container gets an
/// exact working set every sample.
const USAGE_MOVED: u64 = 1 << 20;

/// The open files of one container's counters.
#[derive(Debug)]
pub struct Probe {
    version: Version,
    cpu: Source,
    mem_usage: Source,
    mem_stat: Source,
    mem_limit: PathBuf,
    blkio: Option<Source>,
    pids: Option<Source>,
    net: Option<Source>,
    limit: Option<u64>,
    limit_age: u32,
    /// Samples since the detail files were read, and what they gave.
    detail_age: u32,
    /// Memory usage when `memory.stat` was last read.
    usage_at_stat: u64,
    inactive_file: u64,
    blk: (u64, u64),
    net_bytes: (u64, u64),
}

impl Probe {
    /// Opens the files of the container `id` whose main process is `pid`.
    pub fn open(roots: &Roots, version: Version, pid: Option<u32>, id: &str) -> Result<Probe, CollectorError> {
        let dirs = locate(roots, version, pid, id).ok_or_else(|| {
            CollectorError::Stats(format!("no cgroup found for {id} under {}", roots.cgroup.display()))
        })?;
        let (cpu, usage, limit, blkio) = match version {
            Version::V1 => (
                dirs.cpu.join("cpuacct.usage"),
                dirs.memory.join("memory.usage_in_bytes"),
                dirs.memory.join("memory.limit_in_bytes"),
                "blkio.throttle.io_service_bytes_recursive",
            ),
            Version::V2 => (
                dirs.cpu.join("cpu.stat"),
                dirs.memory.join("memory.current"),
                dirs.memory.join("memory.max"),
                "io.stat",
            ),
        };
        let net =
            pid.map(|pid| roots.proc.join(pid.to_string()).join("net/dev")).filter(|p| p.is_file()).map(Source::new);
        Ok(Probe {
            version,
            cpu: Source::new(cpu),
            mem_usage: Source::new(usage),
            mem_stat: Source::new(dirs.memory.join("memory.stat")),
            mem_limit: limit,
            blkio: dirs.blkio.map(|d| Source::new(d.join(blkio))),
            pids: dirs.pids.map(|d| Source::new(d.join("pids.current"))),
            net,
            limit: None,
            limit_age: LIMIT_EVERY,
            detail_age: DETAIL_EVERY,
            usage_at_stat: 0,
            inactive_file: 0,
            blk: (0, 0),
            net_bytes: (0, 0),
        })
    }

    /// One reading, through `buf` (see [`ReadBuffer`]). CPU and memory must
    /// be readable; the rest (block I/O, pids, network) is reported as 0
    /// when its file is missing.
    pub fn read(&mut self, buf: &mut ReadBuffer) -> Result<Reading, CollectorError> {
        let bad = |what: &str| CollectorError::Stats(format!("unreadable {what}"));
        let buf = &mut buf.0;
        let cpu_ns = match self.version {
            Version::V1 => parse_u64(self.cpu.read(buf)?).ok_or_else(|| bad("cpuacct.usage"))?,
            Version::V2 => {
                parse_keyed(self.cpu.read(buf)?, "usage_usec").ok_or_else(|| bad("cpu.stat"))?.saturating_mul(1000)
            }
        };
        let mem_usage = parse_u64(self.mem_usage.read(buf)?).ok_or_else(|| bad("memory usage"))?;
        let inactive_key = match self.version {
            Version::V1 => "total_inactive_file",
            Version::V2 => "inactive_file",
        };
        let details_due = self.detail_age >= DETAIL_EVERY;
        if details_due || mem_usage.abs_diff(self.usage_at_stat) > USAGE_MOVED {
            self.inactive_file = parse_keyed(self.mem_stat.read(buf)?, inactive_key).unwrap_or_default();
            self.usage_at_stat = mem_usage;
        }
        if self.limit_age >= LIMIT_EVERY {
            let text = std::fs::read_to_string(&self.mem_limit)
                .map_err(|e| CollectorError::Stats(format!("{}: {e}", self.mem_limit.display())))?;
            self.limit = parse_limit(&text).ok_or_else(|| bad("memory limit"))?;
            self.limit_age = 0;
        }
        self.limit_age += 1;
        if details_due {
            self.blk = match &self.blkio {
                Some(s) => match (self.version, s.read(buf)) {
                    (Version::V1, Ok(t)) => parse_blkio_v1(t),
                    (Version::V2, Ok(t)) => parse_io_stat_v2(t),
                    (_, Err(_)) => (0, 0),
                },
                None => (0, 0),
            };
            self.net_bytes = self.net.as_ref().and_then(|s| s.read(buf).ok().map(parse_net_dev)).unwrap_or_default();
            self.detail_age = 0;
        }
        self.detail_age += 1;
        let ((blk_read, blk_write), (net_rx, net_tx)) = (self.blk, self.net_bytes);
        let pids = self.pids.as_ref().and_then(|s| s.read(buf).ok().and_then(parse_u64)).unwrap_or_default();
        Ok(Reading {
            cpu_ns,
            mem_usage,
            mem_inactive_file: self.inactive_file,
            mem_limit: self.limit,
            net_rx,
            net_tx,
            blk_read,
            blk_write,
            pids,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const ID: &str = "d96f0e59e96c67d13e948f103db5b4ae2a49eecf5ececa8757c71a500aecf686";

    const PROC_V1: &str = "9:name=systemd:/docker/d96f\n8:pids:/docker/d96f\n7:blkio:/docker/d96f\n\
        4:memory:/docker/d96f\n2:cpu,cpuacct:/docker/d96f\n0::/docker/d96f\n";

    const MEMORY_STAT_V1: &str = "cache 253952\nrss 53248\ninactive_file 4096\n\
        total_cache 253952\ntotal_rss 53248\ntotal_inactive_file 8192\ntotal_active_file 245760\n";

    const BLKIO_V1: &str = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n\
        8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 0\nTotal 12388\n";

    const MEMORY_STAT_V2: &str = "anon 1048576\nfile 2097152\nkernel 98304\n\
        active_file 1048576\ninactive_file 524288\nworkingset_refault_file 0\n";

    const CPU_STAT_V2: &str = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
        nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";

    const IO_STAT_V2: &str = "8:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n\
        259:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n";

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
        lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n  \
        eth0:   12345      10    0    0    0     0          0         0     6789       8    0    0    0     0       0          0\n";

    #[test]
    fn parses_v1_files() {
        let m = parse_proc_cgroup(PROC_V1);
        assert_eq!(m[4].controllers, ["cpu", "cpuacct"]);
        assert_eq!(m[4].path, "/docker/d96f");
        assert!(m[5].controllers.is_empty());
        assert_eq!(parse_keyed(MEMORY_STAT_V1, "total_inactive_file"), Some(8192));
        assert_eq!(parse_keyed(MEMORY_STAT_V1, "inactive_file"), Some(4096));
        assert_eq!(parse_blkio_v1(BLKIO_V1), (4196, 8192));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(Some(9_223_372_036_854_771_712)));
        assert_eq!(parse_u64("27796936\n"), Some(27_796_936));
        assert_eq!(parse_u64("x"), None);
    }

    #[test]
    fn parses_v2_files() {
        assert_eq!(parse_keyed(CPU_STAT_V2, "usage_usec"), Some(1_234_567));
        assert_eq!(parse_keyed(MEMORY_STAT_V2, "inactive_file"), Some(524_288));
        assert_eq!(parse_io_stat_v2(IO_STAT_V2), (1010, 2020));
        assert_eq!(parse_limit("max\n"), Some(None));
        assert_eq!(parse_limit("16777216\n"), Some(Some(16 << 20)));
        assert_eq!(parse_limit("lots"), None);
        assert_eq!(parse_net_dev(NET_DEV), (12345, 6789));
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hemostat-cgroup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn reads_a_v2_fixture_tree() {
        let base = scratch("v2");
        let roots = Roots { proc: base.join("proc"), cgroup: base.join("cg") };
        write(&roots.proc.join("42/cgroup"), &format!("0::/system.slice/docker-{ID}.scope\n"));
        write(&roots.proc.join("42/net/dev"), NET_DEV);
        write(&roots.cgroup.join("cgroup.controllers"), "cpu memory io pids\n");
        let dir = roots.cgroup.join(format!("system.slice/docker-{ID}.scope"));
        write(&dir.join("cpu.stat"), CPU_STAT_V2);
        write(&dir.join("memory.current"), "4194304\n");
        write(&dir.join("memory.max"), "max\n");
        write(&dir.join("memory.stat"), MEMORY_STAT_V2);
        write(&dir.join("io.stat"), IO_STAT_V2);
        write(&dir.join("pids.current"), "3\n");
        assert_eq!(roots.version(), Some(Version::V2));
        let mut probe = Probe::open(&roots, Version::V2, Some(42), ID).unwrap();
        let r = probe.read(&mut ReadBuffer::default()).unwrap();
        assert_eq!(
            r,
            Reading {
                cpu_ns: 1_234_567_000,
                mem_usage: 4 << 20,
                mem_inactive_file: 524_288,
                mem_limit: None,
                net_rx: 12345,
                net_tx: 6789,
                blk_read: 1010,
                blk_write: 2020,
                pids: 3,
            }
        );
        // Re-reading an open file sees new contents (offset 0 each time).
        write(&dir.join("pids.current"), "7\n");
        assert_eq!(probe.read(&mut ReadBuffer::default()).unwrap().pids, 7);
        // The detail files wait for their turn, unless usage moved: then
        // the working set is exact at once.
        write(&dir.join("memory.stat"), &MEMORY_STAT_V2.replace("inactive_file 524288", "inactive_file 4096"));
        write(&dir.join("io.stat"), &IO_STAT_V2.replace("rbytes=1000", "rbytes=9000"));
        assert_eq!(
            probe.read(&mut ReadBuffer::default()).unwrap().mem_inactive_file,
            524_288,
            "usage unchanged: memory.stat not re-read"
        );
        write(&dir.join("memory.current"), "8388608\n");
        let r = probe.read(&mut ReadBuffer::default()).unwrap();
        assert_eq!((r.mem_usage, r.mem_inactive_file, r.blk_read), (8 << 20, 4096, 1010));
        for _ in 0..DETAIL_EVERY {
            probe.read(&mut ReadBuffer::default()).unwrap();
        }
        assert_eq!(
            probe.read(&mut ReadBuffer::default()).unwrap().blk_read,
            9010,
            "block I/O re-read every {DETAIL_EVERY} samples"
        );
        // A file longer than one read is read whole.
        let long = format!("{}inactive_file 77\n", "x 1\n".repeat(CHUNK));
        write(&dir.join("memory.stat"), &long);
        write(&dir.join("memory.current"), "4194304\n");
        assert_eq!(probe.read(&mut ReadBuffer::default()).unwrap().mem_inactive_file, 77);
        // Without a pid (or /proc), the systemd-driver path is guessed.
        assert!(locate(&roots, Version::V2, None, ID).is_some());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn reads_a_v1_fixture_tree_with_joint_cpu_mount() {
        let base = scratch("v1");
        let roots = Roots { proc: base.join("proc"), cgroup: base.join("cg") };
        write(
            &roots.proc.join("7/cgroup"),
            &format!("8:pids:/docker/{ID}\n7:blkio:/docker/{ID}\n4:memory:/docker/{ID}\n2:cpu,cpuacct:/docker/{ID}\n"),
        );
        let cg = &roots.cgroup;
        write(&cg.join(format!("cpu,cpuacct/docker/{ID}/cpuacct.usage")), "5000000000\n");
        let mem = cg.join(format!("memory/docker/{ID}"));
        write(&mem.join("memory.usage_in_bytes"), "16777216\n");
        write(&mem.join("memory.limit_in_bytes"), "33554432\n");
        write(&mem.join("memory.stat"), MEMORY_STAT_V1);
        write(&cg.join(format!("blkio/docker/{ID}/blkio.throttle.io_service_bytes_recursive")), BLKIO_V1);
        write(&cg.join(format!("pids/docker/{ID}/pids.current")), "2\n");
        assert_eq!(roots.version(), Some(Version::V1));
        let r = Probe::open(&roots, Version::V1, Some(7), ID).unwrap().read(&mut ReadBuffer::default()).unwrap();
        assert_eq!(r.cpu_ns, 5_000_000_000);
        assert_eq!((r.mem_usage, r.mem_inactive_file, r.mem_limit), (16 << 20, 8192, Some(32 << 20)));
        assert_eq!((r.blk_read, r.blk_write, r.pids), (4196, 8192, 2));
        // No network namespace file: zero, not an error.
        assert_eq!((r.net_rx, r.net_tx), (0, 0));
        // Paths escaping the root (another cgroup namespace) are not followed.
        write(&roots.proc.join("8/cgroup"), "4:memory:/../../x\n");
        assert!(locate(&roots, Version::V1, Some(8), "other").is_none());
        let _ = std::fs::remove_dir_all(&base);
    }
}
