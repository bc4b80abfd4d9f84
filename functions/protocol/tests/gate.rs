//! The safety gate against a real redis-server (one node, or a cluster
//! under `HEMOSTAT_TEST_REDIS=cluster`).

mod support;

use hemostat_e2e::RedisServer;
use hemostat_protocol::{
    ContainerRef,
    audit::{self, AuditEntry, AuditRequest, Verdict},
    gate::{ContainerFacts, FleetBrake, Gate, GateDecision, GateInputs, GateRequest, GateSettings},
    keys,
    policy::Policy,
};
use redis::AsyncCommands;
use support::{plain, request};

/// The gate's limits for every container.
fn settings(cooldown_seconds: u64, max_per_hour: u64) -> GateSettings {
    GateSettings { cooldown_seconds, max_per_hour, breaker_seconds: 3600, ..GateSettings::default() }
}

fn with_image<'a>(c: &'a ContainerRef, id: &'a str, image: &'a str, inputs: &'a GateInputs) -> GateRequest<'a> {
    GateRequest { image: Some(image), ..request(c, id, inputs) }
}

#[tokio::test]
async fn cooldown_then_circuit_breaker_with_seed_record_and_audit() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "web");

    let cooldown = Gate::new(settings(3600, 3));
    let inputs = plain(settings(3600, 3));
    assert_eq!(
        cooldown.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap(),
        GateDecision::Allowed { count: 1 }
    );
    match cooldown.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.starts_with("cooldown"), "{reason}"),
        other => panic!("expected cooldown refusal, got {other:?}"),
    }
    assert_eq!(cooldown.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap(), GateDecision::Duplicate);

    // The seed's record: {"last_action", "count"} with the seed TTL.
    let record: String = conn.get(keys::remediation(&c)).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["count"], 1);
    assert!(record["last_action"].is_string());
    let ttl: i64 = conn.ttl(keys::remediation(&c)).await.unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");

    // No cooldown, at most 2 an hour: the third is refused by the breaker.
    let other = ContainerRef::new("h1", "api");
    let breaker = Gate::new(settings(0, 2));
    let inputs = plain(settings(0, 2));
    for id in ["x", "y"] {
        let allowed = breaker.check(&mut conn, &request(&other, id, &inputs)).await.unwrap();
        assert!(matches!(allowed, GateDecision::Allowed { .. }));
    }
    match breaker.check(&mut conn, &request(&other, "z", &inputs)).await.unwrap() {
        GateDecision::BreakerOpened { reason } => {
            assert!(reason.starts_with("circuit breaker open: 2 actions"), "{reason}")
        }
        v => panic!("expected the breaker to open, got {v:?}"),
    }

    // Every decision is audited, refusals included, newest first.
    let audit = entries(&mut conn, &other).await;
    assert_eq!(audit.len(), 3);
    assert_eq!((audit[0].verdict, audit[0].request.command_id.as_deref()), (Verdict::Refused, Some("z")));
}

/// The container's audit trail, each entry parsed as the one type.
async fn entries(conn: &mut hemostat_protocol::connection::Connection, c: &ContainerRef) -> Vec<AuditEntry> {
    let all = audit::newest(conn, c, usize::MAX).await.unwrap();
    all.into_iter().map(|e| e.unwrap_or_else(|raw| panic!("not an AuditEntry: {raw}"))).collect()
}

#[tokio::test]
async fn concurrent_requests_allow_exactly_one() {
    let server = RedisServer::start().await;
    let c = ContainerRef::new("h1", "web");
    let gate = Gate::new(settings(3600, 3));
    let inputs = plain(settings(3600, 3));
    let mut tasks = Vec::new();
    for i in 0..200 {
        // Separate connections, as separate responder instances would have.
        let mut conn = server.connection().await;
        let (gate, c, inputs) = (&gate, &c, &inputs);
        tasks.push(async move { gate.check(&mut conn, &request(c, &format!("id-{i}"), inputs)).await.unwrap() });
    }
    let decisions = futures::future::join_all(tasks).await;
    let allowed = decisions.iter().filter(|v| matches!(v, GateDecision::Allowed { .. })).count();
    assert_eq!(allowed, 1, "{decisions:?}");
}

