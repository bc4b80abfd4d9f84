//! The verbs that only read: `status`, `events`, `explain`, `audit`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::StreamExt;
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind, ProtocolError,
    audit::{self, AuditEntry},
    command::{COMMAND_FIELD, SIGNATURE_FIELD, SignedCommand},
    deferred,
    event::HealthAlert,
    facts,
    gate::{Asked, Belief, ContainerFacts, Gate, GateDecision},
    keys,
    metrics::Metrics,
    policy::Policy,
    publisher::{ALL_CHANNEL, ENVELOPE_FIELD},
    silence::{self, Subject},
};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::{
    context::{Context, now_ms},
    error::CliError,
    key, show, state,
};

/// Newest entries read from each durable stream (issues, explain): bounded
/// work whatever the streams' length.
const STREAM_SCAN: usize = 500;
/// A health alert older than this is history, not an active issue (the
/// dashboard's default window).
const ISSUE_WINDOW_MS: i64 = 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;

/// The newest `count` events of `kind`'s stream, newest first, with the
/// time Redis took each (ms).
pub async fn newest(ctx: &Context, kind: EventKind, count: usize) -> Result<Vec<(i64, Envelope)>, CliError> {
    let reply: redis::streams::StreamRangeReply = ctx.conn().xrevrange_count(kind.stream(), "+", "-", count).await?;
    Ok(reply
        .ids
        .iter()
        .filter_map(|e| {
            let ms = e.id.split('-').next()?.parse().ok()?;
            let json: String = e.get(ENVELOPE_FIELD)?;
            Some((ms, Envelope::parse(json.as_bytes()).ok()?))
        })
        .collect())
}

fn about(env: &Envelope, c: &ContainerRef) -> bool {
    show::text(&env.data, "container") == c.name
        && matches!(show::text(&env.data, "host"), h if h == c.host || h.is_empty())
}

/// The policy each container's newest alert among `alerts` (newest first)
/// carried, by `host/name`.
fn policies(alerts: &[(i64, Envelope)]) -> BTreeMap<String, Policy> {
    let mut out = BTreeMap::new();
    for (_, env) in alerts {
        out.entry(show::subject(env)).or_insert_with(|| {
            env.data_of::<HealthAlert>(EventKind::HealthAlert).ok().and_then(|a| a.policy).unwrap_or_default()
        });
    }
    out
}

