//! Command-line flags and their environment variables.

use std::time::Duration;

use clap::Parser;
use hemostat_protocol::{
    command::VerifyingKeys,
    config::{DEFAULT_REDIS_URL, library_help, parse_duration},
    secret::RedisUrl,
};

/// Suspects judged at once by default (`HEMOSTAT_ALERT_CONCURRENCY`).
pub const ALERT_CONCURRENCY: u16 = 16;

/// HemoStat collector: watches this host's Docker engine, reports crashes
/// and executes remediation commands.
///
/// `Debug` is derived: the command key is a [`Secret`] and the Redis URL a
/// [`RedisUrl`], so logging a Config shows neither the key nor a password.
#[derive(Debug, Clone, Parser)]
#[command(name = "hemostat-collector", version, about, after_help = library_help())]
pub struct Config {
    /// Redis URL (redis:// or rediss://, may carry a password).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true, value_parser = clap::value_parser!(RedisUrl))]
    pub redis_url: RedisUrl,

    /// Docker Engine endpoint: unix:// socket, tcp:// (mutual TLS with
    /// DOCKER_TLS_VERIFY or DOCKER_CERT_PATH, else plain HTTP), https://
    /// (always TLS) or ssh://[user@]host[:port][/path/to/docker.sock]
    /// (one forward by the ssh client; see docs/src/docker-engine.md).
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,

    /// Any non-empty value (as Docker's client reads it, `0` included):
    /// the tcp:// engine is reached over mutual TLS with DOCKER_CERT_PATH's
    /// files and verified against its ca.pem. A missing or unreadable file
    /// stops the collector; it never falls back to plain HTTP.
    #[arg(long, env = "DOCKER_TLS_VERIFY", default_value = "", hide_default_value = true)]
    pub docker_tls_verify: String,

    /// Folder with ca.pem, cert.pem and key.pem (Docker's names) for a TLS
    /// engine; set, tcp:// is TLS even without DOCKER_TLS_VERIFY. Default:
    /// ~/.docker.
    #[arg(long, env = "DOCKER_CERT_PATH")]
    pub docker_cert_path: Option<std::path::PathBuf>,

    /// For an ssh:// engine: the ssh client configuration file to use
    /// (`ssh -F`: identity, known hosts, jump host) instead of the user's
    /// ~/.ssh/config.
    #[arg(long, env = "DOCKER_SSH_CONFIG")]
    pub docker_ssh_config: Option<std::path::PathBuf>,

    /// This host's name in the fleet: commands are addressed to it and
    /// alerts carry it. Defaults to the machine's hostname. Letters, digits,
    /// `.`, `-` and `_` only: it prefixes this host's Redis keys (and its
    /// Redis ACL user's patterns).
    #[arg(long = "host", env = "HEMOSTAT_HOST", default_value_t = hostname(), value_parser = parse_host)]
    pub host: String,

    /// Public keys (base64, comma-separated; two during a rotation) that
    /// remediation commands must be signed for (Ed25519): anything unsigned,
    /// forged or signed with another key is refused. The collector holds no
    /// key that can sign. Without one, every command is refused, unless
    /// HEMOSTAT_INSECURE_UNSIGNED_COMMANDS says otherwise.
    #[arg(long, env = "HEMOSTAT_COMMAND_PUBLIC_KEYS", default_value = "")]
    pub command_public_keys: String,

    /// Accept unsigned commands when no public key is set (anyone who can
    /// write this host's command stream can then make it act): for a
    /// throwaway test bed only.
    #[arg(long, env = "HEMOSTAT_INSECURE_UNSIGNED_COMMANDS", default_value_t = false, action = clap::ArgAction::Set)]
    pub insecure_unsigned_commands: bool,