#[tokio::test]
async fn fleet_brake_stops_a_bad_release_spreading_across_hosts() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let gate = Gate::new(settings(3600, 3)).with_brake(FleetBrake { hosts: 3, window_seconds: 600 });
    let inputs = plain(settings(3600, 3));
    let image = "shop/api:2.4.1";

    // The same image crashes on host after host: three are restarted...
    for host in ["h1", "h2", "h3"] {
        let c = ContainerRef::new(host, "api");
        let v = gate.check(&mut conn, &with_image(&c, &format!("{host}-1"), image, &inputs)).await.unwrap();
        assert!(matches!(v, GateDecision::Allowed { .. }), "{host}: {v:?}");
    }
    // ...the fourth host trips the brake instead of a fourth restart.
    let h4 = ContainerRef::new("h4", "api");
    match gate.check(&mut conn, &with_image(&h4, "h4-1", image, &inputs)).await.unwrap() {
        GateDecision::Brake { reason } => {
            assert!(reason.contains("suspected bad release of shop/api:2.4.1"), "{reason}");
            assert!(reason.contains("3 hosts"), "{reason}");
        }
        v => panic!("expected the brake, got {v:?}"),
    }
    // Once tripped it holds for the image, even on a host already in the set.
    let other_on_h1 = ContainerRef::new("h1", "api-2");
    assert!(matches!(
        gate.check(&mut conn, &with_image(&other_on_h1, "h1-2", image, &inputs)).await.unwrap(),
        GateDecision::Brake { .. }
    ));
    let ttl: i64 = conn.pttl(keys::fleet_brake(image)).await.unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "brake holds for the window: {ttl}");
    // Other images are unaffected, and so is a request whose image is unknown.
    let db = ContainerRef::new("h4", "db");
    assert!(matches!(
        gate.check(&mut conn, &with_image(&db, "db-1", "postgres:16", &inputs)).await.unwrap(),
        GateDecision::Allowed { .. }
    ));
    let unknown = ContainerRef::new("h5", "api");
    assert!(matches!(
        gate.check(&mut conn, &request(&unknown, "h5-1", &inputs)).await.unwrap(),
        GateDecision::Allowed { .. }
    ));
    // The refusal is audited with the image.
    let entry = &entries(&mut conn, &h4).await[0];
    assert_eq!((entry.verdict, entry.request.image.as_deref()), (Verdict::Brake, Some(image)));
}

