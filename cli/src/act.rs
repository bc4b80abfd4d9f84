//! The verbs that change something: `silence`, `reset`, `remediate` (dead
//! letters: `dead_letters`).

use std::time::Duration;

use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    audit::{self, AuditEntry},
    envelope::agent,
    event::{IncidentContext, RemediationNeeded},
    keys,
    maintenance::{self, Recurring, Schedule},
    publisher::ENVELOPE_FIELD,
    silence::{self, Silence},
};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::{
    context::{Context, now_ms},
    error::CliError,
    look, show,
};

/// How often `remediate` looks for its outcome.
const OUTCOME_POLL: Duration = Duration::from_millis(200);

pub async fn silence_add(
    ctx: &Context,
    target: &str,
    duration: Duration,
    reason: &str,
    by: &str,
) -> Result<(), CliError> {
    let (kind, value) = silence::parse_target(target).map_err(CliError::Usage)?;
    if duration.is_zero() {
        return Err(CliError::Usage("--for must be longer than 0s".into()));
    }
    if reason.trim().is_empty() {
        return Err(CliError::Usage("--reason must say why (the gate's refusals quote it)".into()));
    }
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::from_std(duration).map_err(|e| CliError::Usage(format!("--for: {e}")))?;
    let s = Silence {
        id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        kind,
        target: value,
        reason: reason.trim().to_owned(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        by: by.to_owned(),
        window: None,
    };
    silence::add(&mut ctx.conn(), &s).await?;
    if ctx.json {
        show::json(&serde_json::to_value(&s)?);
    } else {
        println!(
            "silence {} on {} until {} ({}): {}",
            s.id,
            s.target_text(),
            s.until,
            show::span(s.until_ms() - now_ms()),
            s.reason
        );
    }
    Ok(())
}

/// `silence add --every`'s flags.
pub struct WindowFlags {
    pub every: String,
    pub at: String,
    /// `--for`: each window's length.
    pub length: String,
    pub tz: Option<String>,
    pub until: Option<String>,
}

/// Stores a recurring silence (a maintenance window).
pub async fn window_add(
    ctx: &Context,
    target: &str,
    flags: &WindowFlags,
    reason: &str,
    by: &str,
) -> Result<(), CliError> {
    let (kind, value) = silence::parse_target(target).map_err(CliError::Usage)?;
    let schedule = Schedule::new(&flags.every, &flags.at, &flags.length, flags.tz.as_deref())
        .map_err(|e| CliError::Usage(format!("--{e}")))?;
    if reason.trim().is_empty() {
        return Err(CliError::Usage("--reason must say why (the gate's refusals quote it)".into()));
    }
    let until = flags.until.as_deref().map(|u| end_date(u, &schedule)).transpose()?;
    let now = chrono::Utc::now();
    let r = Recurring {
        id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        kind,
        target: value,
        reason: reason.trim().to_owned(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        by: by.to_owned(),
        schedule,
        until,
    };
    if r.ended(now.timestamp_millis()) {
        return Err(CliError::Usage("--until: no window opens before it".into()));
    }
    maintenance::add(&mut ctx.conn(), &r).await?;
    if ctx.json {
        show::json(&window_json(&r, now.timestamp_millis()));
    } else {
        println!("maintenance window {} on {}: {}; {}: {}", r.id, r.target_text(), r.schedule, next_text(&r), r.reason);
    }
    Ok(())
}

/// `--until`: RFC 3339, or a date (the end of that day in the schedule's zone).
fn end_date(text: &str, schedule: &Schedule) -> Result<String, CliError> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let bad = || CliError::Usage(format!("--until {text:?}: expected RFC 3339 or a date YYYY-MM-DD"));
    let date: jiff::civil::Date = text.parse().map_err(|_| bad())?;
    let tz = jiff::tz::TimeZone::get(schedule.zone()).map_err(|_| bad())?;
    let end = date.tomorrow().and_then(|d| tz.to_zoned_datetime(d.at(0, 0, 0, 0))).map_err(|_| bad())?;
    let ms = end.timestamp().as_millisecond();
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or_else(bad)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A recurring silence as `silence ls --json` shows it: as stored, with its
/// next window (the open one, while open).
fn window_json(r: &Recurring, now: i64) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let (Some(obj), Some(w)) = (v.as_object_mut(), r.next_window(now)) {
        obj.insert(
            "next_window".into(),
            json!({"start": rfc3339(w.start_ms), "end": rfc3339(w.end_ms), "open": w.is_open_at(now)}),
        );
    }
    v
}

/// `open until ... (... left)` or `next ... to ... (in ...)`.
fn next_text(r: &Recurring) -> String {
    let now = now_ms();
    match r.next_window(now) {
        Some(w) if w.is_open_at(now) => {
            format!("open until {} ({} left)", rfc3339(w.end_ms), show::span(w.end_ms - now))
        }
        Some(w) => {
            format!("next {} to {} (in {})", rfc3339(w.start_ms), rfc3339(w.end_ms), show::span(w.start_ms - now))
        }
        None => "no window left".to_owned(),
    }
}

pub async fn silence_ls(ctx: &Context) -> Result<(), CliError> {
    let mut conn = ctx.conn();
    // Open windows are listed once, as windows, not also as silences.
    let live: Vec<Silence> = silence::live(&mut conn).await?.into_iter().filter(|s| s.window.is_none()).collect();
    let all = maintenance::all(&mut conn).await?;
    let recurring = maintenance::prune(&mut conn, all, now_ms()).await?;
    let mut values: Vec<Value> = live.iter().map(|s| serde_json::to_value(s).unwrap_or_default()).collect();
    if ctx.json {
        values.extend(recurring.iter().map(|r| window_json(r, now_ms())));
        show::json(&Value::Array(values));
    } else {
        look::print_silences(&values);
        println!("MAINTENANCE WINDOWS ({})", recurring.len());
        for r in &recurring {
            println!(
                "  {}  {:<32}  {}; {}  by {}: {}",
                r.id,
                r.target_text(),
                r.schedule,
                next_text(r),
                r.by,
                r.reason
            );
        }
    }
    Ok(())
}

pub async fn silence_rm(ctx: &Context, id: &str) -> Result<(), CliError> {
    if !silence::remove(&mut ctx.conn(), id.trim()).await? {
        return Err(CliError::NotFound(format!(
            "no silence or maintenance window {id:?} (ended, removed, or never set; see `hemostat silence ls`)"
        )));
    }
    if ctx.json {
        show::json(&json!({"removed": id}));
    } else {
        println!("silence {id} removed");
    }
    Ok(())
}

/// Clears the container's cooldown, circuit breaker and escalation ladder
/// (its remediation record, action log, pending decisions and ladder step)
/// and appends the reset to its audit, in one `MULTI`: every key carries
/// the container's hash tag.
pub async fn reset(ctx: &Context, c: &ContainerRef, by: &str) -> Result<(), CliError> {
    ctx.require_known(c).await?;
    let mut conn = ctx.conn();
    let actions: u64 = conn.zcard(keys::action_log(c)).await?;
    let entry = AuditEntry::reset(c, by, actions, now_ms());
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys::safety_state(c) {
        pipe.del(key).ignore();
    }
    audit::push(&mut pipe, c, &entry)?;
    let () = pipe.query_async(&mut conn).await?;
    if ctx.json {
        show::json(&serde_json::to_value(&entry)?);
    } else {
        println!(
            "{c}: cooldown, circuit breaker and escalation ladder cleared ({actions} recorded actions forgotten), reset by operator {by}"
        );
    }
    Ok(())
}

/// One of the actions an operator may ask for by hand ([`Action::MANUAL`]).
pub fn manual_action(text: &str) -> Result<Action, CliError> {
    Action::MANUAL
        .into_iter()
        .find(|a| a.as_str() == text.trim())
        .ok_or_else(|| CliError::Usage(format!("action {text:?}: expected one of {}", manual_actions())))
}

/// `restart, stop, ...`: what `remediate` takes.
pub fn manual_actions() -> String {
    Action::MANUAL.map(Action::as_str).join(", ")
}

/// Publishes a `remediation_needed` for the container, as any analyzer
/// would, so the responder's gate decides and signs the command; then
/// waits for the `remediation_complete` answering it (the same reason,
/// unique per request) and prints it.
pub async fn remediate(
    ctx: &Context,
    c: &ContainerRef,
    action: Action,
    by: &str,
    timeout: Duration,
) -> Result<(), CliError> {
    if !ctx.is_reported(c).await? {
        return Err(CliError::NotFound(format!(
            "unknown container {c}: no collector reports it, so no collector would act (`hemostat status` lists the known ones)"
        )));
    }
    let stats = ctx.stats(c).await?;
    let image = stats.as_ref().and_then(|s| s.image.clone());
    let request = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let reason = format!("manual {action} by operator {by} (request {request})");
    let needed = RemediationNeeded {
        container: c.name.clone(),
        action,
        reason: reason.clone(),
        confidence: 1.0,
        metrics: None,
        host: c.host.clone(),
        container_id: stats.as_ref().and_then(|s| s.id.clone()),
        fallback_reason: None,
        llm_cached: false,
        context: IncidentContext {
            detected_at: Some(chrono::Utc::now().to_rfc3339()),
            analysis_method: Some("manual".into()),
            image,
            ..Default::default()
        },
    };
    let waiting = Outcomes::from_now(ctx).await?;
    let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &needed)?;
    RedisPublisher::new(ctx.conn()).publish(&env).await?;
    if !ctx.json {
        eprintln!("requested {action} of {c} ({reason}); waiting up to {timeout:?} for the outcome");
    }
    waiting
        .wait(ctx, timeout, |d| {
            show::text(d, "host") == c.host && show::text(d, "container") == c.name && show::text(d, "reason") == reason
        })
        .await
        .map_err(|e| match e {
            CliError::Failed(m) if m.is_empty() => CliError::Failed(format!(
                "no outcome for the {action} of {c} within {timeout:?}: is the bridge running, and the responder? \
                 (`hemostat dead-letters list`, `hemostat audit {c}`)"
            )),
            other => other,
        })
}