    /// Grace period before a stop or restart kills the container (e.g. 10,
    /// 10s, 500ms), for a container that sets none: its label
    /// `hemostat.stop_timeout` (or autoheal's `autoheal.stop.timeout`), else
    /// its own `StopTimeout` (compose's `stop_grace_period`), comes first.
    #[arg(long, env = "HEMOSTAT_STOP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// No action on a container within this long after an operator's own
    /// `docker stop`, `restart`, `kill` or `pause`, nor while it is paused
    /// (e.g. 30s; 0 turns it off): its alerts say so and the gate refuses.
    /// The collector's own actions never count.
    #[arg(long, env = "HEMOSTAT_OPERATOR_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub operator_grace: Duration,

    /// No action on a container created (or recreated) within this long:
    /// a deploy, `compose up` or an image updater is still at work (e.g.
    /// 60s; 0, the default, acts at once).
    #[arg(long, env = "HEMOSTAT_CREATE_GRACE", default_value = "0s", value_parser = parse_duration)]
    pub create_grace: Duration,

    /// No action on a container compose created within this long to
    /// replace another (`compose up` after a change; its label
    /// `com.docker.compose.replace`): the deploy is still at work. 0: off.
    #[arg(long, env = "HEMOSTAT_RECREATE_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub recreate_grace: Duration,

    /// How often the heartbeat key is refreshed (its TTL is three times this).
    #[arg(long, env = "HEMOSTAT_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Manage only containers carrying these labels: `key=value` or `key`,
    /// comma-separated, all must match (empty: every container). Lets
    /// several collectors share one engine without touching each other's
    /// containers.
    #[arg(long, env = "HEMOSTAT_LABEL_SELECTOR", default_value = "")]
    pub label_selector: String,

    /// Opt-in mode: manage only containers labelled `hemostat.enable=true`
    /// (or autoheal's `autoheal=true`).
    #[arg(long, env = "HEMOSTAT_OPT_IN", default_value_t = false, value_parser = parse_flag)]
    pub opt_in: bool,

    /// Closed loop: after restart, start or scale_up, the container must
    /// stay running (and become healthy, if it has a health check) this
    /// long before the fix counts as verified (e.g. 10s; 0: one check right
    /// after the action). The default is short so outcomes arrive promptly;
    /// raise it for services that crash a while after starting.
    #[arg(long, env = "HEMOSTAT_VERIFY_SECONDS", default_value = "3s", value_parser = parse_duration)]
    pub verify_seconds: Duration,

    /// Commands `exec` may run, comma-separated. An entry without spaces is
    /// a program: it allows that exact argv[0] with any arguments (`nginx`
    /// allows `nginx -s reload`, not `/usr/sbin/nginx`). An entry with
    /// spaces is an exact command line (`nginx -s reload`). A container's
    /// label `hemostat.exec_allowlist` adds entries for that container.
    /// Empty: only what labels allow.
    #[arg(long, env = "HEMOSTAT_EXEC_ALLOWLIST", default_value = "")]
    pub exec_allowlist: String,

    /// An `exec` still running after this long is reported as failed (it
    /// is left running: Docker cannot kill an exec).
    #[arg(long, env = "HEMOSTAT_EXEC_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub exec_timeout: Duration,

    /// `cleanup` removes an exited container only once it has been down
    /// this long (and never one Docker may start again by its restart
    /// policy): what crashed recently is evidence, and may be about to be
    /// healed. Never shorter than `HEMOSTAT_COMMAND_MAX_AGE`.
    #[arg(long, env = "HEMOSTAT_CLEANUP_MIN_AGE", default_value = "24h", value_parser = parse_duration)]
    pub cleanup_min_age: Duration,

    /// `scale_up` adds a replica only while the service (its compose
    /// service, or the container and the replicas made of it) has fewer
    /// containers than this.
    #[arg(long, env = "HEMOSTAT_SCALE_MAX_REPLICAS", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub scale_max_replicas: u16,

