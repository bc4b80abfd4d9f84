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
//! Slack's Approve and Deny buttons and the dashboard's answer through the
//! responder instead: the dashboard publishes an `approval_answer`
//! ([`ApprovalAnswer`]), which the responder applies only once it vouched
//! for it itself ([`ApprovalAnswer::vouched`]): a Slack press by the
//! signature Slack put on the request, verified with the app's signing
//! secret; a press on the dashboard's page by the dashboard's attestation
//! ([`crate::attestation`]). Whoever may publish one can at most answer an
//! approval that is pending, as anyone who answers.
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

    /// The report of a denied approval, with who denied it and why (as its
    /// record says): `approval denied by <by>[: <reason>]`, and that text.
    pub fn denial(&self) -> (RemediationComplete, String) {
        let by = self.by.as_deref().unwrap_or("?");
        let text = match &self.note {
            Some(r) => format!("approval denied by {by}: {r}"),
            None => format!("approval denied by {by}"),
        };
        (self.report(text.clone()), text)
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
    let a = match answer(conn, id, &Answer::Deny { by: by.to_owned(), reason }).await? {
        Ok(a) => a,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (report, text) = a.denial();
    let env = crate::Envelope::new(crate::envelope::agent::RESPONDER, crate::EventKind::RemediationComplete, &report)?;
    publisher.publish(&env).await?;
    Ok(Ok((a, text)))
}

/// Approve or Deny, in an [`ApprovalAnswer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
}

/// A request from Slack as it was received: what its signature covers
/// ([`slack::verify`]), so that whoever acts on it verifies it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackRequest {
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: String,
    /// `X-Slack-Signature` (`v0=<hex>`).
    pub signature: String,
    /// The raw body, byte for byte (form-encoded, so text).
    pub body: String,
}

/// The data of an `approval_answer`: a person's answer, published by the
/// dashboard (from its page, or from Slack's button) for the responder.
///
/// Whoever may publish one (the dashboard, and the bridge, which writes
/// every stream) is not trusted with it: the responder applies it only
/// once [`ApprovalAnswer::vouched`] says who answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAnswer {
    pub id: String,
    pub answer: Decision,
    /// `dashboard[:<user>]`, or `slack:<user id>` (taken from the signed
    /// request, not from here).
    pub by: String,
    /// A denial's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The Slack request that carried the answer, when Slack did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackRequest>,
}

/// A denial's reason, at most this many characters (it goes into the
/// audit and the notification).
pub const MAX_REASON_CHARS: usize = 500;

/// Who answered on the dashboard's page: `dashboard`, or
/// `dashboard:<user>` for the user name of its HTTP Basic credentials
/// when that is a plain name (any name is accepted with the token, so it
/// says what the person typed, not who they are).
pub fn dashboard_by(user: Option<&str>) -> String {
    match user.map(str::trim).filter(|u| plain_user(u)) {
        Some(user) => format!("dashboard:{user}"),
        None => "dashboard".to_owned(),
    }
}

fn plain_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

