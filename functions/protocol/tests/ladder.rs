//! The escalation ladder against a real redis-server (one node, or a
//! cluster under `HEMOSTAT_TEST_REDIS=cluster`): the gate climbs one step
//! per reported outcome, waits for an outcome, stops at the top, starts
//! again once the container was quiet, and a reset or a brake undoes it.
//! The test plays the collector: it writes the `done:` markers a collector
//! writes after reporting an outcome.

mod support;

use std::time::Duration;

use hemostat_e2e::RedisServer;
use hemostat_protocol::{
    Action, ContainerRef,
    audit::{self, Verdict},
    connection::Connection,
    gate::{FleetBrake, Gate, GateDecision, GateInputs, GateRequest, GateSettings, Ladder, Rung, Step},
    keys,
};
use redis::AsyncCommands;
use support::{plain, request};

/// No cooldown and a cap of one action an hour: without the ladder the
/// second request would open the breaker.
fn settings(ladder: &str) -> GateSettings {
    GateSettings {
        cooldown_seconds: 0,
        max_per_hour: 1,
        breaker_seconds: 600,
        escalation: Ladder::parse(ladder).unwrap(),
        escalation_quiet_seconds: 3600,
    }
}

/// What the collector of `c`'s host writes once it reported command `id`.
async fn reported(conn: &mut Connection, c: &ContainerRef, id: &str, status: &str) {
    let _: () = conn.set(keys::command_seen(&c.host, id), format!("{}{status}", keys::COMMAND_DONE)).await.unwrap();
}

fn step(decision: GateDecision) -> Step {
    match decision {
        GateDecision::Escalated { step, duplicate: false, .. } => step,
        other => panic!("expected an escalation step, got {other:?}"),
    }
}