pub async fn status(ctx: &Context) -> Result<(), CliError> {
    let now = now_ms();
    let mut conn = ctx.conn();
    let collectors: Vec<(String, f64)> = conn.zrange_withscores(keys::COLLECTORS, 0, -1).await?;
    let mut hosts = Vec::new();
    for (host, ms) in &collectors {
        let alive: bool = conn.exists(keys::heartbeat(host)).await?;
        let ms = *ms as i64;
        hosts.push(json!({"host": host, "last_heartbeat_ms": ms, "age_seconds": (now - ms) / 1000, "alive": alive}));
    }
    let mut members: Vec<String> = conn.smembers(keys::CONTAINERS).await?;
    members.sort();
    let refs: Vec<ContainerRef> = members.iter().filter_map(|m| ContainerRef::parse(m)).collect();
    let alerts = newest(ctx, EventKind::HealthAlert, STREAM_SCAN).await?;
    let policies = policies(&alerts);
    let mut containers = Vec::new();
    let mut breakers = Vec::new();
    if !refs.is_empty() {
        let mut pipe = redis::pipe();
        for c in &refs {
            pipe.get(keys::stats(c)).zcount(keys::action_log(c), now - HOUR_MS, "+inf").get(keys::breaker(c));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        for (c, pair) in refs.iter().zip(replies.chunks(3)) {
            let stats: Option<Metrics> = redis::from_redis_value::<Option<String>>(pair[0].clone())
                .ok()
                .flatten()
                .as_deref()
                .and_then(Metrics::parse);
            let s = stats.as_ref();
            let actions: u64 = redis::from_redis_value(pair[1].clone()).unwrap_or(0);
            containers.push(json!({
                "container": c.key(), "host": c.host, "name": c.name,
                "status": s.and_then(|s| s.status.as_deref()), "health": s.and_then(|s| s.health.as_deref()),
                "cpu_pct": s.map(|s| s.cpu_pct), "memory_pct": s.map(|s| s.memory_pct),
                "image": s.and_then(|s| s.image.as_deref()), "actions_last_hour": actions,
            }));
            let opened: Option<String> = redis::from_redis_value(pair[2].clone()).ok().flatten();
            // Its own hourly cap when its labels set one, as the gate applies it.
            let facts = ContainerFacts { policy: policies.get(&c.key()), ..ContainerFacts::default() };
            let max = ctx.gate.inputs(&facts).max_per_hour;
            if opened.is_some() || actions >= max {
                breakers.push(json!({
                    "container": c.key(), "actions_last_hour": actions, "max": max, "reason": opened,
                }));
            }
        }
    }
    let issues = active_issues(ctx, now, &alerts).await?;
    let silences = silence::live(&mut conn).await?;
    let silences: Vec<Value> = silences.iter().map(|s| serde_json::to_value(s).unwrap_or_default()).collect();
    let mut signing = Vec::new();
    for (host, _) in &collectors {
        signing.push(newest_command_signature(ctx, host, now).await?);
    }
    let key_source = ctx.command_key.as_ref().map(|k| k.source.to_string());
    if ctx.json {
        show::json(&json!({
            "hosts": hosts, "containers": containers, "issues": issues,
            "circuit_breakers": breakers, "silences": silences,
            "command_signing": {"key": key_source, "hosts": signing},
        }));
        return Ok(());
    }
    println!("HOSTS ({})", hosts.len());
    for h in &hosts {
        let age = h["age_seconds"].as_i64().unwrap_or_default() * 1000;
        let state = if h["alive"].as_bool() == Some(true) { "alive" } else { "MISSING" };
        println!("  {:<24}  {state:<7}  heartbeat {} ago", show::text(h, "host"), show::span(age));
    }
    println!("CONTAINERS ({})", containers.len());
    for c in &containers {
        let health = c["health"].as_str().unwrap_or("-");
        println!(
            "  {:<32}  {:<10}  {health:<10}  cpu {:>7}  mem {:>7}",
            show::text(c, "container"),
            c["status"].as_str().unwrap_or("unknown"),
            show::pct(c["cpu_pct"].as_f64()),
            show::pct(c["memory_pct"].as_f64())
        );
    }
    println!("ACTIVE ISSUES ({})", issues.len());
    for i in &issues {
        let age = now - i["last_seen_ms"].as_i64().unwrap_or(now);
        println!(
            "  {:<32}  {} ({} alerts, last {} ago)",
            show::text(i, "container"),
            show::text(i, "issue"),
            i["alerts"],
            show::span(age)
        );
    }
    println!("OPEN CIRCUIT BREAKERS ({})", breakers.len());
    for b in &breakers {
        println!(
            "  {:<32}  {} actions in the last hour (max {})",
            show::text(b, "container"),
            b["actions_last_hour"],
            b["max"]
        );
        if let Some(reason) = b["reason"].as_str() {
            println!("  {:<32}  {reason}", "");
        }
    }
    print_silences(&silences);
    match &key_source {
        Some(source) => println!("COMMAND SIGNING (key from {source})"),
        None => println!(
            "COMMAND SIGNING (no key here: {} unset, no {}/{} found)",
            key::KEY_VAR,
            state::STATE_DIR,
            key::KEY_FILE
        ),
    }
    for s in &signing {
        let age = s["age_seconds"].as_i64().map_or_else(String::new, |a| format!(" ({} ago)", show::span(a * 1000)));
        let said = match show::text(s, "signature") {
            "valid" => "signed, valid with this key",
            "another_key" => "signed with ANOTHER key (the responder's key differs from this one)",
            "unsigned" => "UNSIGNED (the responder has no key)",
            "signed_unchecked" => "signed (no key here to check it)",
            _ => "none yet",
        };
        println!("  {:<24}  newest command: {said}{age}", show::text(s, "host"));
    }
    Ok(())
}

/// How the newest command on a host's stream is signed, checked with this
/// command's signing key (its public half): `valid`, `another_key` (signed,
/// but not with this key),
/// `unsigned`, `signed_unchecked` (no key here to check it), `none` (no
/// command yet).
async fn newest_command_signature(ctx: &Context, host: &str, now: i64) -> Result<Value, CliError> {
    let reply: redis::streams::StreamRangeReply = ctx.conn().xrevrange_count(keys::commands(host), "+", "-", 1).await?;
    let Some(entry) = reply.ids.first() else {
        return Ok(json!({"host": host, "signature": "none"}));
    };
    let command = SignedCommand {
        json: entry.get::<String>(COMMAND_FIELD).unwrap_or_default(),
        signature: entry.get::<String>(SIGNATURE_FIELD),
    };
    let signature = match (&ctx.command_key, &command.signature) {
        (_, None) => "unsigned",
        (None, Some(_)) => "signed_unchecked",
        (Some(key), Some(_)) => match command.open(Some(&key.public())) {
            // Malformed JSON under a good signature: the signature is still valid.
            Ok(_) | Err(ProtocolError::MalformedCommand(_)) => "valid",
            Err(_) => "another_key",
        },
    };
    let ms: Option<i64> = entry.id.split('-').next().and_then(|ms| ms.parse().ok());
    Ok(json!({
        "host": host, "signature": signature, "key_id": command.key_id(), "command_id": entry.id,
        "age_seconds": ms.map(|ms| (now - ms) / 1000),
    }))
}

pub fn print_silences(silences: &[Value]) {
    println!("SILENCES ({})", silences.len());
    for s in silences {
        let until_ms = chrono::DateTime::parse_from_rfc3339(show::text(s, "until")).map_or(0, |t| t.timestamp_millis());
        let kind = show::text(s, "kind");
        let target = if kind == "container" {
            show::text(s, "target").to_owned()
        } else {
            format!("{kind}:{}", show::text(s, "target"))
        };
        println!(
            "  {}  {target:<32}  until {} ({} left)  by {}: {}",
            show::text(s, "id"),
            show::text(s, "until"),
            show::span(until_ms - now_ms()),
            show::text(s, "by"),
            show::text(s, "reason")
        );
    }
}

/// Containers whose newest alert within the window came after their newest
/// success or false alarm (the dashboard's rule).
async fn active_issues(ctx: &Context, now: i64, alerts: &[(i64, Envelope)]) -> Result<Vec<Value>, CliError> {
    let mut settled: BTreeMap<String, i64> = BTreeMap::new();
    for (ms, env) in newest(ctx, EventKind::RemediationComplete, STREAM_SCAN).await? {
        if env.data.pointer("/result/status").and_then(Value::as_str) == Some("success") {
            let e = settled.entry(show::subject(&env)).or_default();
            *e = (*e).max(ms);
        }
    }
    for (ms, env) in newest(ctx, EventKind::FalseAlarm, STREAM_SCAN).await? {
        let e = settled.entry(show::subject(&env)).or_default();
        *e = (*e).max(ms);
    }
    let mut issues: BTreeMap<String, Value> = BTreeMap::new();
    for (ms, env) in alerts.iter().filter(|(ms, _)| *ms >= now - ISSUE_WINDOW_MS) {
        let who = show::subject(env);
        if settled.get(&who).is_some_and(|s| s >= ms) {
            continue;
        }
        let entry = issues.entry(who.clone()).or_insert_with(|| {
            json!({"container": who, "issue": show::summary(env), "alerts": 0, "last_seen_ms": ms, "first_seen_ms": ms})
        });
        entry["alerts"] = json!(entry["alerts"].as_u64().unwrap_or(0) + 1);
        entry["first_seen_ms"] = json!(ms);
    }
    Ok(issues.into_values().collect())
}

/// `events --container --type`.
pub struct EventFilter {
    container: Option<String>,
    kind: Option<EventKind>,
}

impl EventFilter {
    pub fn new(container: Option<String>, kind: Option<String>) -> Result<Self, CliError> {
        let kind = kind
            .map(|k| {
                k.parse::<EventKind>().map_err(|_| {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    CliError::Usage(format!("--type {k:?}: expected one of {}", known.join(", ")))
                })
            })
            .transpose()?;
        Ok(EventFilter { container: container.filter(|c| !c.is_empty()), kind })
    }

    fn wants(&self, env: &Envelope) -> bool {
        self.kind.is_none_or(|k| k == env.kind)
            && self.container.as_deref().is_none_or(|c| {
                let name = show::text(&env.data, "container");
                if c.contains('/') { show::subject(env) == c } else { name == c }
            })
    }
}

fn print_event(ctx: &Context, env: &Envelope) {
    if ctx.json { println!("{}", env.to_json()) } else { println!("{}", show::event_line(env)) }
}

/// The newest `last` events (matching the filter) of every stream, oldest first.
pub async fn recent(ctx: &Context, filter: &EventFilter, last: usize) -> Result<(), CliError> {
    let mut all = Vec::new();
    for kind in EventKind::ALL.into_iter().filter(|k| filter.kind.is_none_or(|f| f == *k)) {
        all.extend(newest(ctx, kind, STREAM_SCAN).await?.into_iter().filter(|(_, env)| filter.wants(env)));
    }
    all.sort_by_key(|(ms, _)| *ms);
    for (_, env) in &all[all.len().saturating_sub(last)..] {
        print_event(ctx, env);
    }
    Ok(())
}

/// Every event as it is published, on the channel `hemostat:*` that every
/// publish goes to (on a cluster, any node hears every channel). When the
/// node goes away the stream goes on from the next node the cluster names
/// (or the same node once it is back); it ends when no node has taken the
/// subscription for [`FOLLOW_PATIENCE`].
pub async fn follow(ctx: &Context, filter: &EventFilter) -> Result<(), CliError> {
    let mut nodes = ctx.target.subscribers(&ctx.conn).await;
    let mut refused_since: Option<Instant> = None;
    loop {
        let node = nodes.current();
        let at = node.get_connection_info().addr().to_string();
        match subscribe_all(node).await {
            Ok(pubsub) => {
                refused_since = None;
                eprintln!("following {ALL_CHANNEL} on {at} (Ctrl-C to stop)");
                print_until_closed(ctx, filter, pubsub).await;
                eprintln!("the subscription on {at} ended (Redis closed the connection)");
            }
            Err(e) => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= FOLLOW_PATIENCE {
                    return Err(CliError::Redis(format!(
                        "no Redis node has taken a subscription to {ALL_CHANNEL} for {} s: {e}",
                        FOLLOW_PATIENCE.as_secs()
                    )));
                }
            }
        }
        nodes.advance().await;
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}

/// Between two subscription attempts: a failover takes seconds, and a
/// refused node should not be hammered.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);
/// How long `events --follow` keeps trying while no node takes the
/// subscription: longer than a failover or a quick restart of Redis.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(30);

async fn subscribe_all(node: &redis::Client) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = node.get_async_pubsub().await?;
    pubsub.subscribe(ALL_CHANNEL).await?;
    Ok(pubsub)
}

