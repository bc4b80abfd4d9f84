//! Approvals: actions that wait for a person's yes.
//!
//! A container's label `hemostat.approve` ([`crate::policy::LABEL_APPROVE`])
//! or the responder's setting names the actions that need one ([`Rule`]).
//! Once the gate would allow such an action, the responder parks it: an
//! approval record with an unguessable id, the request, when it was asked
//! and its deadline; nothing is executed. A person answers (`hemostat
//! approve|deny ID`); an approval is then re-published as a
//! `remediation_needed` naming it, and the responder executes the request
//! the record holds (not the one published) through the gate again, since
//! the world changed while it waited. Unanswered by its deadline, it falls
//! back to a notification.
//!
//! States: `pending` -> `approved` -> `done` (the responder took it, the
//! gate decided), `pending` -> `denied`, `pending` -> `expired`. Each move
//! happens once ([`answer`]'s script), is audited in the container's trail
//! in the same step, and a second answer gets the first one back.
//!
//! On a Redis Cluster the record, the container's "waiting" marker and its
//! audit share the container's slot, so each move and its audit are one
//! script. Two keys outside it find a record by its id alone: the id's
//! container ([`keys::approval_where`]) and the deadlines of pending ones
//! ([`keys::APPROVALS`]), written after the record (idempotent, and
//! repaired by a redelivered request).

use std::{collections::HashMap, fmt, time::Duration};

use redis::{AsyncCommands, Script, aio::ConnectionLike};
use serde::{Deserialize, Serialize};

use crate::{
    Action, ContainerRef, ProtocolError,
    audit::{AuditRequest, Verdict},
    event::{IncidentContext, RemediationComplete, RemediationNeeded},
    keys,
};

pub mod slack;

static PARK_LUA: &str = include_str!("park.lua");
static ANSWER_LUA: &str = include_str!("answer.lua");

/// What `hemostat.approve` and the responder's setting say: the actions
/// that need a person's yes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    all: bool,
    actions: Vec<Action>,
}

impl Rule {
    /// `restart,stop`, `all`, or empty (or `none`): no action needs one.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut rule = Rule::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "all" => rule.all = true,
                "none" => {}
                name => {
                    let action = ACTIONS.iter().find(|a| a.as_str() == name).ok_or_else(|| {
                        format!(
                            "{word:?}: expected all, none, or actions among {}",
                            ACTIONS.map(Action::as_str).join(", ")
                        )
                    })?;
                    if !rule.actions.contains(action) {
                        rule.actions.push(*action);
                    }
                }
            }
        }
        Ok(rule)
    }

    /// Every action needs a yes.
    pub fn all() -> Rule {
        Rule { all: true, actions: Vec::new() }
    }

    pub fn requires(&self, action: Action) -> bool {
        action != Action::None && (self.all || self.actions.contains(&action))
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.actions.is_empty()
    }

    /// Needs a yes wherever either rule does.
    pub fn union(&self, other: &Rule) -> Rule {
        let mut actions = self.actions.clone();
        actions.extend(other.actions.iter().filter(|a| !self.actions.contains(a)));
        Rule { all: self.all || other.all, actions }
    }
}

/// The actions a rule may name (every one that does something).
const ACTIONS: [Action; 7] =
    [Action::Restart, Action::Recreate, Action::Stop, Action::Start, Action::ScaleUp, Action::Cleanup, Action::Exec];

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all {
            return f.write_str("all");
        }
        if self.actions.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(","))
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    /// Approved, and the responder took it: the gate decided, and the
    /// command went out or the refusal was reported.
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<State> {
        [State::Pending, State::Approved, State::Denied, State::Expired, State::Done]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approval, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: String,
    pub container: ContainerRef,
    pub action: Action,
    pub state: State,
    /// The request as the gate judged it (its host and container id the
    /// collector's): what an approval executes.
    pub request: RemediationNeeded,
    pub requested_at_ms: i64,
    pub deadline_ms: i64,
    /// Who answered (`cli:alice`, `slack:U123`, `dashboard`, `responder`).
    pub by: Option<String>,
    pub answered_at_ms: Option<i64>,
    /// A denial's reason.
    pub note: Option<String>,
}