#[tokio::test]
async fn restart_then_recreate_then_stop_each_after_the_last_outcome() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "api");
    let s = settings("restart,recreate,stop");
    let gate = Gate::new(s);
    let inputs = plain(s);

    let first = step(gate.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap());
    assert_eq!((first.number, first.of, first.action), (1, 3, Action::Restart));

    // Failing again before the collector reported the restart: wait, and
    // leave no trace (the request comes back).
    let audited: usize = conn.llen(keys::audit(&c)).await.unwrap();
    match gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap() {
        GateDecision::Wait { reason } => assert!(reason.contains("step 1/3 (restart at "), "{reason}"),
        other => panic!("expected to wait, got {other:?}"),
    }
    let executing = format!("{}host-1", keys::COMMAND_EXECUTING);
    let _: () = conn.set(keys::command_seen(&c.host, "a"), executing).await.unwrap();
    assert!(matches!(gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap(), GateDecision::Wait { .. }));
    assert_eq!(conn.llen::<_, usize>(keys::audit(&c)).await.unwrap(), audited, "a wait is not audited");

    // The restart did not hold: the same request climbs to a recreate,
    // past the hourly cap of one.
    reported(&mut conn, &c, "a", "failed").await;
    let preview = gate.preview(&mut conn, &c, &inputs).await.unwrap();
    let second = step(gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap());
    assert_eq!(preview.decision, GateDecision::Escalated { count: 2, step: second.clone(), duplicate: false });
    assert_eq!((second.number, second.action), (2, Action::Recreate));
    assert!(second.text.starts_with("escalation step 2/3: recreate after the restart at "), "{}", second.text);
    assert!(second.text.ends_with(" did not hold (failed)"), "{}", second.text);
    // A redelivery of it is the same step, not the restart it asked for.
    match gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap() {
        GateDecision::Escalated { step, duplicate: true, .. } => assert_eq!(step.action, Action::Recreate),
        other => panic!("expected the duplicate step, got {other:?}"),
    }

    // The recreate is reported (a failure climbs as well): stop and page.
    reported(&mut conn, &c, "b", "failed").await;
    // A silence (the policy, a hold) still wins over the climb.
    let silenced = GateInputs { refusal: Some("silenced: deploy".into()), ..inputs.clone() };
    assert_eq!(
        gate.check(&mut conn, &request(&c, "s", &silenced)).await.unwrap(),
        GateDecision::Refused { reason: "silenced: deploy".into() }
    );
    let third = step(gate.check(&mut conn, &request(&c, "c", &inputs)).await.unwrap());
    assert_eq!((third.number, third.action, third.is_last()), (3, Action::Stop, true));

    // Past the top: refused, however the stop went.
    reported(&mut conn, &c, "c", "success").await;
    match gate.check(&mut conn, &request(&c, "d", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => {
            assert!(reason.starts_with("escalation ladder exhausted: restart, recreate, stop taken"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Each step audited with its action and name, newest first.
    let audit: Vec<_> = audit::newest(&mut conn, &c, 10).await.unwrap().into_iter().map(|e| e.unwrap()).collect();
    let seen: Vec<_> = audit.iter().map(|e| (e.verdict, e.request.action.as_str())).collect();
    assert_eq!(
        seen,
        [
            (Verdict::Refused, "restart"),
            (Verdict::Allowed, "stop"),
            (Verdict::Refused, "restart"),
            (Verdict::Allowed, "recreate"),
            (Verdict::Allowed, "restart")
        ]
    );
    assert_eq!(audit[4].reason, "escalation step 1/3: restart");
    assert_eq!(audit[3].reason, second.text);
    assert!(audit[1].reason.starts_with("escalation step 3/3: stop after the recreate at "), "{}", audit[1].reason);

    // Remembered for its cooldown plus the quiet period; a reset forgets it.
    let ttl: i64 = conn.ttl(keys::ladder(&c)).await.unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys::safety_state(&c) {
        pipe.del(key).ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(step(gate.check(&mut conn, &request(&c, "e", &inputs)).await.unwrap()).number, 1);
}

#[tokio::test]
async fn a_climbing_ladder_is_not_held_back_by_the_cooldown_but_a_fresh_incident_is() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "db");
    let s = GateSettings { cooldown_seconds: 300, ..settings("restart,recreate,stop") };
    let gate = Gate::new(s);
    let inputs = plain(s);
    assert_eq!(inputs.cooldown_seconds, 300);

    assert_eq!(step(gate.check(&mut conn, &request(&c, "a", &inputs)).await.unwrap()).number, 1);
    // Failing again before the restart's outcome: it waits for the outcome
    // (asked again), rather than being dropped by the cooldown.
    assert!(matches!(gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap(), GateDecision::Wait { .. }));
    // The restart did not hold: the recreate at once, then the stop.
    reported(&mut conn, &c, "a", "failed").await;
    assert_eq!(step(gate.check(&mut conn, &request(&c, "b", &inputs)).await.unwrap()).action, Action::Recreate);
    reported(&mut conn, &c, "b", "success").await;
    assert_eq!(step(gate.check(&mut conn, &request(&c, "c", &inputs)).await.unwrap()).action, Action::Stop);
    reported(&mut conn, &c, "c", "success").await;
    match gate.check(&mut conn, &request(&c, "d", &inputs)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.starts_with("escalation ladder exhausted"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Without a ladder the cooldown spaces out restarts as ever; and a
    // ladder's first step is a fresh incident: the cooldown holds it.
    let plain_gate = Gate::new(GateSettings { cooldown_seconds: 300, max_per_hour: 10, ..GateSettings::default() });
    let other = ContainerRef::new("h1", "cache");
    let unladdered = plain(GateSettings { cooldown_seconds: 300, max_per_hour: 10, ..GateSettings::default() });
    assert!(matches!(
        plain_gate.check(&mut conn, &request(&other, "e", &unladdered)).await.unwrap(),
        GateDecision::Allowed { .. }
    ));
    match plain_gate.check(&mut conn, &request(&other, "f", &unladdered)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.starts_with("cooldown: "), "{reason}"),
        other => panic!("expected the cooldown, got {other:?}"),
    }
    let quick = GateInputs { ladder_seconds: 1, ..inputs.clone() };
    let web = ContainerRef::new("h1", "web");
    assert_eq!(step(gate.check(&mut conn, &request(&web, "g", &quick)).await.unwrap()).number, 1);
    reported(&mut conn, &web, "g", "success").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    match gate.check(&mut conn, &request(&web, "h", &quick)).await.unwrap() {
        GateDecision::Refused { reason } => assert!(reason.starts_with("cooldown: "), "{reason}"),
        other => panic!("expected the cooldown on the first step, got {other:?}"),
    }
}

#[tokio::test]
async fn a_quiet_container_starts_at_the_bottom_and_a_ladder_without_stop_opens_the_breaker() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let c = ContainerRef::new("h1", "web");
    let s = settings("restart,recreate");
    let gate = Gate::new(s);
    // Quiet after one second (what remains of a zero cooldown plus the quiet period).
    let quick = GateInputs { ladder_seconds: 1, ..plain(s) };

    assert_eq!(step(gate.check(&mut conn, &request(&c, "a", &quick)).await.unwrap()).number, 1);
    reported(&mut conn, &c, "a", "success").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = step(gate.check(&mut conn, &request(&c, "b", &quick)).await.unwrap());
    assert_eq!((again.number, again.action), (1, Action::Restart), "quiet: the bottom again");

    let inputs = plain(s);
    reported(&mut conn, &c, "b", "success").await;
    let second = step(gate.check(&mut conn, &request(&c, "c", &inputs)).await.unwrap());
    assert!(second.text.ends_with("did not hold (it was verified, then failed again)"), "{}", second.text);
    reported(&mut conn, &c, "c", "failed").await;
    match gate.check(&mut conn, &request(&c, "d", &inputs)).await.unwrap() {
        GateDecision::BreakerOpened { reason } => {
            assert!(
                reason.starts_with(
                    "circuit breaker open: escalation ladder exhausted: restart, recreate taken, the recreate at "
                ),
                "{reason}"
            );
            assert!(reason.ends_with("open for 600s or until hemostat reset"), "{reason}");
        }
        other => panic!("expected the breaker to open, got {other:?}"),
    }
    let open: Option<String> = conn.get(keys::breaker(&c)).await.unwrap();
    assert!(open.is_some(), "the breaker is open");

    // Not a restart: the ladder leaves it to the gate as before (here the open breaker).
    let stop = GateRequest { action: "stop", ..request(&c, "e", &inputs) };
    assert!(matches!(gate.check(&mut conn, &stop).await.unwrap(), GateDecision::Refused { .. }));
}

#[tokio::test]
async fn off_by_default_and_a_brake_undoes_the_step() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    // The fleet's default: no ladder, today's gate.
    let unladdered = GateSettings { cooldown_seconds: 0, max_per_hour: 1, ..GateSettings::default() };
    let c = ContainerRef::new("h1", "db");
    let gate = Gate::new(unladdered);
    let inputs0 = plain(unladdered);
    assert_eq!(gate.check(&mut conn, &request(&c, "a", &inputs0)).await.unwrap(), GateDecision::Allowed { count: 1 });
    assert!(matches!(
        gate.check(&mut conn, &request(&c, "b", &inputs0)).await.unwrap(),
        GateDecision::BreakerOpened { .. }
    ));
    assert!(!conn.exists::<_, bool>(keys::ladder(&c)).await.unwrap());

    // The brake refuses a second host's step: its ladder stays where it was.
    let s = settings("restart,recreate,stop");
    let gate = Gate::new(s).with_brake(FleetBrake { hosts: 1, window_seconds: 600 });
    let inputs = plain(s);
    let (a, b) = (ContainerRef::new("h1", "api"), ContainerRef::new("h2", "api"));
    let on = |c, id| GateRequest { image: Some("shop/api:2"), ..request(c, id, &inputs) };
    assert_eq!(step(gate.check(&mut conn, &on(&a, "a1")).await.unwrap()).number, 1);
    assert!(matches!(gate.check(&mut conn, &on(&b, "b1")).await.unwrap(), GateDecision::Brake { .. }));
    assert!(!conn.exists::<_, bool>(keys::ladder(&b)).await.unwrap(), "the brake took the step back");
    let kept: String = conn.get(keys::ladder(&a)).await.unwrap();
    let kept = Rung::parse(&kept).unwrap();
    assert_eq!((kept.step, kept.action, kept.command_id.as_str()), (1, Action::Restart, "a1"));
    // The step the brake admitted is audited by name, the one it refused as asked.
    let a_audit = audit::newest(&mut conn, &a, 1).await.unwrap().remove(0).unwrap();
    assert_eq!((a_audit.verdict, a_audit.reason.as_str()), (Verdict::Allowed, "escalation step 1/3: restart"));
    let b_audit = audit::newest(&mut conn, &b, 1).await.unwrap().remove(0).unwrap();
    assert_eq!((b_audit.verdict, b_audit.request.action.as_str()), (Verdict::Brake, "restart"));
}

#[tokio::test]
async fn concurrent_requests_take_one_step() {
    let server = RedisServer::start().await;
    let c = ContainerRef::new("h1", "web");
    let s = settings("restart,recreate,stop");
    let gate = Gate::new(s);
    let inputs = plain(s);
    let mut conn = server.connection().await;
    assert_eq!(step(gate.check(&mut conn, &request(&c, "first", &inputs)).await.unwrap()).number, 1);
    reported(&mut conn, &c, "first", "failed").await;

    // Fifty requests at once, no cooldown: one climbs, the others find the
    // ladder moved (or the new step without an outcome) and come back later.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut conn = server.connection().await;
        let (gate, c, inputs) = (&gate, &c, &inputs);
        tasks.push(async move { gate.check(&mut conn, &request(c, &format!("id-{i}"), inputs)).await.unwrap() });
    }
    let decisions = futures::future::join_all(tasks).await;
    let climbed: Vec<&GateDecision> =
        decisions.iter().filter(|d| matches!(d, GateDecision::Escalated { .. })).collect();
    assert_eq!(climbed.len(), 1, "{decisions:?}");
    assert!(matches!(climbed[0], GateDecision::Escalated { step, .. } if step.action == Action::Recreate));
    assert!(decisions.iter().all(|d| matches!(d, GateDecision::Escalated { .. } | GateDecision::Wait { .. })));
    let audited: usize = conn.llen(keys::audit(&c)).await.unwrap();
    assert_eq!(audited, 2, "two steps audited, no wait");
}
