//! The safety gate against a real redis-server.

use hemostat_e2e::RedisServer;
use hemostat_protocol::{ContainerRef, keys};
use hemostat_responder::gate::{Gate, GateRequest, Verdict};
use redis::AsyncCommands;

fn request<'a>(c: &'a ContainerRef, id: &'a str) -> GateRequest<'a> {
    GateRequest { container: c, command_id: id, action: "restart", reason: "exit 1", confidence: 0.9, dry_run: false }
}

#[tokio::test]
async fn cooldown_then_circuit_breaker_with_seed_record_and_audit() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "web");

    let cooldown = Gate::new(3600, 3);
    assert_eq!(cooldown.check(&mut conn, &request(&c, "a")).await.unwrap(), Verdict::Allowed { count: 1 });
    match cooldown.check(&mut conn, &request(&c, "b")).await.unwrap() {
        Verdict::Refused { reason } => assert!(reason.starts_with("cooldown"), "{reason}"),
        other => panic!("expected cooldown refusal, got {other:?}"),
    }
    assert_eq!(cooldown.check(&mut conn, &request(&c, "a")).await.unwrap(), Verdict::Duplicate);

    // The seed's record: {"last_action", "count"} with the seed TTL.
    let record: String = conn.get(keys::remediation(&c)).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["count"], 1);
    assert!(record["last_action"].is_string());
    let ttl: i64 = conn.ttl(keys::remediation(&c)).await.unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");

    // No cooldown, at most 2 an hour: the third is refused by the breaker.
    let other = ContainerRef::new("h1", "api");
    let breaker = Gate::new(0, 2);
    for id in ["x", "y"] {
        assert!(matches!(breaker.check(&mut conn, &request(&other, id)).await.unwrap(), Verdict::Allowed { .. }));
    }
    match breaker.check(&mut conn, &request(&other, "z")).await.unwrap() {
        Verdict::Refused { reason } => assert!(reason.starts_with("circuit breaker"), "{reason}"),
        v => panic!("expected breaker refusal, got {v:?}"),
    }

    // Every decision is audited, refusals included, newest first.
    let audit: Vec<String> = conn.lrange(keys::audit(&other), 0, -1).await.unwrap();
    assert_eq!(audit.len(), 3);
    let newest: serde_json::Value = serde_json::from_str(&audit[0]).unwrap();
    assert_eq!(newest["verdict"], "refused");
    assert_eq!(newest["command_id"], "z");
}

#[tokio::test]
async fn concurrent_requests_allow_exactly_one() {
    let server = RedisServer::start().await;
    let client = server.client();
    let c = ContainerRef::new("h1", "web");
    let gate = Gate::new(3600, 3);
    let mut tasks = Vec::new();
    for i in 0..200 {
        // Separate connections, as separate responder instances would have.
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let gate = &gate;
        let c = &c;
        tasks.push(async move { gate.check(&mut conn, &request(c, &format!("id-{i}"))).await.unwrap() });
    }
    let verdicts = futures::future::join_all(tasks).await;
    let allowed = verdicts.iter().filter(|v| matches!(v, Verdict::Allowed { .. })).count();
    assert_eq!(allowed, 1, "{verdicts:?}");
}