impl Approval {
    /// As `hemostat approvals --json` and the dashboard show it.
    pub fn to_json(&self) -> serde_json::Value {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        serde_json::json!({
            "id": self.id,
            "host": self.container.host,
            "container": self.container.name,
            "action": self.action,
            "state": self.state,
            "reason": self.request.reason,
            "confidence": self.request.confidence,
            "requested_at": time(self.requested_at_ms),
            "deadline": time(self.deadline_ms),
            "by": self.by,
            "answered_at": self.answered_at_ms.map(time),
            "note": self.note,
        })
    }

    /// The report of an approval that ends without executing (denied,
    /// expired): a rejected `remediation_complete`, so the alert function
    /// notifies as for any refusal.
    pub fn report(&self, reason: String) -> RemediationComplete {
        let mut report = RemediationComplete::refused(
            &self.request,
            &self.container.host,
            reason,
            Some(format!("approval {}", self.id)),
        );
        report.context.approval = Some(self.id.clone());
        report
    }

    /// The request that asks the responder to execute it once approved:
    /// the parked request naming the approval (the responder trusts the
    /// record, not this copy).
    pub fn execution_request(&self) -> RemediationNeeded {
        RemediationNeeded {
            context: IncidentContext { approval: Some(self.id.clone()), ..self.request.context.clone() },
            ..self.request.clone()
        }
    }

    fn from_hash(mut h: HashMap<String, String>) -> Result<Approval, ProtocolError> {
        let bad = |detail: String| ProtocolError::Reply { what: "approval record", detail };
        let mut take = |field: &str| h.remove(field).ok_or_else(|| bad(format!("no {field}")));
        let id = take("id")?;
        let container = ContainerRef::new(take("host")?, take("container")?);
        let state_text = take("state")?;
        let state = State::parse(&state_text).ok_or_else(|| bad(format!("state {state_text:?}")))?;
        let request: RemediationNeeded = serde_json::from_str(&take("request")?)?;
        let number = |text: String| text.parse::<i64>().map_err(|_| bad(format!("number {text:?}")));
        let requested_at_ms = number(take("requested_at_ms")?)?;
        let deadline_ms = number(take("deadline_ms")?)?;
        let by = h.remove("by").filter(|b| !b.is_empty());
        let answered_at_ms = h.remove("answered_at_ms").and_then(|t| t.parse().ok());
        let note = h.remove("note").filter(|n| !n.is_empty());
        Ok(Approval {
            id,
            container,
            action: request.action,
            state,
            request,
            requested_at_ms,
            deadline_ms,
            by,
            answered_at_ms,
            note,
        })
    }
}

/// A new approval id: 128 random bits, hex (unguessable, so knowing one
/// proves it was read from a notification or from Redis).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `id` has the shape of one (checked before it reaches a key).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// How long a record stays readable after its deadline: a late or second
/// answer is told what became of it.
pub const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// What parking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parked {
    /// A new approval: notify the people who answer.
    New { id: String, deadline_ms: i64 },
    /// The container already waits on this one: nothing new to ask.
    Waiting { id: String, deadline_ms: i64 },
}

