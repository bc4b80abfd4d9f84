//! Probes from labels, healed end to end: a container without a
//! HEALTHCHECK, whose HTTP port is published nowhere (busybox `httpd` on
//! its loopback only), carries `hemostat.probe`. While it answers 200 it is
//! left alone; once it answers 404 the collector's probe, run inside its
//! network namespace, makes it `unhealthy`, and the whole stack (analyzer,
//! gate, responder, the collector's executor) restarts it, exactly as for
//! Docker's own health check. Its second run stays healthy: no second restart.

use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{ContainerSpec, RedisServer, docker, outcomes_for, start_stack, wait_for};
use hemostat_protocol::event::RemediationStatus;

use hemostat_e2e::container::docker_time as parse_time;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_failing_its_label_probe_is_restarted_by_hemostat() {
    let redis = RedisServer::start_node().await;
    let docker = docker().await;
    let stack = start_stack(&redis.url()).await;
    let mut conn = redis.connection().await;

    // The first run serves /healthz for 6 s, then removes it (404); the
    // marker in /tmp survives the restart, so the second run keeps serving.
    let container = ContainerSpec::shell(
        "mkdir -p /www; echo ok > /www/healthz; httpd -f -p 127.0.0.1:8080 -h /www & \
         sleep 6; [ -e /tmp/failed-once ] || { touch /tmp/failed-once; rm /www/healthz; }; wait",
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .label("hemostat.probe", "http://:8080/healthz")
    .label("hemostat.probe.interval", "1s")
    .label("hemostat.probe.timeout", "500ms")
    .label("hemostat.probe.retries", "2")
    .start(&docker)
    .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let first_start = parse_time(&container.state().await.started_at);

    let healed = container.restarted_since(first_start, Duration::from_secs(45)).await;
    let Some(healed) = healed else {
        panic!(
            "the container was not restarted.\ncollector:\n{}\nbridge:\n{}",
            stack.collector.log_tail(60),
            stack.bridge.log_tail(40)
        );
    };
    assert_eq!(healed.restart_count, Some(0), "restarted by HemoStat, not by a Docker restart policy");
    let done = wait_for(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let name = container.name().to_owned();
        async move {
            outcomes_for(&mut conn, &name).await.into_iter().find(|c| c.result.status == RemediationStatus::Success)
        }
    })
    .await
    .expect("remediation_complete with status success");
    assert_eq!(done.action, hemostat_protocol::Action::Restart);
    let log = stack.collector.log_tail(400);
    assert!(log.contains("unhealthy by its probe: alerting"), "{log}");

    // The second run passes its probe: no second restart.
    let second_start = parse_time(&healed.state.unwrap().started_at);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = container.state().await;
    assert_eq!(after.status, Some(ContainerStateStatusEnum::RUNNING));
    assert_eq!(parse_time(&after.started_at), second_start, "restarted again though its probe passes");
    let outcomes = outcomes_for(&mut conn, container.name()).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
}