impl ApprovalAnswer {
    /// An answer from the dashboard's page.
    pub fn from_dashboard(id: &str, answer: Decision, user: Option<&str>, reason: Option<&str>) -> ApprovalAnswer {
        let reason = match answer {
            Decision::Approve => None,
            Decision::Deny => reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned),
        };
        ApprovalAnswer { id: id.to_owned(), answer, by: dashboard_by(user), reason, slack: None }
    }

    /// An answer from a Slack button, whose request `slack::verify`
    /// accepted and `slack::press` read.
    pub fn from_slack(press: &slack::Press, request: SlackRequest) -> ApprovalAnswer {
        ApprovalAnswer {
            id: press.id.clone(),
            answer: if press.approve { Decision::Approve } else { Decision::Deny },
            by: format!("slack:{}", press.user),
            reason: None,
            slack: Some(request),
        }
    }

    /// The approval and the answer to move it with, once vouched for:
    /// - a Slack request verifies under `slack_secret` (the Slack app's
    ///   signing secret) within [`slack::MAX_AGE_SECONDS`] of `now_secs`,
    ///   and the approval, the answer and who answered are the signed
    ///   body's (the other fields must agree with it);
    /// - otherwise the dashboard attested it (`attested`), and it names
    ///   the dashboard as who answered.
    ///
    /// `Err`: why it is refused (nothing to do with the secret's value).
    pub fn vouched(
        &self,
        slack_secret: Option<&[u8]>,
        attested: bool,
        now_secs: i64,
    ) -> Result<(String, Answer), String> {
        if let Some(request) = &self.slack {
            let secret = slack_secret
                .ok_or("a Slack answer, but the responder has no SLACK_SIGNING_SECRET to verify it with".to_owned())?;
            slack::verify(secret, &request.timestamp, &request.signature, request.body.as_bytes(), now_secs)
                .map_err(|e| format!("Slack request refused: {e}"))?;
            let press = slack::press(request.body.as_bytes()).map_err(|e| format!("Slack request refused: {e}"))?;
            let signed = ApprovalAnswer::from_slack(&press, request.clone());
            if (&signed.id, signed.answer, &signed.by) != (&self.id, self.answer, &self.by) {
                return Err("the answer's id, answer or who differ from the signed Slack request's".into());
            }
            return Ok(signed.move_to());
        }
        if !attested {
            return Err("not attested by the dashboard, nor a signed Slack request: only the dashboard (or Slack, \
                        verified) may answer an approval this way"
                .into());
        }
        let by_dashboard = self.by == "dashboard" || self.by.strip_prefix("dashboard:").is_some_and(plain_user);
        if !by_dashboard {
            return Err(format!("an answer from the dashboard names {:?} as who answered", self.by));
        }
        if !valid_id(&self.id) {
            return Err("not an approval id".into());
        }
        Ok(self.move_to())
    }

    /// The approval and the move this answer asks for (a denial's reason
    /// trimmed and cut to [`MAX_REASON_CHARS`]).
    fn move_to(&self) -> (String, Answer) {
        let by = self.by.clone();
        let answer = match self.answer {
            Decision::Approve => Answer::Approve { by },
            Decision::Deny => Answer::Deny {
                by,
                reason: self
                    .reason
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| r.chars().take(MAX_REASON_CHARS).collect()),
            },
        };
        (self.id.clone(), answer)
    }
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

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &[u8] = b"slack-signing-secret";
    const NOW: i64 = 1_765_000_000;

    fn slack_answer(action: &str, user: &str, at: i64) -> ApprovalAnswer {
        let payload = serde_json::json!({"type": "block_actions", "user": {"id": user},
            "actions": [{"action_id": action, "value": ID}]});
        let body =
            form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let timestamp = at.to_string();
        let signature = slack::sign(SECRET, &timestamp, body.as_bytes());
        let press = slack::press(body.as_bytes()).unwrap();
        ApprovalAnswer::from_slack(&press, SlackRequest { timestamp, signature, body })
    }

    #[test]
    fn a_slack_answer_is_what_its_signed_body_says_and_nothing_else() {
        let a = slack_answer(slack::APPROVE_ACTION, "U2CERLKJA", NOW - 10);
        assert_eq!(
            a.vouched(Some(SECRET), false, NOW),
            Ok((ID.into(), Answer::Approve { by: "slack:U2CERLKJA".into() }))
        );
        let d = slack_answer(slack::DENY_ACTION, "U1", NOW);
        assert_eq!(
            d.vouched(Some(SECRET), true, NOW),
            Ok((ID.into(), Answer::Deny { by: "slack:U1".into(), reason: None }))
        );

        // No secret to verify with, another secret, too old: refused, attested or not.
        assert!(a.vouched(None, true, NOW).unwrap_err().contains("SLACK_SIGNING_SECRET"));
        assert!(a.vouched(Some(b"other"), true, NOW).unwrap_err().contains("does not match"));
        let stale = a.vouched(Some(SECRET), true, NOW + slack::MAX_AGE_SECONDS + 60).unwrap_err();
        assert!(stale.contains("too old"), "{stale}");
        // The unsigned fields cannot say otherwise than the signed body.
        for forged in [
            ApprovalAnswer { by: "slack:UBOSS".into(), ..a.clone() },
            ApprovalAnswer { answer: Decision::Deny, ..a.clone() },
            ApprovalAnswer { id: "f".repeat(32), ..a.clone() },
        ] {
            assert!(forged.vouched(Some(SECRET), true, NOW).unwrap_err().contains("differ"), "{forged:?}");
        }
        // A body changed after signing.
        let mut tampered = a.clone();
        tampered.slack.as_mut().unwrap().body = tampered.slack.as_ref().unwrap().body.replace("U2CERLKJA", "UBOSS");
        assert!(tampered.vouched(Some(SECRET), true, NOW).unwrap_err().contains("does not match"));
        // The secret never appears in a refusal.
        let refusal = a.vouched(Some(b"the-real-secret"), false, NOW).unwrap_err();
        assert!(!refusal.contains("the-real-secret"), "{refusal}");
    }

    #[test]
    fn a_dashboard_answer_counts_only_if_the_dashboard_attested_it() {
        let approve = ApprovalAnswer::from_dashboard(ID, Decision::Approve, Some("alice"), Some("ignored"));
        assert_eq!((approve.by.as_str(), approve.reason.as_deref()), ("dashboard:alice", None));
        assert_eq!(approve.vouched(None, true, NOW), Ok((ID.into(), Answer::Approve { by: "dashboard:alice".into() })));
        let refusal = approve.vouched(Some(SECRET), false, NOW).unwrap_err();
        assert!(refusal.contains("not attested"), "{refusal}");

        let deny = ApprovalAnswer::from_dashboard(ID, Decision::Deny, Some("bad name!"), Some("  not now  "));
        assert_eq!(
            deny.vouched(None, true, NOW),
            Ok((ID.into(), Answer::Deny { by: "dashboard".into(), reason: Some("not now".into()) }))
        );
        // Attested, but naming someone else, or no approval id.
        for forged in [
            ApprovalAnswer { by: "cli:alice".into(), ..approve.clone() },
            ApprovalAnswer { by: "slack:U1".into(), ..approve.clone() },
            ApprovalAnswer { by: "dashboard:a b".into(), ..approve.clone() },
            ApprovalAnswer { id: "../x".into(), ..approve.clone() },
        ] {
            assert!(forged.vouched(None, true, NOW).is_err(), "{forged:?}");
        }
        assert_eq!(dashboard_by(None), "dashboard");
        assert_eq!(dashboard_by(Some("")), "dashboard");
        assert_eq!(dashboard_by(Some(&"a".repeat(65))), "dashboard");
        assert_eq!(dashboard_by(Some("ops@example.com")), "dashboard:ops@example.com");
    }

    #[test]
    fn an_answer_reads_back_as_written() {
        let a = slack_answer(slack::APPROVE_ACTION, "U1", NOW);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!((json["answer"].as_str(), json["by"].as_str()), (Some("approve"), Some("slack:U1")));
        assert_eq!(serde_json::from_value::<ApprovalAnswer>(json).unwrap(), a);
        let d = ApprovalAnswer::from_dashboard(ID, Decision::Deny, None, None);
        let json = serde_json::to_value(&d).unwrap();
        assert!(json.get("slack").is_none() && json.get("reason").is_none(), "{json}");
    }

    #[test]
    fn a_second_answer_says_what_the_first_was() {
        let r =
            Refusal::Answered { state: State::Approved, by: Some("cli:alice".into()), at_ms: Some(1_765_000_000_000) };
        assert_eq!(r.to_string(), "already approved by cli:alice at 2025-12-06T05:46:40Z");
        assert!(Refusal::Expired.to_string().contains("notification"));
    }
}