/// Parks `request` (already judged by the gate's preview) for `timeout`.
pub async fn park<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    c: &ContainerRef,
    request: &RemediationNeeded,
    timeout: Duration,
) -> Result<Parked, ProtocolError> {
    let id = new_id();
    let audit = serde_json::to_string(&AuditRequest {
        host: c.host.clone(),
        container: c.name.clone(),
        action: request.action.as_str().to_owned(),
        request_reason: Some(request.reason.clone()),
        confidence: Some(request.confidence),
        image: request.context.image.clone(),
        ..AuditRequest::default()
    })?;
    let (verdict, id, deadline_ms): (String, String, i64) = Script::new(PARK_LUA)
        .key(keys::approval(c, &id))
        .key(keys::approval_waiting(c))
        .key(keys::audit(c))
        .arg(&id)
        .arg(serde_json::to_string(request)?)
        .arg(timeout.as_millis() as u64)
        .arg(&audit)
        .arg(keys::AUDIT_MAX)
        .arg(keys::AUDIT_TTL.as_secs())
        .arg(KEEP.as_millis() as u64)
        .arg(&c.host)
        .arg(&c.name)
        .arg(request.action.as_str())
        .invoke_async(conn)
        .await?;
    // Both again for a request that finds its own approval waiting: a
    // redelivery after a failure here repairs them.
    index(conn, c, &id, deadline_ms).await?;
    Ok(match verdict.as_str() {
        "parked" => Parked::New { id, deadline_ms },
        _ => Parked::Waiting { id, deadline_ms },
    })
}

async fn index<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    c: &ContainerRef,
    id: &str,
    deadline_ms: i64,
) -> Result<(), ProtocolError> {
    let keep = (KEEP.as_millis() as i64 + (deadline_ms - chrono::Utc::now().timestamp_millis())).max(1000);
    let () = redis::cmd("SET").arg(keys::approval_where(id)).arg(c.key()).arg("PX").arg(keep).query_async(conn).await?;
    let () = conn.zadd(keys::APPROVALS, id, deadline_ms).await?;
    Ok(())
}

/// The approval with this id, whatever its state; `None` for an id never
/// issued, or one forgotten [`KEEP`] after its deadline.
pub async fn get<C: ConnectionLike + Send + Sync>(conn: &mut C, id: &str) -> Result<Option<Approval>, ProtocolError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let Some(c) = locate(conn, id).await? else { return Ok(None) };
    let h: HashMap<String, String> = conn.hgetall(keys::approval(&c, id)).await?;
    if h.is_empty() {
        return Ok(None);
    }
    Approval::from_hash(h).map(Some)
}

async fn locate<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    id: &str,
) -> Result<Option<ContainerRef>, ProtocolError> {
    let at: Option<String> = conn.get(keys::approval_where(id)).await?;
    Ok(at.as_deref().and_then(ContainerRef::parse))
}

/// Every approval still waiting for an answer, soonest deadline first
/// (those past their deadline included, until the responder expires them).
pub async fn pending<C: ConnectionLike + Send + Sync>(conn: &mut C) -> Result<Vec<Approval>, ProtocolError> {
    let ids: Vec<String> = conn.zrange(keys::APPROVALS, 0, -1).await?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(a) = get(conn, &id).await?
            && a.state == State::Pending
        {
            out.push(a);
        }
    }
    Ok(out)
}

/// The ids whose deadline passed.
pub async fn due<C: ConnectionLike + Send + Sync>(conn: &mut C, now_ms: i64) -> Result<Vec<String>, ProtocolError> {
    Ok(conn.zrangebyscore(keys::APPROVALS, "-inf", now_ms).await?)
}

/// A person's answer, or the deadline's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Approve {
        by: String,
    },
    Deny {
        by: String,
        reason: Option<String>,
    },
    /// The deadline passed unanswered (the responder's sweep).
    Expire,
    /// The responder took an approved one (the gate decides next).
    Take,
}

impl Answer {
    /// (from, to, deadline rule, audit verdict, audit reason, who, note).
    fn step(&self) -> (State, State, &'static str, Option<Verdict>, String, String, String) {
        match self {
            Answer::Approve { by } => (
                State::Pending,
                State::Approved,
                "before",
                Some(Verdict::Approved),
                format!("approved by {by}"),
                by.clone(),
                String::new(),
            ),
            Answer::Deny { by, reason } => {
                let note = reason.clone().unwrap_or_default();
                let text = if note.is_empty() { format!("denied by {by}") } else { format!("denied by {by}: {note}") };
                (State::Pending, State::Denied, "before", Some(Verdict::Denied), text, by.clone(), note)
            }
            Answer::Expire => (
                State::Pending,
                State::Expired,
                "after",
                Some(Verdict::ApprovalExpired),
                TIMED_OUT.to_owned(),
                "responder".to_owned(),
                String::new(),
            ),
            Answer::Take => (State::Approved, State::Done, "any", None, String::new(), String::new(), String::new()),
        }
    }
}