    /// Commands whose Docker work (the action, and a restart's dependents)
    /// runs at once, for different containers; verifying a fix afterwards
    /// holds no slot. Commands for one container always run one after
    /// another, in order.
    #[arg(long, env = "HEMOSTAT_COMMAND_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub command_concurrency: u16,

    /// Exits and unhealthy flags judged at once (each inspected, its
    /// alert's evidence gathered and handed to the outbox): a burst of
    /// crashes on the host is not reported one after another. One
    /// container's are judged in the order of their events.
    #[arg(long, env = "HEMOSTAT_ALERT_CONCURRENCY", default_value_t = ALERT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub alert_concurrency: u16,

    /// A command issued longer ago than this is refused as expired and
    /// reported, never executed (e.g. 5m; 0 accepts any age): a collector
    /// back after an outage does not replay the restarts queued meanwhile.
    #[arg(long, env = "HEMOSTAT_COMMAND_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub command_max_age: Duration,

    /// Log lines attached to an alert as evidence (the tail since the
    /// container's last start); 0 attaches none.
    #[arg(long, env = "HEMOSTAT_EVIDENCE_LINES", default_value_t = 50)]
    pub evidence_lines: u32,

    /// Cap on an alert's evidence (log lines, health output, Docker state),
    /// in bytes of JSON: the oldest lines go first.
    #[arg(long, env = "HEMOSTAT_EVIDENCE_MAX_BYTES", default_value_t = 4096)]
    pub evidence_max_bytes: usize,

    /// Read containers' logs into evidence at all (false: state and health
    /// only, for every container; the label `hemostat.evidence.logs=false`
    /// turns logs off for one).
    #[arg(long, env = "HEMOSTAT_EVIDENCE_LOGS", default_value_t = true, value_parser = parse_flag)]
    pub evidence_logs: bool,

    /// More redaction patterns (Rust regex syntax, comma-separated) for
    /// container output (logs, health checks, `exec` output, Docker's
    /// error text), on top of the built-in ones (tokens, keys, passwords in
    /// URLs, `password=` style assignments); a match becomes `[REDACTED]`
    /// before anything leaves the host.
    #[arg(long, env = "HEMOSTAT_REDACT_PATTERNS", value_delimiter = ',', default_value = "")]
    pub redact_patterns: Vec<String>,

    /// How often every running container's CPU, memory, network, block
    /// I/O and pids are sampled and written to `hemostat:stats:<host/name>`
    /// (e.g. 1s, 500ms; 0 turns sampling and threshold alerts off).
    #[arg(long, env = "HEMOSTAT_STATS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// Where the host's /proc is mounted (a collector in a container reads
    /// the host's, e.g. /host/proc). Network counters and cgroup membership
    /// come from here.
    #[arg(long, env = "HEMOSTAT_PROC_ROOT", default_value = "/proc")]
    pub proc_root: std::path::PathBuf,

    /// Where the host's cgroup filesystem (v1 or v2) is mounted. When it is
    /// not readable, stats come from the Docker stats API instead (slower).
    #[arg(long, env = "HEMOSTAT_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: std::path::PathBuf,

    /// CPU percent (100 = one core, as `docker stats`) above which a
    /// sustained value is a `high_cpu` alert.
    #[arg(long, env = "THRESHOLD_CPU_PERCENT", default_value_t = 85.0)]
    pub threshold_cpu_percent: f64,

    /// Memory percent of the limit (of the host's memory when unlimited)
    /// above which a sustained value is a `high_memory` alert.
    #[arg(long, env = "THRESHOLD_MEMORY_PERCENT", default_value_t = 80.0)]
    pub threshold_memory_percent: f64,

    /// How long CPU or memory must stay above its threshold before it is
    /// an alert: short bursts (GC, a request spike, a cron job) are normal.
    #[arg(long, env = "HEMOSTAT_SUSTAIN_SECONDS", default_value = "10s", value_parser = parse_duration)]
    pub sustain_seconds: Duration,

