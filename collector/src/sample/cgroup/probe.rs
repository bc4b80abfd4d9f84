//! A container's counter files, opened once and re-read at offset 0 each
//! interval, within a budget of open descriptors.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use super::{
    files::{parse_blkio_v1, parse_io_stat_v2, parse_keyed, parse_limit, parse_net_dev, parse_u64},
    layout::{Roots, Version, locate},
};
use crate::{error::CollectorError, usage::Reading};

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
struct KeptFile {
    path: PathBuf,
    file: Option<File>,
}

impl KeptFile {
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
        KeptFile { path, file }
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

impl Drop for KeptFile {
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
    cpu: KeptFile,
    mem_usage: KeptFile,
    mem_stat: KeptFile,
    mem_limit: PathBuf,
    blkio: Option<KeptFile>,
    pids: Option<KeptFile>,
    net: Option<KeptFile>,
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
            pid.map(|pid| roots.proc.join(pid.to_string()).join("net/dev")).filter(|p| p.is_file()).map(KeptFile::new);
        Ok(Probe {
            version,
            cpu: KeptFile::new(cpu),
            mem_usage: KeptFile::new(usage),
            mem_stat: KeptFile::new(dirs.memory.join("memory.stat")),
            mem_limit: limit,
            blkio: dirs.blkio.map(|d| KeptFile::new(d.join(blkio))),
            pids: dirs.pids.map(|d| KeptFile::new(d.join("pids.current"))),
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

    use super::{super::files::samples::*, *};

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
