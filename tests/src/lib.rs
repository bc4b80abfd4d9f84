//! End-to-end test harness for HemoStat.
//!
//! The tests drive real processes against a real Docker engine and a real
//! Redis. They are meant to run through `scripts/test.sh`, which installs and
//! starts a private `dockerd` and exports `DOCKER_HOST`, `REDIS_URL` and
//! `HEMOSTAT_TEST_IMAGE`. Helpers panic with an explanatory message instead of
//! returning errors: a broken environment must fail a test loudly, never skip it.
//!
//! # Module map
//!
//! - [`acl`] — [`create_users`]: Redis ACL users per role on the test's
//!   Redis, node or cluster, and their URLs.
//! - [`bench`] — what the benchmark binaries share: stream-id times,
//!   percentiles, the crash alert they publish.
//! - [`chaos`] — [`chaos::run`]: containers crash at a steady rate while
//!   every part of HemoStat is killed at random and the engine restarts;
//!   crashes, alerts, healed, lost, executed twice ([`chaos::ChaosReport`]).
//! - [`incidents`] — the incident suite: containers that really fail (OOM,
//!   segfault, port in use, full disk, ...) with their expected cause and
//!   action, run through the whole stack to a table.
//! - [`fake_llm`] — [`FakeLlm`], a local server answering like OpenAI's
//!   Chat Completions and Anthropic's Messages APIs.
//! - [`freezer`] — [`Freezer`], a TCP proxy whose connections can go silent
//!   (half-open), for keepalive and timeout tests.
//! - [`keys`] — [`test_keys`]: the run's command signing key pair (responder,
//!   collectors, tests that sign commands).
//! - [`paths`] — where things live: workspace root, the documentation
//!   ([`documentation`]: README and book), built binaries
//!   ([`bin_dir`]), per-test logs ([`log_dir`]), collectors' state folders
//!   ([`state_dir`]).
//! - [`port`] — [`free_port`], a port nobody listens on.
//! - [`http`] — [`http_get`] / [`http_request`], one plain request and its [`http::Answer`].
//! - [`polling`] — [`wait_until`] / [`wait_for`], deadline-bounded polling.
//! - [`redis_server`] — [`RedisServer`], a throwaway `redis-server` per test,
//!   restartable on the same port for fault tests; durable as the local
//!   stack's Redis ([`RedisServer::start_durable`], node or cluster), it
//!   keeps its data across a crash.
//! - [`redis_cluster`] — [`RedisCluster`], a throwaway six-node Redis Cluster
//!   (3 masters, 1 replica each) whose nodes a test may crash to watch
//!   failover, or all at once and start again; [`key_slot`] computes a
//!   key's hash slot.
//! - [`docker`] — [`docker()`] client for the private engine, [`test_image`].
//! - [`dockerd`] — [`PrivateDockerd`], a test's own `dockerd` it may stop,
//!   crash and restart.
//! - [`facts`] — [`report_container`]: what a collector writes of a container, for
//!   tests that play the collector (the gate acts only on reported containers).
//! - [`events`] — [`stream_events`], a durable stream read back as typed
//!   events with their arrival times.
//! - [`container`] — [`ContainerSpec`] / [`TestContainer`], containers that are
//!   force-removed when dropped.
//! - [`podman`] — [`PodmanService`], Podman's Docker-compatible API on a
//!   socket of its own.
//! - [`temp_dir`] — [`TempDir`], a fresh folder removed when dropped.
//! - [`tls_certs`] — [`TestCerts`], a CA and its certificates for a TLS
//!   Docker endpoint.
//! - [`stack`] — [`start_emulator`] / [`start_bridge`] / [`start_collector`]
//!   ([`collector`] to start one without waiting) / [`start_stack`]
//!   ([`start_stack_with`] and [`StackEnv`] for a test's own settings):
//!   HemoStat's long-running parts, started and waited for; the emulator's
//!   token they share ([`lambda_token`], [`lambda_bearer`]).
//! - [`storm`] — [`storm::Storm`]: N containers that crash (exit 1) at the
//!   same moment, healed by HemoStat or by Docker's restart policy, and
//!   what the engine's events and HemoStat's streams say of it.
//! - [`process`] — [`Process`], a workspace binary run with its output in
//!   `target/e2e-logs/{test}-{name}.log`, killed when dropped.
//!
//! # Lifetimes of spawned processes
//!
//! Children ([`RedisServer`], [`RedisCluster`], [`Process`]) are killed on
//! `Drop`, and also by the kernel when the *thread* that spawned them exits
//! (`PR_SET_PDEATHSIG`), so a test binary killed with Ctrl-C leaves no
//! orphans. Consequence: spawn them from the test's own task (not from
//! `spawn_blocking`, whose threads come and go), and do not share one
//! instance across tests through a `static`.

pub mod acl;
pub mod attest;
pub mod bench;
pub mod chaos;
pub mod container;
pub mod docker;
pub mod dockerd;
pub mod events;
pub mod facts;
pub mod fake_llm;
pub mod freezer;
pub mod http;
pub mod incident_files;
pub mod incidents;
pub mod keys;
pub mod llm_incidents;
pub mod paths;
pub mod podman;
pub mod polling;
pub mod port;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod smtp_server;
pub mod stack;
pub mod storm;
pub mod temp_dir;
pub mod tls_certs;

pub use acl::{Users, create_users};
pub use attest::attest;
pub use container::{ContainerSpec, TestContainer};
pub use docker::{docker, test_image};
pub use dockerd::{PrivateDockerd, TlsListener};
pub use events::{crash_and_expect_edge_heal, outcomes_for, stream_events};
pub use facts::report_container;
pub use fake_llm::FakeLlm;
pub use freezer::Freezer;
pub use http::{http_get, http_request};
pub use keys::{TestKeys, test_keys};
pub use paths::{bin_dir, documentation, log_dir, state_dir, workspace_root};
pub use podman::PodmanService;
pub use polling::{wait_for, wait_until};
pub use port::free_port;
pub use process::{Process, ProcessBuilder, hemostat_cli, show_output, strip_ansi};
pub use redis_cluster::{RedisCluster, key_slot};
pub use redis_server::RedisServer;
pub use smtp_server::SmtpServer;
pub use stack::{
    Stack, StackEnv, collector, lambda_bearer, lambda_token, start_bridge, start_collector, start_emulator,
    start_stack, start_stack_with, test_host,
};
pub use temp_dir::TempDir;
pub use tls_certs::TestCerts;

/// Name of the running test, derived from the test thread's name (libtest
/// names each test thread after the test), made safe for file names.
pub fn current_test_name() -> String {
    let raw = std::thread::current().name().filter(|n| *n != "main").unwrap_or("e2e").replace("::", "-");
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