    /// After an alert, how long the value must stay below the threshold
    /// minus the clear margin before another alert of that kind can fire
    /// for that container (no repeats while it stays high, no flapping).
    #[arg(long, env = "HEMOSTAT_CLEAR_SECONDS", default_value = "30s", value_parser = parse_duration)]
    pub clear_seconds: Duration,

    /// Percentage points below the threshold that count as recovered.
    #[arg(long, env = "HEMOSTAT_CLEAR_MARGIN", default_value_t = 10.0)]
    pub clear_margin: f64,

    /// Memory leak detection: the sliding window the memory trend is
    /// fitted over (at most 600 samples are kept per container).
    #[arg(long, env = "HEMOSTAT_LEAK_WINDOW", default_value = "2m", value_parser = parse_duration)]
    pub leak_window: Duration,

    /// Memory leak detection: alert when steady growth would reach the
    /// memory limit within this long.
    #[arg(long, env = "HEMOSTAT_LEAK_HORIZON", default_value = "10m", value_parser = parse_duration)]
    pub leak_horizon: Duration,

    /// More restarts than this within the restart window is an
    /// `excessive_restarts` alert (a restart loop).
    #[arg(long, env = "HEMOSTAT_MAX_RESTARTS", default_value_t = 3)]
    pub max_restarts: u32,

    /// The window restarts are counted over.
    #[arg(long, env = "HEMOSTAT_RESTART_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub restart_window: Duration,

    /// Bytes on disk the outbox may take (events waiting for Redis:
    /// alerts, command outcomes), e.g. 64MiB, 512KiB, or a number of bytes.
    /// When full, the oldest are dropped (and counted in the log). 64 MiB
    /// is about 11,000 crash alerts with 4 KB of evidence.
    #[arg(long, env = "HEMOSTAT_OUTBOX_MAX_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub outbox_max_bytes: u64,

    /// How long the outbox retries an event Redis refuses for a reason
    /// that may pass (OOM, an error it does not know) before it moves it to
    /// its dead-letter file and sends the next one (e.g. 10m).
    #[arg(long, env = "HEMOSTAT_OUTBOX_REFUSAL_PATIENCE", default_value = "10m", value_parser = parse_duration)]
    pub outbox_refusal_patience: Duration,

    /// Alert exits with code 137, 143 or 255 that happened while the
    /// Docker daemon was unreachable and that no event reported: by default
    /// they are taken for the daemon (or runtime) restart killing the
    /// container, which is not an application crash.
    #[arg(long, env = "HEMOSTAT_ALERT_DAEMON_RESTART_EXITS", default_value_t = false, value_parser = parse_flag)]
    pub alert_daemon_restart_exits: bool,

    /// The collector's durable state folder, created (0700) at start: where
    /// it keeps its place in the Docker event stream (`cursor.json`), so
    /// that exits while it was stopped are reported when it is back, and
    /// its outbox (`outbox/`). Default: systemd's STATE_DIRECTORY (the
    /// unit's `StateDirectory=`), else /var/lib/hemostat/collector. Must be
    /// writable: the collector does not start otherwise.
    #[arg(long, env = "HEMOSTAT_COLLECTOR_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,

    /// Back after a longer absence than this, the collector reports only
    /// the exits of the last this-long (and says so in its log): older
    /// news is not worth a restart now (e.g. 24h, 30m; 0: never catch up,
    /// start from now).
    #[arg(long, env = "HEMOSTAT_RESUME_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub resume_max_age: Duration,