/// What an expired approval is reported as.
pub const TIMED_OUT: &str = "approval timed out: notified only";

/// Why an answer changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No approval has this id (never issued, mistyped, or forgotten).
    Unknown,
    /// Answered already: its state, by whom, when.
    Answered { state: State, by: Option<String>, at_ms: Option<i64> },
    /// Its deadline passed: it fell back to a notification.
    Expired,
    /// Its deadline has not passed (an expiry too soon).
    NotDue,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unknown => f.write_str("no such approval (never issued, mistyped, or forgotten)"),
            Refusal::Answered { state, by, at_ms } => {
                match state {
                    State::Done => f.write_str("already approved and executed")?,
                    other => write!(f, "already {other}")?,
                }
                if let Some(by) = by {
                    write!(f, " by {by}")?;
                }
                if let Some(at) = at_ms.and_then(chrono::DateTime::from_timestamp_millis) {
                    write!(f, " at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))?;
                }
                Ok(())
            }
            Refusal::Expired => f.write_str("its deadline passed: it fell back to a notification"),
            Refusal::NotDue => f.write_str("its deadline has not passed"),
        }
    }
}

/// Moves approval `id` as `answer` says, once; `Ok(Err(refusal))` when it
/// cannot (nothing changed). On success, the approval as it now stands.
pub async fn answer<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    id: &str,
    answer: &Answer,
) -> Result<Result<Approval, Refusal>, ProtocolError> {
    if !valid_id(id) {
        return Ok(Err(Refusal::Unknown));
    }
    let Some(c) = locate(conn, id).await? else { return Ok(Err(Refusal::Unknown)) };
    let (from, to, rule, verdict, reason, by, note) = answer.step();
    let reply: Vec<String> = Script::new(ANSWER_LUA)
        .key(keys::approval(&c, id))
        .key(keys::approval_waiting(&c))
        .key(keys::audit(&c))
        .arg(from.as_str())
        .arg(to.as_str())
        .arg(&by)
        .arg(&note)
        .arg(rule)
        .arg(verdict.map_or("", Verdict::as_str))
        .arg(&reason)
        .arg(keys::AUDIT_MAX)
        .arg(keys::AUDIT_TTL.as_secs())
        .invoke_async(conn)
        .await?;
    // Whether it is still pending (then it stays among the deadlines, for
    // the responder's sweep to expire and report).
    let mut still_pending = false;
    let refusal = match reply.first().map(String::as_str) {
        Some("ok") => None,
        Some("missing") => Some(Refusal::Unknown),
        Some("expired") => {
            still_pending = true;
            Some(Refusal::Expired)
        }
        Some("early") => {
            still_pending = true;
            Some(Refusal::NotDue)
        }
        Some("state") => {
            let state = reply.get(1).and_then(|s| State::parse(s)).unwrap_or(State::Done);
            if state == State::Expired {
                Some(Refusal::Expired)
            } else {
                Some(Refusal::Answered {
                    state,
                    by: reply.get(2).filter(|b| !b.is_empty()).cloned(),
                    at_ms: reply.get(3).and_then(|t| t.parse().ok()),
                })
            }
        }
        _ => return Err(ProtocolError::Reply { what: "approval answer", detail: format!("{reply:?}") }),
    };
    // No longer pending (or gone): out of the deadlines, whoever moved it.
    if !still_pending && from == State::Pending {
        let () = conn.zrem(keys::APPROVALS, id).await?;
    }
    if let Some(refusal) = refusal {
        return Ok(Err(refusal));
    }
    let h: HashMap<String, String> = conn.hgetall(keys::approval(&c, id)).await?;
    Approval::from_hash(h).map(Ok)
}

