//! The dashboard's Redis reads against a real redis-server, with the data
//! written the way its writers write it: events published through the
//! protocol's publisher (streams), stats, heartbeats, series and event lists
//! under the protocol's keys, silences through the protocol's own `add`.

use hemostat_dashboard::{Config, Dashboard, HttpRequest, RedisStore};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    connection::connect,
    envelope::agent,
    keys,
    series::SeriesSample,
    silence::{self, Silence, TargetKind},
};
use redis::AsyncCommands;
use serde_json::{Value, json};

// Built as JSON in the seed's shape (as any publisher may write it), not
// from the protocol's structs: what the dashboard must read is the wire format.
fn alert(host: &str, name: &str) -> Value {
    json!({"container": name, "issues": ["Exited with code 1"], "metrics": {"name": name}, "host": host, "exit_code": 1})
}

fn complete(host: &str, name: &str, status: &str) -> Value {
    json!({"container": name, "action": "restart", "host": host,
        "result": {"status": status, "action": "restart", "container": name, "duration_ms": 400}})
}

async fn get(d: &Dashboard<RedisStore>, path: &str) -> Value {
    let r = d.respond(&HttpRequest::get(path)).await;
    assert_eq!(r.status(), 200, "{path}: {}", r.body());
    serde_json::from_str(r.body()).unwrap()
}

