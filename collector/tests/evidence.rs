//! Evidence gathered from a real dockerd: the log tail of the last run,
//! redacted; Docker's state; health check results; the byte cap; a long
//! stack trace's frames going before the line that names the failure; the
//! per-container opt-out; and the container's environment never read.
//!
//! Needs DOCKER_HOST (a private engine) and HEMOSTAT_TEST_IMAGE (busybox);
//! run through scripts/test.sh, which provides both.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use hemostat_collector::evidence::{Gatherer, LOGS_LABEL, Provided, Settings};
use hemostat_e2e::{ContainerSpec, TestContainer, docker, wait_for};
use hemostat_protocol::evidence::{DockerEvent, Evidence, LogStream, LogsSkipped, SampleSummary, SeriesSummary};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn gatherer(settings: Settings) -> Gatherer {
    Gatherer::new(docker().await, settings).expect("default patterns compile")
}

/// Starts `spec` and waits for it to exit.
async fn exited(spec: ContainerSpec) -> TestContainer {
    let c = spec.start(&docker().await).await;
    c.wait_for_status(ContainerStateStatusEnum::EXITED, TIMEOUT).await;
    c
}

fn json(evidence: &Evidence) -> String {
    serde_json::to_string(evidence).expect("evidence serializes")
}

fn lines(evidence: &Evidence) -> Vec<&str> {
    evidence.logs.lines.iter().map(|l| l.line.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_brings_its_last_lines_redacted_and_its_exit() {
    let c = exited(
        ContainerSpec::shell(
            "echo starting; echo 'login failed: password=hunter2' >&2; \
             echo 'db is postgres://app:s3cr3tpw@db:5432/shop'; echo 'last words'; exit 1",
        )
        .env("SECRET_TOKEN", "abc123zz"),
    )
    .await;
    let g = gatherer(Settings::default()).await;
    let e = g
        .gather(
            c.id(),
            Provided {
                events: vec![DockerEvent { action: "die".into(), exit_code: Some(1), ..Default::default() }],
                ..Default::default()
            },
        )
        .await
        .expect("gathered");
    let text = json(&e);
    println!("evidence of a crash: {text}");
    assert_eq!(e.state.exit_code, Some(1), "{text}");
    assert!(!e.state.oom_killed);
    assert_eq!(e.state.status.as_deref(), Some("exited"));
    assert!(e.state.started_at.is_some() && e.state.finished_at.is_some(), "{text}");
    assert_eq!(e.state.image.as_deref(), Some(hemostat_e2e::test_image().as_str()));
    // Docker copies stdout and stderr separately: their interleaving is
    // Docker's, each stream's own order is the container's.
    let of = |stream: LogStream| -> Vec<&str> {
        e.logs.lines.iter().filter(|l| l.stream == stream).map(|l| l.line.as_str()).collect()
    };
    assert_eq!(of(LogStream::Stdout), ["starting", "db is postgres://app:***@db:5432/shop", "last words"], "{text}");
    assert_eq!(of(LogStream::Stderr), ["login failed: password=[REDACTED]"], "{text}");
    assert!(e.logs.lines.iter().all(|l| l.timestamp.is_some()), "{text}");
    assert_eq!((e.logs.count, e.logs.tail, e.logs.skipped), (4, 50, None));
    assert_eq!(e.redactions, 2);
    assert_eq!(e.events, [DockerEvent { action: "die".into(), exit_code: Some(1), ..Default::default() }]);
    assert!(!e.truncated);
    for secret in ["hunter2", "s3cr3tpw", "abc123zz", "SECRET_TOKEN"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.len() <= Settings::default().max_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_run_is_shown() {
    // The file survives a restart (same container filesystem): the second
    // run says so.
    let c = exited(ContainerSpec::shell(
        "if [ -f /tmp/ran ]; then echo second run; else touch /tmp/ran; echo first run; fi; exit 3",
    ))
    .await;
    // More than the slack given to a run's first lines.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.docker().start_container(c.id(), None).await.expect("restarted");
    let restarted = wait_for(TIMEOUT, || async {
        let state = c.state().await;
        (state.status == Some(ContainerStateStatusEnum::EXITED) && c.logs().await.contains("second run")).then_some(())
    })
    .await;
    assert!(restarted.is_some(), "the second run did not finish: {}", c.logs().await);
    let e = gatherer(Settings::default()).await.gather(c.name(), Provided::default()).await.expect("gathered");
    assert_eq!(lines(&e), ["second run"], "{}", json(&e));
    assert_eq!(e.state.exit_code, Some(3));
    assert!(e.logs.since.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_brings_its_output() {
    let docker = docker().await;
    let c = ContainerSpec::shell("echo up; while :; do sleep 0.2; done")
        .healthcheck("echo 'probe: GET /ready refused, token=tok3n999' >&2; exit 1", 200)
        .start(&docker)
        .await;
    let unhealthy = wait_for(TIMEOUT, || async {
        let health = c.state().await.health?;
        (health.status == Some(HealthStatusEnum::UNHEALTHY) && health.log.is_some_and(|l| !l.is_empty())).then_some(())
    })
    .await;
    assert!(unhealthy.is_some(), "never unhealthy: {:?}", c.state().await);
    let e = gatherer(Settings::default()).await.gather(c.id(), Provided::default()).await.expect("gathered");
    let text = json(&e);
    let health = e.health.as_ref().unwrap_or_else(|| panic!("no health: {text}"));
    assert_eq!(health.status, "unhealthy");
    assert!(health.failing_streak >= 1, "{text}");
    let last = health.results.last().unwrap_or_else(|| panic!("no results: {text}"));
    assert_eq!(last.exit_code, Some(1));
    assert_eq!(last.output, "probe: GET /ready refused, token=[REDACTED]");
    assert!(last.start.is_some() && last.end.is_some(), "{text}");
    assert!(!text.contains("tok3n999"), "{text}");
    // Running: no exit code, and the logs of this run.
    assert_eq!(e.state.exit_code, None);
    assert_eq!(e.state.status.as_deref(), Some("running"));
    assert_eq!(lines(&e), ["up"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_cap_holds() {
    // 300 lines of ~120 bytes, and one long line of 40 KB (Docker splits
    // it into pieces of 16 KB).
    let c = exited(ContainerSpec::shell(
        "i=0; while [ $i -lt 300 ]; do \
           echo \"line $i aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"; \
           i=$((i+1)); done; \
         head -c 40000 /dev/zero | tr '\\0' 'z'; echo; echo 'the end'; exit 2",
    ))
    .await;
    for (lines, max_bytes) in [(200, 4096), (50, 4096), (50, 1500), (1000, 16384)] {
        let settings = Settings { lines, max_bytes, ..Default::default() };
        let e = gatherer(settings).await.gather(c.id(), Provided::default()).await.expect("gathered");
        let text = json(&e);
        assert!(text.len() <= max_bytes, "{} > {max_bytes}", text.len());
        assert!(e.truncated, "{text}");
        assert_eq!(e.logs.lines.last().map(|l| l.line.as_str()), Some("the end"), "{text}");
        assert_eq!(e.state.exit_code, Some(2));
        // The 40 KB line is one line (its pieces joined), cut.
        assert!(e.logs.count <= lines, "{text}");
        assert!(e.logs.lines.iter().all(|l| l.line.len() <= 1024 + '…'.len_utf8()), "{text}");
    }
}

/// A Go service's fatal error is its first line, and a goroutine dump of
/// hundreds of lines follows it: the dump's frames go, the line that names
/// the failure stays (in the 50 lines read and in the 4 KiB sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_trace_keeps_the_line_that_names_the_failure() {
    let c = exited(ContainerSpec::shell(
        "echo 'listening on :8080'; \
         { echo 'fatal error: concurrent map writes'; echo; echo 'goroutine 42 [running]:'; \
           i=0; while [ $i -lt 150 ]; do \
             echo \"main.(*cache).put$i(0xc000010000, {0x4b1c3e, 0x3})\"; \
             printf '\\t/src/app/cache.go:%d +0x65\\n' $i; i=$((i+1)); done; } >&2; exit 2",
    ))
    .await;
    let e = gatherer(Settings::default()).await.gather(c.id(), Provided::default()).await.expect("gathered");
    let text = json(&e);
    assert!(text.len() <= 4096, "{} > 4096", text.len());
    let got = lines(&e);
    assert!(got.contains(&"fatal error: concurrent map writes"), "{got:#?}");
    assert!(got.contains(&"listening on :8080"), "{got:#?}");
    assert!(got.last().is_some_and(|l| l.contains("cache.go:149")), "the newest frame stays: {got:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_turned_off_per_container_and_globally() {
    let c = exited(ContainerSpec::shell("echo private stuff; exit 1").label(LOGS_LABEL, "false")).await;
    let e = gatherer(Settings::default()).await.gather(c.id(), Provided::default()).await.expect("gathered");
    assert!(e.logs.lines.is_empty(), "{}", json(&e));
    assert_eq!(e.logs.skipped, Some(LogsSkipped::OptedOut));
    assert_eq!(e.state.exit_code, Some(1), "state still comes");
    assert!(!json(&e).contains("private stuff"));

    let c = exited(ContainerSpec::shell("echo private stuff; exit 1")).await;
    let off = Settings { logs: false, ..Default::default() };
    let e = gatherer(off).await.gather(c.id(), Provided::default()).await.expect("gathered");
    assert_eq!(e.logs.skipped, Some(LogsSkipped::Disabled));
    assert!(!json(&e).contains("private stuff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_never_reaches_evidence() {
    // One container keeps its environment to itself; the other prints it
    // all (as `env` in an entrypoint script would): redaction catches it.
    let quiet = exited(ContainerSpec::shell("echo hello; exit 1").env("SECRET_TOKEN", "abc123zz")).await;
    let loud = exited(ContainerSpec::shell("env; exit 1").env("SECRET_TOKEN", "abc123zz")).await;
    let g = gatherer(Settings::default()).await;
    for c in [&quiet, &loud] {
        let e = g.gather(c.id(), Provided::default()).await.expect("gathered");
        let text = json(&e);
        assert!(!text.contains("abc123zz"), "{text}");
        assert!(!e.logs.lines.is_empty(), "{text}");
    }
    let e = g.gather(loud.id(), Provided::default()).await.expect("gathered");
    assert!(lines(&e).contains(&"SECRET_TOKEN=[REDACTED]"), "{}", json(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_container_is_an_error() {
    let g = gatherer(Settings::default()).await;
    assert!(g.gather("hemostat-e2e-no-such-container", Provided::default()).await.is_err());
}

/// A dockerd that accepts connections and never answers: gathering gives
/// up within its budget, and evidence from an inspect already made still
/// comes, its logs marked as timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerd_that_does_not_answer_delays_nothing_much() {
    let path = std::env::temp_dir().join(format!("hemostat-mute-{}.sock", uuid::Uuid::new_v4().simple()));
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let path_str = path.to_str().expect("utf-8 temp path");
    let mute = bollard::Docker::connect_with_unix(path_str, 120, bollard::API_DEFAULT_VERSION).expect("client");
    let settings = Settings { timeout: Duration::from_millis(300), ..Default::default() };
    let g = Gatherer::new(mute, settings).expect("gatherer");

    let started = Instant::now();
    assert!(g.gather("anything", Provided::default()).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // An inspect from the real engine, logs from the mute one.
    let c = exited(ContainerSpec::shell("echo hi; exit 1")).await;
    let inspect = c.inspect().await;
    let started = Instant::now();
    let e = g.gather_inspected(&inspect, Provided::default()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(e.logs.skipped, Some(LogsSkipped::Timeout));
    assert_eq!(e.state.exit_code, Some(1));
    held.abort();
    let _ = std::fs::remove_file(&path);
}

/// 20 events (what the collector keeps at most), the oldest one's action
/// carrying a secret, as a newer engine's free text might.
fn twenty_events() -> Vec<DockerEvent> {
    (0..20)
        .map(|i| DockerEvent {
            action: match i {
                0 => "kill password=hunter2".into(),
                i if i % 2 == 1 => "kill".into(),
                _ => "die".into(),
            },
            time: Some(format!("2026-12-02T06:50:{i:02}.000Z")),
            exit_code: (i % 2 == 0).then_some(137),
            signal: (i % 2 == 1).then_some(9),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provided_events_and_samples_travel_redacted_within_the_cap() {
    let c = exited(ContainerSpec::shell(
        "i=0; while [ $i -lt 300 ]; do \
           echo \"line $i bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"; \
           i=$((i+1)); done; exit 1",
    ))
    .await;
    let points: Vec<(f64, f64)> = (0..60).map(|i| (f64::from(i), 90.0 + f64::from(i % 7))).collect();
    let samples = SampleSummary {
        count: 60,
        window_seconds: 59.0,
        cpu_pct: SeriesSummary::from_points(&points),
        memory_pct: SeriesSummary::from_points(&points),
        memory_bytes: SeriesSummary::from_points(&points),
        memory_limit_bytes: Some(64 << 20),
    };
    let provided = || Provided { events: twenty_events(), samples: Some(samples.clone()) };

    // Roomy: everything provided arrives, the secret redacted.
    let roomy = Settings { lines: 5, max_bytes: 16384, ..Default::default() };
    let e = gatherer(roomy).await.gather(c.id(), provided()).await.expect("gathered");
    let text = json(&e);
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(e.events[0].action, "kill password=[REDACTED]");
    assert_eq!(e.events[1..], twenty_events()[1..], "{text}");
    assert_eq!(e.samples.as_ref(), Some(&samples));
    assert_eq!(e.redactions, 1);

    for max_bytes in [4096, 2048, 1200] {
        let settings = Settings { max_bytes, ..Default::default() };
        let e = gatherer(settings).await.gather(c.id(), provided()).await.expect("gathered");
        let text = json(&e);
        assert!(text.len() <= max_bytes, "{} > {max_bytes}", text.len());
        assert!(e.truncated, "{text}");
        // What is left of the events is the newest, unchanged.
        let kept = e.events.len();
        let times = |events: &[DockerEvent]| events.iter().map(|e| e.time.clone()).collect::<Vec<_>>();
        assert_eq!(times(&e.events), times(&twenty_events()[20 - kept..]), "{text}");
        // Past the redacted first one, unchanged.
        let unchanged = kept.min(19);
        assert_eq!(e.events[kept - unchanged..], twenty_events()[20 - unchanged..], "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        if max_bytes == 4096 {
            // At the default cap the crash's last events and the samples
            // stay beside the newest lines.
            assert!(kept >= 5, "{text}");
            assert_eq!(e.samples.as_ref(), Some(&samples), "{text}");
            assert!(e.logs.lines.last().is_some_and(|l| l.line.starts_with("line 299")), "{text}");
        }
    }
}