/// A person's yes, whoever carries it (`hemostat approve`, a Slack
/// button): moves the approval once, audited, then hands the approved
/// request back to the responder (a `remediation_needed` naming it; the
/// responder, the one place that signs and sends commands, runs the
/// record's request through the gate again). `Ok(Err(refusal))`: nothing
/// changed, nothing published.
pub async fn approve<C: ConnectionLike + Send + Sync, P: crate::Publisher>(
    conn: &mut C,
    publisher: &P,
    id: &str,
    by: &str,
) -> Result<Result<Approval, Refusal>, ProtocolError> {
    let a = match answer(conn, id, &Answer::Approve { by: by.to_owned() }).await? {
        Ok(a) => a,
        // Approved already but not yet taken by the responder: the request
        // handed back then may be lost (a failure between the move and the
        // publish). Handing it back again is safe: the responder derives
        // the command from the approval's id and takes an approval once.
        Err(Refusal::Answered { state: State::Approved, .. }) => match get(conn, id).await? {
            Some(a) if a.state == State::Approved => a,
            _ => return Ok(Err(Refusal::Unknown)),
        },
        Err(refusal) => return Ok(Err(refusal)),
    };
    let env = crate::Envelope::new(
        crate::envelope::agent::ANALYZER,
        crate::EventKind::RemediationNeeded,
        &a.execution_request(),
    )?;
    publisher.publish(&env).await?;
    Ok(Ok(a))
}

/// A person's no: moves the approval once, audited, and reports the action
/// as refused (`approval denied by <by>[: <reason>]`) through the alert
/// function. The report's reason is returned with the approval.
pub async fn deny<C: ConnectionLike + Send + Sync, P: crate::Publisher>(
    conn: &mut C,
    publisher: &P,
    id: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<Result<(Approval, String), Refusal>, ProtocolError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
    let a = match answer(conn, id, &Answer::Deny { by: by.to_owned(), reason: reason.clone() }).await? {
        Ok(a) => a,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let text = match &reason {
        Some(r) => format!("approval denied by {by}: {r}"),
        None => format!("approval denied by {by}"),
    };
    let report = a.report(text.clone());
    let env = crate::Envelope::new(crate::envelope::agent::RESPONDER, crate::EventKind::RemediationComplete, &report)?;
    publisher.publish(&env).await?;
    Ok(Ok((a, text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_actions_or_all_and_refuse_anything_else() {
        let r = Rule::parse(" restart, stop ,restart").unwrap();
        assert!(r.requires(Action::Restart) && r.requires(Action::Stop) && !r.requires(Action::Cleanup));
        assert_eq!(r.to_string(), "restart,stop");
        let all = Rule::parse("ALL").unwrap();
        assert!(all.requires(Action::Cleanup) && !all.requires(Action::None));
        assert!(Rule::parse("").unwrap().is_empty() && Rule::parse("none").unwrap().is_empty());
        let err = Rule::parse("restart,reboot").unwrap_err();
        assert!(err.contains("\"reboot\"") && err.contains("scale_up"), "{err}");
        let u = Rule::parse("stop").unwrap().union(&r);
        assert_eq!(u.to_string(), "stop,restart");
        assert_eq!(Rule::parse("stop").unwrap().union(&all).to_string(), "all");
    }

    #[test]
    fn ids_are_long_random_hex_and_others_are_not_looked_up() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(valid_id(&a), "{a}");
        for bad in ["", "abc", "../x", &a.to_uppercase(), &format!("{a}0"), "g".repeat(32).as_str()] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_second_answer_says_what_the_first_was() {
        let r =
            Refusal::Answered { state: State::Approved, by: Some("cli:alice".into()), at_ms: Some(1_765_000_000_000) };
        assert_eq!(r.to_string(), "already approved by cli:alice at 2025-12-06T05:46:40Z");
        assert!(Refusal::Expired.to_string().contains("notification"));
    }
}
