//! The safety gate under a stampede: 1,000 concurrent `remediation_needed`
//! for one container, served by several responder instances under the
//! Lambda emulator, must dispatch exactly one command.

use std::time::Duration;

use bytes::Bytes;
use hemostat_bridge::{HttpInvoker, Invocation, Invoker};
use hemostat_e2e::{RedisServer, start_emulator, stream_events, workspace_root};
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind,
    batch::{self, BatchEvent, BatchResponse},
    envelope::agent,
    event::{RemediationComplete, RemediationNeeded, RemediationStatus},
    keys,
};
use redis::AsyncCommands;

const REQUESTS: usize = 1000;

fn request(i: usize, host: &str) -> Envelope {
    let needed = RemediationNeeded {
        container: "api".into(),
        action: hemostat_protocol::Action::Restart,
        reason: format!("exit 1 (alert {i})"),
        confidence: 0.9,
        metrics: None,
        host: host.into(),
        container_id: None,
        context: hemostat_protocol::event::IncidentContext {
            analysis_method: Some("rule_based".into()),
            image: Some("shop/api:1".into()),
            ..Default::default()
        },
        fallback_reason: None,
        llm_cached: false,
    };
    Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &needed).unwrap()
}

fn batch_of(i: usize, env: &Envelope) -> BatchEvent {
    batch::event(vec![batch::record(format!("{i}-0"), EventKind::RemediationNeeded.stream(), env.to_json(), 1)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_dispatch_exactly_one_command() {
    let redis = RedisServer::start().await;
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", workspace_root().join("template.yaml").to_str().unwrap()])
            .args(["--functions", "hemostat-responder", "--max-concurrency", "8"])
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "info")
    })
    .await;

    let host = "stampede-host";
    // The test plays api's collector, whose account the gate believes.
    let conn = redis.connection().await;
    hemostat_e2e::report_container(&conn, &ContainerRef::new(host, "api"), "shop/api:1", Default::default()).await;
    let token = hemostat_protocol::secret::Secret::new(hemostat_e2e::lambda_token());
    let invoker = HttpInvoker::new(&endpoint, Duration::from_secs(120), Some(&token)).unwrap();
    // The test plays the analyzer too, which attests each request.
    let requests: Vec<Envelope> = (0..REQUESTS).map(|i| request(i, host)).collect();
    for env in &requests {
        hemostat_e2e::attest(&conn, env).await;
    }
    let calls = requests.iter().enumerate().map(|(i, env)| {
        let invoker = invoker.clone();
        let payload = Bytes::from(serde_json::to_vec(&batch_of(i, env)).unwrap());
        tokio::spawn(async move { invoker.invoke("hemostat-responder", payload).await })
    });
    let started = std::time::Instant::now();
    let results = futures::future::join_all(calls).await;
    let took = started.elapsed();
    for result in results {
        match result.unwrap().unwrap() {
            Invocation::Ok(body) => {
                let response: BatchResponse = serde_json::from_slice(&body).unwrap_or_default();
                assert!(response.batch_item_failures.is_empty(), "{response:?}");
            }
            Invocation::FunctionError(e) => panic!("function error: {e}"),
        }
    }

    let mut conn = conn;
    let dispatched: usize = conn.xlen(keys::commands(host)).await.unwrap();
    assert_eq!(dispatched, 1, "exactly one command for {REQUESTS} concurrent requests");
    // A host's stream does not outlive its last command by more than a week.
    let ttl: i64 = conn.ttl(keys::commands(host)).await.unwrap();
    assert!(ttl > 0 && ttl <= keys::COMMANDS_TTL.as_secs() as i64, "command stream TTL {ttl}");

    let rejected = stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .filter(|(_, c)| c.result.status == RemediationStatus::Rejected)
        .count();
    assert_eq!(rejected, REQUESTS - 1, "every other request is refused and the refusal recorded");
    let audit: usize = conn.llen(keys::audit(&ContainerRef::new(host, "api"))).await.unwrap();
    assert_eq!(audit, REQUESTS, "every decision audited");

    let instances = emulator.log().matches("instance initialized").count();
    assert!(instances >= 2, "several responder instances must have served the stampede, saw {instances}");
    println!(
        "{REQUESTS} concurrent requests over {instances} responder instances in {took:?}: 1 command, {rejected} refusals"
    );
}