async fn print_until_closed(ctx: &Context, filter: &EventFilter, pubsub: redis::aio::PubSub) {
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
        match Envelope::parse(&payload) {
            Ok(env) if filter.wants(&env) => print_event(ctx, &env),
            Ok(_) => {}
            Err(e) => eprintln!("unreadable message on {ALL_CHANNEL}: {e}"),
        }
    }
}

pub async fn audit(ctx: &Context, c: &ContainerRef, limit: usize) -> Result<(), CliError> {
    ctx.require_known(c).await?;
    let entries = audit::newest(&mut ctx.conn(), c, limit).await?;
    if ctx.json {
        show::json(&Value::Array(entries.iter().map(audit_json).collect()));
        return Ok(());
    }
    if entries.is_empty() {
        println!("{c}: no gate decision recorded (the audit keeps 7 days)");
    }
    for e in &entries {
        println!("{}", audit_line(e));
    }
    Ok(())
}

/// An entry as JSON; one that did not parse, as the text it is.
fn audit_json(e: &Result<AuditEntry, String>) -> Value {
    match e {
        Ok(entry) => serde_json::to_value(entry).unwrap_or_default(),
        Err(raw) => Value::String(raw.clone()),
    }
}

fn audit_line(e: &Result<AuditEntry, String>) -> String {
    let e = match e {
        Ok(entry) => entry,
        Err(raw) => return format!("unreadable entry: {raw}"),
    };
    let reason = if e.reason.is_empty() { String::new() } else { format!(": {}", e.reason) };
    let request = match e.request.request_reason.as_deref() {
        None | Some("") => String::new(),
        Some(r) => format!(" <- {r}"),
    };
    format!("{}  {:<8}  {:<8}{reason}{request}", show::time(e.at_ms), e.verdict.as_str(), e.request.action)
}