    /// Heal while the control plane is away: a crash (or OOM kill) whose
    /// alert has not been taken by the analyzer this long after it (Redis
    /// down or refusing, the bridge or the functions down) is restarted by
    /// the collector itself, as a kubelet keeps restarting pods while its
    /// API server is down: only restarts, only for containers whose labels
    /// allow them, not held and not silenced (the last silences read),
    /// under the collector's own limits (`HEMOSTAT_EDGE_COOLDOWN`,
    /// `HEMOSTAT_EDGE_MAX_PER_HOUR`, kept in the state folder), verified as
    /// usual, and reported (`analysis_method` `edge`) once Redis is back.
    /// 0 turns it off: no action without the gate.
    #[arg(long, env = "HEMOSTAT_EDGE_HEAL_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub edge_heal_after: Duration,

    /// Edge restarts of one container at least this far apart.
    #[arg(long, env = "HEMOSTAT_EDGE_COOLDOWN", default_value = "1m", value_parser = parse_duration)]
    pub edge_cooldown: Duration,

    /// Edge restarts of one container in any hour, at most (its own
    /// `hemostat.max_actions_per_hour` and `hemostat.cooldown` apply too).
    #[arg(long, env = "HEMOSTAT_EDGE_MAX_PER_HOUR", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub edge_max_per_hour: u16,
    /// When Docker's event stream has delivered nothing for this long, the
    /// collector asks the engine whether it answers (a ping, with its own
    /// timeout) and reopens the stream from its place, replaying what
    /// happened meanwhile: a stream that hangs without an error (a
    /// half-open connection; Docker's client timeout covers only response
    /// headers, never a stream's body) is replaced within this long, and
    /// nothing is lost (e.g. 60s; 0: never).
    #[arg(long, env = "HEMOSTAT_EVENTS_IDLE", default_value = "60s", value_parser = parse_duration)]
    pub events_idle: Duration,

    /// Serve `/healthz` (each task's progress, JSON; 503 naming the
    /// stalled ones) and `/metrics` (Prometheus text) on this address, e.g.
    /// 127.0.0.1:9465. Unset: no listener.
    #[arg(long, env = "HEMOSTAT_COLLECTOR_LISTEN")]
    pub listen: Option<String>,

    /// Print one JSON snapshot of every container and exit.
    #[arg(long)]
    pub once: bool,

    /// A verb instead of running (the settings above still apply).
    #[command(subcommand)]
    pub verb: Option<crate::verbs::Verb>,
}

fn parse_flag(s: &str) -> Result<bool, String> {
    hemostat_protocol::config::parse_bool(s).ok_or_else(|| format!("{s:?} is not true or false"))
}

impl Config {
    /// The state folder: [`Config::state_dir`], else systemd's
    /// `STATE_DIRECTORY`, else the default.
    pub fn state_dir(&self) -> std::path::PathBuf {
        crate::state::resolve(self.state_dir.as_deref(), std::env::var_os("STATE_DIRECTORY"))
    }

    /// The Docker endpoint and its TLS files, checked: an error here is a
    /// setting to fix, not an engine to wait for.
    pub(crate) fn docker_endpoint(&self) -> Result<crate::docker::Endpoint, crate::error::CollectorError> {
        let cert_path = self.docker_cert_path.as_deref().filter(|p| !p.as_os_str().is_empty());
        let ssh_config = self.docker_ssh_config.as_deref().filter(|p| !p.as_os_str().is_empty());
        Ok(crate::docker::Endpoint::new(&self.docker_host, !self.docker_tls_verify.is_empty(), cert_path)?
            .ssh_config(ssh_config))
    }

    pub fn scope(&self) -> Result<crate::scope::Scope, crate::error::CollectorError> {
        crate::scope::Scope::new(&self.label_selector, self.opt_in).map_err(crate::error::CollectorError::Config)
    }

