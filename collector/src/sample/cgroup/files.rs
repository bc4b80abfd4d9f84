//! The counter files of cgroup v1 and v2 and of `/proc`, parsed: pure
//! functions of the text the kernel writes, so each format is tested on
//! samples of it.

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
/// which [`crate::usage::effective_limit`] caps at the host's memory.
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

/// The host's memory (MemTotal of `<proc>/meminfo`), in bytes; 0 if unknown.
pub fn host_memory(proc_root: &std::path::Path) -> u64 {
    std::fs::read_to_string(proc_root.join("meminfo")).ok().and_then(|t| parse_mem_total(&t)).unwrap_or_default()
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
pub(super) mod samples {
    //! What the kernel writes, as the tests here and the probe's read it.
    pub const ID: &str = "d96f0e59e96c67d13e948f103db5b4ae2a49eecf5ececa8757c71a500aecf686";

    pub const PROC_V1: &str = "9:name=systemd:/docker/d96f\n8:pids:/docker/d96f\n7:blkio:/docker/d96f\n\
        4:memory:/docker/d96f\n2:cpu,cpuacct:/docker/d96f\n0::/docker/d96f\n";

    pub const MEMORY_STAT_V1: &str = "cache 253952\nrss 53248\ninactive_file 4096\n\
        total_cache 253952\ntotal_rss 53248\ntotal_inactive_file 8192\ntotal_active_file 245760\n";

    pub const BLKIO_V1: &str = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n\
        8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 0\nTotal 12388\n";

    pub const MEMORY_STAT_V2: &str = "anon 1048576\nfile 2097152\nkernel 98304\n\
        active_file 1048576\ninactive_file 524288\nworkingset_refault_file 0\n";

    pub const CPU_STAT_V2: &str = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
        nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";

    pub const IO_STAT_V2: &str = "8:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n\
        259:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n";

    pub const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
        lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n  \
        eth0:   12345      10    0    0    0     0          0         0     6789       8    0    0    0     0       0          0\n";
}

#[cfg(test)]
mod tests {
    use super::{samples::*, *};

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

    #[test]
    fn mem_total() {
        assert_eq!(parse_mem_total("MemTotal:       24684000 kB\nMemFree: 1 kB\n"), Some(24_684_000 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }
}