#[tokio::test]
async fn every_endpoint_reads_the_real_schema() {
    let server = RedisServer::start().await;
    let conn = connect(&server.url()).await.unwrap();
    let mut c = server.connection().await;
    let web = ContainerRef::new("h1", "web");
    let db = ContainerRef::new("h2", "db");

    let _: () = c.sadd(keys::CONTAINERS, &[web.key(), db.key()]).await.unwrap();
    let stats = json!({"name": "web", "status": "running", "cpu_pct": 3.25, "memory_pct": 12.5, "health": "healthy", "host": "h1", "image": "nginx:1"});
    let _: () = c.set_ex(keys::stats(&web), stats.to_string(), 300).await.unwrap();
    let _: () = c
        .set_ex(keys::remediation(&web), json!({"last_action": "2025-11-03T10:30:53", "count": 1}).to_string(), 3600)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let _: () =
        c.set_ex(keys::heartbeat("h1"), json!({"host": "h1", "version": "0.1.0"}).to_string(), 30).await.unwrap();
    let _: () = c.zadd(keys::COLLECTORS, "h1", now).await.unwrap();
    let _: () = c.zadd(keys::COLLECTORS, "h2", now - 120_000).await.unwrap();
    for (t, cpu) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
        let _: () = c
            .lpush(keys::series(&web), serde_json::to_string(&SeriesSample { t, cpu, mem: 10.0 }).unwrap())
            .await
            .unwrap();
    }

    // Streams through the real publisher: db's crash is fixed, web's is refused.
    let publisher = RedisPublisher::new(conn.clone());
    let publish = |kind, data: Value| Envelope {
        timestamp: "2025-11-03T10:30:45.123456".into(),
        agent: agent::MONITOR.into(),
        kind,
        data,
    };
    // web's alert carries its compose project, as the collector's evidence does.
    let mut web_alert = alert("h1", "web");
    web_alert["evidence"] = json!({"state": {"compose_project": "shop", "compose_service": "web"}});
    for env in [
        publish(EventKind::HealthAlert, web_alert),
        publish(EventKind::HealthAlert, alert("h2", "db")),
        publish(EventKind::RemediationComplete, complete("h2", "db", "success")),
        publish(EventKind::RemediationComplete, complete("h1", "web", "rejected")),
    ] {
        publisher.publish(&env).await.unwrap();
    }
    // The alert function's lists: envelope JSON strings, newest first.
    for env in [
        publish(EventKind::RemediationComplete, complete("h2", "db", "success")),
        publish(EventKind::RemediationComplete, complete("h1", "web", "rejected")),
    ] {
        let _: () = c.lpush(keys::events("all"), env.to_json()).await.unwrap();
        let _: () = c.lpush(keys::events("remediation_complete"), env.to_json()).await.unwrap();
    }

    // Silences as `hemostat silence add` writes them; a breaker as the gate's script sets it.
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(now + ms).unwrap().to_rfc3339();
    let silence = |id: &str, kind, target: &str, reason: &str, until: String| Silence {
        id: id.into(),
        kind,
        target: target.into(),
        reason: reason.into(),
        created: at(0),
        until,
        by: "ops".into(),
        window: None,
    };
    let mut w = conn.clone();
    for s in [
        silence("s-db", TargetKind::Container, "h2/db", "<b>db migration</b>", at(600_000)),
        silence("s-shop", TargetKind::Project, "shop", "shop freeze", at(1_200_000)),
        silence("s-old", TargetKind::Host, "h1", "over", at(-1_000)),
    ] {
        silence::add(&mut w, &s).await.unwrap();
    }
    let reason = "circuit breaker open: 3 actions in the last hour did not hold (max 3)";
    let _: () = c.set_ex(keys::breaker(&web), reason, 600).await.unwrap();

    let d = Dashboard::new(Config::default(), RedisStore::new(conn));

    let grid = get(&d, "/api/containers").await;
    assert_eq!(grid["total"], 2);
    assert_eq!(grid["containers"][0]["key"], "h1/web");
    assert_eq!(grid["containers"][0]["cpu_pct"], 3.25);
    assert_eq!(grid["containers"][0]["remediation"]["count"], 1);
    assert_eq!(grid["containers"][1]["status"], "unknown", "db has no stats");
    assert_eq!(grid["hosts"][0]["alive"], true);
    assert_eq!(grid["hosts"][1]["alive"], false, "h2's heartbeat expired");
    assert_eq!(grid["hosts"][1]["seconds_since_seen"].as_f64().map(|s| s >= 119.0), Some(true));
    let web_row = &grid["containers"][0];
    assert_eq!(web_row["silenced"]["id"], "s-shop", "by its compose project, from the alert's evidence: {web_row}");
    assert_eq!(web_row["breaker"]["reason"], reason);
    let left = web_row["breaker"]["seconds_left"].as_f64().unwrap();
    assert!((590.0..=600.0).contains(&left), "{left}");
    assert_eq!(grid["containers"][1]["silenced"]["reason"], "<b>db migration</b>");
    assert_eq!(grid["containers"][1]["breaker"], Value::Null);

    let silences = get(&d, "/api/silences").await;
    let ids: Vec<&str> = silences["silences"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s-db", "s-shop"], "live ones, soonest end first: {silences}");
    assert_eq!(silences["silences"][1]["target_text"], "project:shop");
    let stored: u64 = c.zcard(keys::SILENCES).await.unwrap();
    assert_eq!(stored, 3, "the dashboard only reads: the ended one is left for the writers to prune");
    assert!(silence::remove(&mut w, "s-db").await.unwrap());
    let silences = get(&d, "/api/silences").await;
    assert_eq!(silences["silences"].as_array().unwrap().len(), 1);
    assert_eq!(get(&d, "/api/containers").await["containers"][1]["silenced"], Value::Null);

    let issues = get(&d, "/api/issues").await;
    let list = issues["issues"].as_array().unwrap();
    assert_eq!(list.len(), 1, "db is fixed: {issues}");
    assert_eq!(list[0]["key"], "h1/web");
    assert_eq!(list[0]["last_attempt"]["status"], "rejected");

    let events = get(&d, "/api/events?status=success").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["key"], "h2/db");
    let typed = get(&d, "/api/events?type=remediation_complete&container=web").await;
    assert_eq!(typed["source"], "hemostat:events:remediation_complete");
    assert_eq!(typed["events"][0]["status"], "rejected");

    let series = get(&d, "/api/series/h1/web").await;
    let cpu: Vec<f64> = series["samples"].as_array().unwrap().iter().map(|s| s["cpu"].as_f64().unwrap()).collect();
    assert_eq!(cpu, [1.0, 2.0, 3.0], "oldest first");
    let none = get(&d, "/api/series/h9/ghost").await;
    assert_eq!(none["samples"], json!([]));

    // Redis gone: the API says so, the page is still served.
    drop(server);
    let r = d.respond(&HttpRequest::get("/api/containers")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(d.respond(&HttpRequest::get("/")).await.status(), 200);
}