#[tokio::test]
async fn racing_hosts_trip_the_fleet_brake_at_exactly_its_count() {
    // 40 hosts, 5 containers each, all of one image, all asking at once
    // from their own connections (responder instances): the brake admits
    // exactly 3 hosts. Their containers' limits live in 200 slots (on a
    // cluster, on every master), the image's in one.
    let server = RedisServer::start().await;
    let gate = Gate::new(settings(3600, 3)).with_brake(FleetBrake { hosts: 3, window_seconds: 600 });
    let inputs = plain(settings(3600, 3));
    let image = "shop/api:3.0.0";
    let containers: Vec<ContainerRef> =
        (0..40).flat_map(|h| (0..5).map(move |n| ContainerRef::new(format!("host-{h}"), format!("api-{n}")))).collect();
    let mut tasks = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let mut conn = server.connection().await;
        let (gate, inputs) = (&gate, &inputs);
        tasks.push(async move {
            (c, gate.check(&mut conn, &with_image(c, &format!("id-{i}"), image, inputs)).await.unwrap())
        });
    }
    let decisions = futures::future::join_all(tasks).await;
    let admitted: std::collections::BTreeSet<&str> = decisions
        .iter()
        .filter(|(_, v)| matches!(v, GateDecision::Allowed { .. }))
        .map(|(c, _)| c.host.as_str())
        .collect();
    assert_eq!(admitted.len(), 3, "hosts admitted: {admitted:?}");
    let braked = decisions.iter().filter(|(_, v)| matches!(v, GateDecision::Brake { .. })).count();
    let allowed = decisions.iter().filter(|(_, v)| matches!(v, GateDecision::Allowed { .. })).count();
    assert_eq!(allowed + braked, containers.len(), "every request is allowed or braked: {decisions:?}");

    // A braked request left nothing behind: no cooldown, no action counted,
    // no seed record, nothing pending; and its refusal is audited.
    let mut conn = server.connection().await;
    let (loser, _) = decisions.iter().find(|(_, v)| matches!(v, GateDecision::Brake { .. })).unwrap();
    let actions: u64 = conn.zcard(keys::action_log(loser)).await.unwrap();
    let record: Option<String> = conn.get(keys::remediation(loser)).await.unwrap();
    let pending: u64 = conn.hlen(keys::gate_pending(loser)).await.unwrap();
    assert_eq!((actions, record, pending), (0, None, 0));
    let audit = entries(&mut conn, loser).await;
    assert_eq!(audit.iter().map(|e| e.verdict).collect::<Vec<_>>(), [Verdict::Brake], "{audit:?}");
    // A winner's action stands, audited as allowed.
    let (winner, _) = decisions.iter().find(|(_, v)| matches!(v, GateDecision::Allowed { .. })).unwrap();
    let actions: u64 = conn.zcard(keys::action_log(winner)).await.unwrap();
    let pending: u64 = conn.hlen(keys::gate_pending(winner)).await.unwrap();
    assert_eq!((actions, pending), (1, 0));
    let audit = entries(&mut conn, winner).await;
    assert_eq!(audit.iter().map(|e| e.verdict).collect::<Vec<_>>(), [Verdict::Allowed], "{audit:?}");
}

#[tokio::test]
async fn a_decision_cut_short_between_the_slots_is_finished_by_the_redelivery() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let gate = Gate::new(settings(3600, 3)).with_brake(FleetBrake { hosts: 3, window_seconds: 600 });
    let inputs = plain(settings(3600, 3));
    let c = ContainerRef::new("h1", "api");
    // As if a responder had died after the container's step: the action is
    // taken and pending, the fleet brake never asked.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let _: () = conn.zadd(keys::action_log(&c), "cut-1", now_ms).await.unwrap();
    let _: () = conn.hset(keys::gate_pending(&c), "cut-1", "").await.unwrap();
    let again = gate.check(&mut conn, &with_image(&c, "cut-1", "shop/api:9", &inputs)).await.unwrap();
    assert_eq!(again, GateDecision::Duplicate, "finished, and the caller dispatches if it never did");
    let pending: u64 = conn.hlen(keys::gate_pending(&c)).await.unwrap();
    let hosts: Vec<String> = conn.zrange(keys::fleet("shop/api:9"), 0, -1).await.unwrap();
    assert_eq!((pending, hosts), (0, vec!["h1".to_string()]));
}