    /// What commands must be signed with: `Some(keys)`, or `None` when the
    /// operator accepts unsigned commands. Without keys and without that
    /// consent, an error: the collector does not run open.
    pub fn command_keys(&self) -> Result<Option<VerifyingKeys>, crate::error::CollectorError> {
        let keys = VerifyingKeys::parse(&self.command_public_keys)
            .map_err(|e| crate::error::CollectorError::Config(format!("HEMOSTAT_COMMAND_PUBLIC_KEYS: {e}")))?;
        match (keys.is_empty(), self.insecure_unsigned_commands) {
            (false, _) => Ok(Some(keys)),
            (true, true) => Ok(None),
            (true, false) => Err(crate::error::CollectorError::Config(
                "no HEMOSTAT_COMMAND_PUBLIC_KEYS: commands could not be verified. Give the responder's public \
                 key (`hemostat keys generate` makes a pair), or set HEMOSTAT_INSECURE_UNSIGNED_COMMANDS=true \
                 on a test bed"
                    .into(),
            )),
        }
    }
}

/// A size in bytes: a number, or one with `KiB`, `MiB`, `GiB` (also `K`,
/// `M`, `G`, `KB`, `MB`, `GB`: powers of 1024 all). At least 64 KiB.
fn parse_bytes(s: &str) -> Result<u64, String> {
    const MIN: u64 = 64 << 10;
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?} is not a size (e.g. 64MiB, 512KiB, 1048576)")),
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 64MiB, 512KiB, 1048576)"))?;
    if bytes < MIN {
        return Err(format!("{s:?} is less than the least the outbox needs, 64KiB"));
    }
    Ok(bytes)
}

/// The machine's hostname: /etc/hostname, else the `hostname` command.
fn parse_host(text: &str) -> Result<String, String> {
    hemostat_protocol::container::check_host(text).map(|()| text.to_owned())
}

pub fn hostname() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned());
    let name = from_file.filter(|s| !s.is_empty()).or_else(|| {
        std::process::Command::new("hostname")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    name.unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Config::parse_from(["hemostat-collector", "--redis-url", "redis://:hunter2@r:6379", "--host", "h1"]);
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("redis://***@r:6379"), "{s}");
        assert_eq!(&*c.redis_url, "redis://:hunter2@r:6379");
    }

    #[test]
    fn outbox_sizes_take_units_and_refuse_nonsense() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        for bad in ["", "MiB", "-1", "10", "1.5MiB", "64 parsecs", "99999999999999999999GiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_must_be_signed_unless_the_operator_says_otherwise() {
        let (_, public) = hemostat_protocol::command::SigningKey::generate().unwrap();
        let signed = Config::parse_from(["hemostat-collector", "--command-public-keys", &public, "--host", "h1"]);
        assert_eq!(signed.command_keys().unwrap().map(|k| k.ids().len()), Some(1));
        let open = Config::parse_from(["hemostat-collector", "--host", "h1"]);
        let e = open.command_keys().unwrap_err().to_string();
        assert!(e.contains("HEMOSTAT_INSECURE_UNSIGNED_COMMANDS"), "{e}");
        let insecure =
            Config::parse_from(["hemostat-collector", "--insecure-unsigned-commands", "true", "--host", "h1"]);
        assert!(insecure.command_keys().unwrap().is_none());
        let bad = Config::parse_from(["hemostat-collector", "--command-public-keys", "nope", "--host", "h1"]);
        assert!(bad.command_keys().unwrap_err().to_string().contains("HEMOSTAT_COMMAND_PUBLIC_KEYS"));
    }

    #[test]
    fn the_dead_letter_verbs_parse_and_running_is_the_default() {
        use crate::verbs::{DeadLetters, Verb};
        <Config as clap::CommandFactory>::command().debug_assert();
        assert!(Config::parse_from(["hemostat-collector", "--host", "h1"]).verb.is_none());
        let c =
            Config::parse_from(["hemostat-collector", "dead-letters", "replay", "--kind", "health_alert", "--dry-run"]);
        let Some(Verb::DeadLetters(DeadLetters::Replay { kind, dry_run })) = c.verb else { panic!("{:?}", c.verb) };
        assert_eq!((kind.as_deref(), dry_run), (Some("health_alert"), true));
    }
}