/// The outcomes (`remediation_complete`) published from a moment on: taken
/// before a request is published, so its answer cannot be missed.
pub struct Outcomes {
    cursor: String,
}

impl Outcomes {
    pub async fn from_now(ctx: &Context) -> Result<Outcomes, CliError> {
        let last: redis::streams::StreamRangeReply =
            ctx.conn().xrevrange_count(EventKind::RemediationComplete.stream(), "+", "-", 1).await?;
        Ok(Outcomes { cursor: last.ids.first().map_or_else(|| "0-0".to_owned(), |e| e.id.clone()) })
    }

    /// Waits for the first outcome whose data `answers`, and prints it;
    /// `Failed("")` when none came within `timeout` (the caller says why).
    pub async fn wait(
        mut self,
        ctx: &Context,
        timeout: Duration,
        answers: impl Fn(&Value) -> bool,
    ) -> Result<(), CliError> {
        let outcomes = EventKind::RemediationComplete.stream();
        let mut conn = ctx.conn();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(100)
                .arg("STREAMS")
                .arg(&outcomes)
                .arg(&self.cursor)
                .query_async(&mut conn)
                .await?;
            for key in &reply.keys {
                for entry in &key.ids {
                    self.cursor = entry.id.clone();
                    let Some(json) = entry.get::<String>(ENVELOPE_FIELD) else { continue };
                    let Ok(done) = Envelope::parse(json.as_bytes()) else { continue };
                    if answers(&done.data) {
                        return outcome(ctx, &done);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::Failed(String::new()));
            }
            tokio::time::sleep(OUTCOME_POLL).await;
        }
    }
}

fn outcome(ctx: &Context, done: &Envelope) -> Result<(), CliError> {
    let status = done.data.pointer("/result/status").and_then(Value::as_str).unwrap_or("unknown").to_owned();
    if ctx.json {
        show::json(&serde_json::to_value(done)?);
    } else {
        println!("{}", show::event_line(done));
    }
    match status.as_str() {
        "success" | "dry_run" => Ok(()),
        _ => Err(CliError::Failed(format!("{}: {}", status, show::summary(done)))),
    }
}