#[tokio::test]
async fn a_silence_refuses_first_and_is_audited_with_its_reason() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "web");
    let gate = Gate::new(settings(0, 3));
    let inputs = plain(settings(0, 3));
    let reason = "silenced: db migration (until 2099-01-01T00:00:00+00:00)";
    let held = GateInputs { refusal: Some(reason.to_owned()), ..inputs.clone() };
    match gate.check(&mut conn, &request(&c, "a", &held)).await.unwrap() {
        GateDecision::Refused { reason: r } => assert_eq!(r, reason),
        other => panic!("expected the silence's refusal, got {other:?}"),
    }
    // Refused means nothing taken: no action counted, no seed record.
    let actions: u64 = conn.zcard(keys::action_log(&c)).await.unwrap();
    let record: Option<String> = conn.get(keys::remediation(&c)).await.unwrap();
    assert_eq!((actions, record), (0, None));
    let entry = &entries(&mut conn, &c).await[0];
    assert_eq!((entry.verdict, entry.reason.as_str()), (Verdict::Refused, reason));
    // Once the silence is gone (the handler finds none), the same container is allowed.
    assert!(matches!(
        gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap(),
        GateDecision::Allowed { count: 1 }
    ));
    // And a silence outranks a cooldown in the reason given.
    let cooled = Gate::new(settings(3600, 3));
    let held = GateInputs { cooldown_seconds: 3600, ..held };
    match cooled.check(&mut conn, &request(&c, "c", &held)).await.unwrap() {
        GateDecision::Refused { reason: r } => assert_eq!(r, reason),
        other => panic!("expected the silence's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn silences_are_stored_listed_matched_removed_and_expire() {
    use hemostat_protocol::silence::{self, Silence, Subject, TargetKind};
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let at = |secs: i64| (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339();
    let make = |id: &str, kind, target: &str, until: String| Silence {
        id: id.into(),
        kind,
        target: target.into(),
        reason: "maintenance".into(),
        created: at(0),
        until,
        by: "test".into(),
        window: None,
    };
    silence::add(&mut conn, &make("long", TargetKind::Host, "h1", at(3600))).await.unwrap();
    silence::add(&mut conn, &make("short", TargetKind::Image, "shop/api", at(1))).await.unwrap();
    let live = silence::live(&mut conn).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["short", "long"]);
    let subject = Subject { image: Some("shop/api:2".into()), ..Subject::of(&ContainerRef::new("h2", "api")) };
    assert_eq!(silence::matching(&live, &subject).map(|s| s.id.as_str()), Some("short"));
    // The short one ends by itself and is pruned from the set.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let live = silence::live(&mut conn).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["long"]);
    let stored: u64 = conn.zcard(keys::SILENCES).await.unwrap();
    assert_eq!(stored, 1);
    assert!(silence::matching(&live, &subject).is_none());
    assert!(silence::remove(&mut conn, "long").await.unwrap());
    assert!(!silence::remove(&mut conn, "long").await.unwrap());
    assert!(silence::live(&mut conn).await.unwrap().is_empty());
}

/// A recurring silence on `target` with a daily window opening at
/// `start` (UTC) for `length`.
fn recurring(
    id: &str,
    target: &str,
    start: chrono::DateTime<chrono::Utc>,
    length: &str,
) -> hemostat_protocol::maintenance::Recurring {
    use hemostat_protocol::{maintenance::Schedule, silence::TargetKind};
    hemostat_protocol::maintenance::Recurring {
        id: id.into(),
        kind: TargetKind::Container,
        target: target.into(),
        reason: "nightly backup".into(),
        created: chrono::Utc::now().to_rfc3339(),
        by: "test".into(),
        schedule: Schedule::new("day", &start.format("%H:%M").to_string(), length, Some("UTC")).unwrap(),
        until: None,
    }
}

#[tokio::test]
async fn a_maintenance_window_open_now_refuses_with_its_end_and_a_closed_one_does_not() {
    use hemostat_protocol::{
        maintenance,
        silence::{self, Subject},
    };
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let now = chrono::Utc::now();
    let (db, web) = (ContainerRef::new("h1", "db"), ContainerRef::new("h1", "web"));
    // db's window opened 10 minutes ago for an hour; web's opens in two hours.
    maintenance::add(&mut conn, &recurring("open", "h1/db", now - chrono::Duration::minutes(10), "1h")).await.unwrap();
    maintenance::add(&mut conn, &recurring("later", "h1/web", now + chrono::Duration::hours(2), "30m")).await.unwrap();
    let stored = maintenance::all(&mut conn).await.unwrap();
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["later", "open"]);
    let next = stored[0].next_window(now.timestamp_millis()).unwrap();
    assert!(!next.is_open_at(now.timestamp_millis()) && next.start_ms > now.timestamp_millis());

    let live = silence::live(&mut conn).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["open"], "only the open window holds");
    let window = silence::matching(&live, &Subject::of(&db)).expect("db's window holds for db");
    let until = chrono::DateTime::parse_from_rfc3339(&window.until).unwrap();
    let left = until.timestamp_millis() - now.timestamp_millis();
    assert!((49 * 60_000..=50 * 60_000 + 1000).contains(&left), "the window ends 50 minutes from now: {left} ms");
    assert!(silence::matching(&live, &Subject::of(&web)).is_none(), "web's window is closed");

    let gate = Gate::new(settings(0, 3));
    let facts = ContainerFacts { silence: Some(window), ..ContainerFacts::default() };
    let silenced = settings(0, 3).inputs(&facts);
    let reason = format!("silenced: nightly backup (maintenance window until {})", window.until);
    match gate.check(&mut conn, &request(&db, "a", &silenced)).await.unwrap() {
        GateDecision::Refused { reason: r } => assert_eq!(r, reason),
        other => panic!("expected the window's refusal, got {other:?}"),
    }
    let entry = &entries(&mut conn, &db).await[0];
    assert_eq!((entry.verdict, entry.reason.as_str()), (Verdict::Refused, reason.as_str()), "audited as silenced");
    let actions: u64 = conn.zcard(keys::action_log(&db)).await.unwrap();
    assert_eq!(actions, 0, "nothing taken");
    assert!(matches!(
        gate.check(&mut conn, &request(&web, "b", &plain(settings(0, 3)))).await.unwrap(),
        GateDecision::Allowed { count: 1 }
    ));

    // `silence rm` removes a window as it removes a silence.
    assert!(silence::remove(&mut conn, "open").await.unwrap());
    assert!(!silence::remove(&mut conn, "open").await.unwrap());
    assert!(silence::live(&mut conn).await.unwrap().is_empty());
    assert_eq!(maintenance::all(&mut conn).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_containers_own_cooldown_and_hourly_cap_replace_the_gates() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let gate = Gate::new(settings(3600, 3));
    let inputs = plain(settings(3600, 3));

    // hemostat.cooldown=0s, hemostat.max_actions_per_hour=2: no cooldown, and the third is the breaker's.
    let own = ContainerRef::new("h1", "batch");
    let policy = Policy { cooldown_seconds: Some(0), max_actions_per_hour: Some(2), ..Policy::default() };
    let labelled = settings(3600, 3).inputs(&ContainerFacts { policy: Some(&policy), ..ContainerFacts::default() });
    for id in ["a", "b"] {
        assert!(matches!(
            gate.check(&mut conn, &request(&own, id, &labelled)).await.unwrap(),
            GateDecision::Allowed { .. }
        ));
    }
    match gate.check(&mut conn, &request(&own, "c", &labelled)).await.unwrap() {
        GateDecision::BreakerOpened { reason } => {
            assert!(
                reason.starts_with("circuit breaker open: 2 actions in the last hour did not hold (max 2)"),
                "{reason}"
            )
        }
        v => panic!("expected the container's own cap, got {v:?}"),
    }

    // Its neighbour keeps the gate's hour of cooldown.
    let plain = ContainerRef::new("h1", "web");
    assert!(matches!(
        gate.check(&mut conn, &request(&plain, "d", &inputs)).await.unwrap(),
        GateDecision::Allowed { .. }
    ));
    match gate.check(&mut conn, &request(&plain, "e", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.ends_with("cooldown is 3600s"), "{reason}"),
        v => panic!("expected the gate's cooldown, got {v:?}"),
    }
}