pub async fn explain(ctx: &Context, c: &ContainerRef) -> Result<(), CliError> {
    ctx.require_known(c).await?;
    let mut conn = ctx.conn();
    let reported = ctx.is_reported(c).await?;
    let stats = ctx.stats(c).await?;
    let image = stats.as_ref().and_then(|s| s.image.clone());
    let record: Option<String> = conn.get(keys::remediation(c)).await?;
    let opened: Option<String> = conn.get(keys::breaker(c)).await?;

    let alerts: Vec<Envelope> = newest(ctx, EventKind::HealthAlert, STREAM_SCAN)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| about(e, c))
        .take(5)
        .collect();
    // What the gate believes, from its collector's facts, for a request
    // made of its newest alert (as the analyzer passes it on: its policy,
    // `held` and the label silences its collector matched can only make the
    // collector's account stricter).
    let alert: Option<HealthAlert> = alerts.first().and_then(|e| e.data_of(EventKind::HealthAlert).ok());
    let facts = facts::read(&mut conn, c).await?;
    let asked = Asked {
        container_id: alert.as_ref().and_then(|a| a.container_id.as_deref()),
        policy: alert.as_ref().and_then(|a| a.policy.as_ref()),
        held: alert.as_ref().and_then(|a| a.held.as_deref()),
        silenced_by: alert.as_ref().map_or(&[], |a| a.silenced_by.as_slice()),
    };
    let believed = Belief::of(facts.as_ref(), c, &asked, now_ms());
    let belief = believed.as_ref().ok();
    let alert_facts = belief.map(Belief::alert_facts).unwrap_or_default();
    let (project, service) = (alert_facts.compose_project.clone(), alert_facts.compose_service.clone());
    let own_policy: Option<Policy> = belief.map(|b| b.observed.policy.clone()).filter(|p| !p.is_default());
    let held: Option<String> = belief.and_then(|b| b.held.clone());
    let image = belief.and_then(|b| b.observed.image.clone()).or(image);

    let subject = Subject { image: image.clone(), ..Subject::of(c) }.with_facts(alert_facts);
    let live = silence::live(&mut conn).await?;
    let matching: Vec<&silence::Silence> = live.iter().filter(|s| s.matches(&subject)).collect();

    // The gate's own decision, previewed: the same inputs and script.
    let inputs = ctx.gate.inputs(&ContainerFacts {
        policy: own_policy.as_ref(),
        held: held.as_deref(),
        silence: matching.first().copied().or(belief.and_then(|b| b.window.as_ref())),
    });
    let preview = Gate::new(ctx.gate).preview(&mut conn, c, &inputs).await?;
    let actions = preview.actions_last_hour;
    let cooldown_left_ms = i64::try_from(preview.cooldown_left_ms).unwrap_or(i64::MAX);
    let breaker_open = opened.is_some() || actions >= inputs.max_per_hour;

    let logged: Vec<String> = conn.lrange(keys::events("all"), 0, -1).await?;
    let outcomes: Vec<Envelope> = logged
        .iter()
        .filter_map(|j| Envelope::parse(j.as_bytes()).ok())
        .filter(|e| e.kind != EventKind::SystemAlert && about(e, c))
        .take(5)
        .collect();
    let audit = audit::newest(&mut conn, c, 5).await?;
    let asked_again = deferred::due_of(&mut conn, c).await?;

    let verdict = if !reported {
        "would refuse: no collector reports this container (out of scope, gone, or its host is down)".to_owned()
    } else if let Err(refusal) = &believed {
        format!("would refuse: {refusal}")
    } else {
        match &preview.decision {
            GateDecision::Refused { reason }
            | GateDecision::BreakerOpened { reason }
            | GateDecision::Brake { reason } => format!("would refuse: {reason}"),
            GateDecision::Allowed { .. } | GateDecision::Duplicate => {
                "would allow an action now (unless the fleet brake holds for its image)".to_owned()
            }
            GateDecision::Escalated { step, .. } => {
                format!("would allow a restart as {} (unless the fleet brake holds for its image)", step.text)
            }
            GateDecision::Wait { reason } => format!("would wait: {reason}"),
        }
    };

    if ctx.json {
        show::json(&json!({
            "container": c.key(),
            "reported_by_collector": reported,
            "stats": stats,
            "image": image, "compose_project": project, "compose_service": service,
            "policy": {"cooldown_seconds": inputs.cooldown_seconds, "max_actions_per_hour": inputs.max_per_hour,
                "escalation": inputs.ladder.to_string()},
            "container_policy": own_policy,
            "held": held,
            "circuit_breaker_reason": opened,
            "remediation_record": record.and_then(|r| serde_json::from_str::<Value>(&r).ok()),
            "cooldown_remaining_seconds": cooldown_left_ms / 1000,
            "actions_last_hour": actions,
            "circuit_breaker_open": breaker_open,
            "restart_asked_again_at": asked_again.map(show::time),
            "silences": matching,
            "verdict": verdict,
            "audit": audit.iter().map(audit_json).collect::<Vec<_>>(),
            "alerts": alerts.iter().map(|e| &e.data).collect::<Vec<_>>(),
            "outcomes": outcomes.iter().map(|e| json!({"type": e.kind, "timestamp": e.timestamp, "data": e.data})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("{c}");
    println!("  verdict:     {verdict}");
    let scope = if reported { "reported by its host's collector (in scope)" } else { "not reported by any collector" };
    println!("  scope:       {scope}");
    let s = stats.as_ref();
    let health = s.and_then(|s| s.health.as_deref()).filter(|h| !h.is_empty());
    println!(
        "  state:       {}{}, cpu {}, mem {}, image {}",
        s.and_then(|s| s.status.as_deref()).unwrap_or("unknown"),
        health.map(|h| format!(" ({h})")).unwrap_or_default(),
        show::pct(s.map(|s| s.cpu_pct)),
        show::pct(s.map(|s| s.memory_pct)),
        image.as_deref().unwrap_or("unknown")
    );
    let labels = match (&project, &service) {
        (None, None) => {
            "no compose labels (other labels stay on the host; its collector matches label silences there)".to_owned()
        }
        _ => format!(
            "compose project {}, service {}",
            project.as_deref().unwrap_or("-"),
            service.as_deref().unwrap_or("-")
        ),
    };
    println!("  labels:      {labels}");
    println!(
        "  policy:      cooldown {}s, at most {} actions per hour, escalation {}",
        inputs.cooldown_seconds, inputs.max_per_hour, inputs.ladder
    );
    match &own_policy {
        Some(p) => println!("  its labels:  {}", serde_json::to_string(p).unwrap_or_default()),
        None => println!("  its labels:  none that change the policy"),
    }
    if let Some(held) = &held {
        println!("  held:        {held}");
    }
    let cooldown =
        if cooldown_left_ms > 0 { format!("{} left", show::span(cooldown_left_ms)) } else { "none".to_owned() };
    println!("  cooldown:    {cooldown}");
    if let Some(due) = asked_again {
        println!(
            "  asked again: a restart at {}, when the cooldown ends (refused by it; the dependency it could not reach may be back)",
            show::time(due)
        );
    }
    let breaker = if breaker_open { "OPEN" } else { "closed" };
    println!("  actions:     {actions} in the last hour (max {}), circuit breaker {breaker}", inputs.max_per_hour);
    if let Some(reason) = &opened {
        println!("  breaker:     {reason}");
    }
    if let Some(r) = record {
        println!("  record:      {r}");
    }
    if matching.is_empty() {
        println!("  silences:    none");
    }
    for s in &matching {
        println!("  silence:     {} {} until {} by {}: {}", s.id, s.target_text(), s.until, s.by, s.reason);
    }
    println!("  last alerts:");
    for e in &alerts {
        println!("    {}  {}", e.timestamp, show::summary(e));
    }
    println!("  last outcomes and diagnoses:");
    for e in &outcomes {
        println!("    {}", show::event_line(e));
        if let Some(d) = e.data.get("diagnosis") {
            println!("      diagnosis: {} - {}", show::text(d, "cause"), show::text(d, "summary"));
        }
    }
    println!("  last gate decisions:");
    for e in &audit {
        println!("    {}", audit_line(e));
    }
    Ok(())
}
