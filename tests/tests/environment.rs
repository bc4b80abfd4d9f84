//! Smoke tests for the test environment itself: if these fail, every other
//! end-to-end failure is suspect.

use std::time::Duration;

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{ContainerSpec, RedisServer, docker};
use redis::AsyncCommands;
use redis::streams::StreamReadReply;

#[tokio::test]
async fn redis_server_serves_keys_and_streams() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;

    let () = conn.set("hemostat:e2e:key", "value").await.unwrap();
    let value: String = conn.get("hemostat:e2e:key").await.unwrap();
    assert_eq!(value, "value");

    let id: String = conn.xadd("hemostat:e2e:stream", "*", &[("field", "payload")]).await.unwrap();
    let reply: StreamReadReply = conn.xread(&["hemostat:e2e:stream"], &["0"]).await.unwrap();
    let entries = &reply.keys.first().expect("one stream in XREAD reply").ids;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
    let field: String = entries[0].get("field").expect("field present");
    assert_eq!(field, "payload");
}

#[tokio::test]
async fn redis_server_restart_keeps_port() {
    let mut redis = RedisServer::start_node().await;
    let port = redis.port();
    let url = redis.url();

    redis.restart().await;

    assert_eq!(redis.port(), port);
    assert_eq!(redis.url(), url);
    assert!(redis.is_running());
    let mut conn = redis.connection().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn container_exits_with_code_from_signal_trap() {
    let docker = docker().await;
    // `echo ready` tells the test the trap is installed: PID 1 ignores
    // signals it has no handler for, so an early USR1 would be lost.
    let container = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; echo ready; while :; do sleep 0.2; done"#,
    )
    .label("hemostat-e2e.purpose", "smoke")
    .restart_policy(bollard::models::RestartPolicyNameEnum::NO)
    .start(&docker)
    .await;

    container.wait_for_log("ready", Duration::from_secs(10)).await;
    assert_eq!(container.state().await.running, Some(true));

    container.kill("SIGUSR1").await;

    let state = container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    assert_eq!(state.exit_code, Some(1), "state: {state:?}");
    let inspect = container.inspect().await;
    assert!(inspect.name.as_deref().is_some_and(|n| n.contains("hemostat-e2e-")), "name: {:?}", inspect.name);
}