#[tokio::test]
async fn an_opened_breaker_holds_past_the_hour_until_it_expires_or_is_reset() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let gate = Gate::new(GateSettings { breaker_seconds: 2, ..settings(0, 1) });
    let inputs = plain(settings(0, 1));
    let c = ContainerRef::new("h1", "flaky");
    assert!(matches!(gate.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap(), GateDecision::Allowed { .. }));
    let opened = match gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap() {
        GateDecision::BreakerOpened { reason } => reason,
        v => panic!("expected the breaker to open, got {v:?}"),
    };
    assert!(opened.ends_with("open for 2s or until hemostat reset"), "{opened}");
    // The action that opened it leaves the hour: the breaker still holds.
    let () = conn.del(keys::action_log(&c)).await.unwrap();
    match gate.check(&mut conn, &request(&c, "c", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => assert_eq!(reason, opened, "refused with the reason it opened with"),
        v => panic!("expected the open breaker to refuse, got {v:?}"),
    }
    assert_eq!(entries(&mut conn, &c).await[0].verdict, Verdict::Refused);
    // It expires by itself.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert!(matches!(gate.check(&mut conn, &request(&c, "d", &inputs)).await.unwrap(), GateDecision::Allowed { .. }));
    // An operator's reset (what `hemostat reset` deletes) closes it at once.
    assert!(matches!(
        gate.check(&mut conn, &request(&c, "e", &inputs)).await.unwrap(),
        GateDecision::BreakerOpened { .. }
    ));
    for key in keys::safety_state(&c) {
        let () = conn.del(key).await.unwrap();
    }
    assert!(matches!(gate.check(&mut conn, &request(&c, "f", &inputs)).await.unwrap(), GateDecision::Allowed { .. }));
}

/// Everything the gate keeps for a container, to show a preview wrote nothing.
async fn safety_state(conn: &mut hemostat_protocol::connection::Connection, c: &ContainerRef) -> Vec<String> {
    let mut dump = Vec::new();
    for key in [keys::remediation(c), keys::action_log(c), keys::audit(c), keys::gate_pending(c), keys::breaker(c)] {
        let value: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(conn).await.unwrap();
        let ttl: i64 = conn.ttl(&key).await.unwrap();
        dump.push(format!("{key}: {value:?} ttl>0={}", ttl > 0));
    }
    dump
}

#[tokio::test]
async fn the_preview_decides_as_the_gate_does_and_writes_nothing() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "web");
    let s = GateSettings { breaker_seconds: 60, ..settings(3600, 2) };
    let gate = Gate::new(s);
    let inputs = plain(s);

    // Nothing yet: allowed, and nothing written.
    let before = safety_state(&mut conn, &c).await;
    let preview = gate.preview(&mut conn, &c, &inputs).await.unwrap();
    assert_eq!(
        (preview.decision, preview.actions_last_hour, preview.cooldown_left_ms),
        (GateDecision::Allowed { count: 1 }, 0, 0)
    );
    assert_eq!(safety_state(&mut conn, &c).await, before, "a preview writes nothing");

    // After an action: the cooldown, as the gate says it.
    assert!(matches!(
        gate.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap(),
        GateDecision::Allowed { count: 1 }
    ));
    let before = safety_state(&mut conn, &c).await;
    let preview = gate.preview(&mut conn, &c, &inputs).await.unwrap();
    let GateDecision::Refused { reason } = &preview.decision else { panic!("{preview:?}") };
    assert!(reason.starts_with("cooldown: last action ") && reason.ends_with("cooldown is 3600s"), "{reason}");
    assert_eq!(preview.actions_last_hour, 1);
    assert!((3_590_000..=3_600_000).contains(&preview.cooldown_left_ms), "{preview:?}");
    assert_eq!(safety_state(&mut conn, &c).await, before, "a preview writes nothing");
    match gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.starts_with("cooldown: last action "), "{reason}"),
        v => panic!("{v:?}"),
    }

    // A refusal decided before the gate outranks the cooldown, in both.
    let held = GateInputs { refusal: Some("operator: docker restart 4 s ago (grace 30 s)".into()), ..inputs.clone() };
    let preview = gate.preview(&mut conn, &c, &held).await.unwrap();
    let decided = gate.check(&mut conn, &request(&c, "c", &held)).await.unwrap();
    assert_eq!(preview.decision, decided);
    assert_eq!(decided, GateDecision::Refused { reason: "operator: docker restart 4 s ago (grace 30 s)".into() });

    // At the hourly cap: the preview says the next request opens the
    // breaker, with the gate's very reason, and leaves it closed.
    let uncooled = GateInputs { cooldown_seconds: 0, ..inputs.clone() };
    assert!(matches!(
        gate.check(&mut conn, &request(&c, "d", &uncooled)).await.unwrap(),
        GateDecision::Allowed { count: 2 }
    ));
    let before = safety_state(&mut conn, &c).await;
    let preview = gate.preview(&mut conn, &c, &uncooled).await.unwrap();
    assert_eq!(safety_state(&mut conn, &c).await, before, "a preview opens no breaker");
    let opened = gate.check(&mut conn, &request(&c, "e", &uncooled)).await.unwrap();
    assert_eq!(preview.decision, opened);
    assert!(
        matches!(&opened, GateDecision::BreakerOpened { reason } if reason.ends_with("open for 60s or until hemostat reset")),
        "{opened:?}"
    );
    // Open: both refuse with the reason it opened with.
    let GateDecision::BreakerOpened { reason } = opened else { unreachable!() };
    let preview = gate.preview(&mut conn, &c, &uncooled).await.unwrap();
    assert_eq!(preview.decision, GateDecision::Refused { reason });
}

#[tokio::test]
async fn what_the_scripts_write_reads_back_as_audit_entries() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let gate = Gate::new(settings(3600, 1)).with_brake(FleetBrake { hosts: 1, window_seconds: 600 });
    let inputs = plain(settings(3600, 1));
    let (a, b) = (ContainerRef::new("h1", "api"), ContainerRef::new("h2", "api"));
    let started = chrono::Utc::now().timestamp_millis();
    // container.lua alone (no image: no brake), then refused by its cooldown;
    // settle.lua after the fleet brake admitted h1, and after it held h2.
    let unbraked = ContainerRef::new("h1", "db");
    gate.check(&mut conn, &request(&unbraked, "u1", &inputs)).await.unwrap();
    gate.check(&mut conn, &request(&unbraked, "u2", &inputs)).await.unwrap();
    gate.check(&mut conn, &with_image(&a, "a1", "shop/api:1", &inputs)).await.unwrap();
    gate.check(&mut conn, &with_image(&b, "b1", "shop/api:1", &inputs)).await.unwrap();
    // An operator's reset, as `hemostat reset` writes it.
    let reset = AuditEntry::reset(&unbraked, "alice", 1, started);
    let mut pipe = redis::pipe();
    audit::push(&mut pipe, &unbraked, &reset).unwrap();
    let () = pipe.query_async(&mut conn).await.unwrap();

    let db = entries(&mut conn, &unbraked).await;
    assert_eq!(db.iter().map(|e| e.verdict).collect::<Vec<_>>(), [Verdict::Reset, Verdict::Refused, Verdict::Allowed]);
    assert_eq!(db[0], reset);
    let allowed = &db[2];
    let asked = AuditRequest {
        host: "h1".into(),
        container: "db".into(),
        action: "restart".into(),
        command_id: Some("u1".into()),
        request_reason: Some("exit 1".into()),
        confidence: Some(0.9),
        dry_run: Some(false),
        image: None,
        forgotten_actions: None,
    };
    assert_eq!((&allowed.request, allowed.reason.as_str()), (&asked, ""));
    assert!(db[1].reason.starts_with("cooldown: "), "{:?}", db[1]);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(db[1..].iter().all(|e| (started - 1000..=now + 1000).contains(&e.at_ms)), "Redis' clock, in ms: {db:?}");

    let admitted = &entries(&mut conn, &a).await[0];
    assert_eq!((admitted.verdict, admitted.request.image.as_deref()), (Verdict::Allowed, Some("shop/api:1")));
    let braked = &entries(&mut conn, &b).await[0];
    assert_eq!(braked.verdict, Verdict::Brake);
    assert!(braked.reason.starts_with("fleet brake: suspected bad release of shop/api:1"), "{braked:?}");
    let ttl: i64 = conn.ttl(keys::audit(&b)).await.unwrap();
    assert!(ttl > 7 * 24 * 3600 - 60 && ttl <= 7 * 24 * 3600, "kept a week: {ttl}");
}
