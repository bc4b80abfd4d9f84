//! The responder's safety gate: its decision, made atomically inside Redis,
//! and the same decision previewed without a write (`hemostat explain`).
//!
//! A decision spans a container (cooldown, circuit breaker) and its image
//! across hosts (fleet brake). On a Redis Cluster those are two slots (the
//! key schema tags a container's keys with `{host/name}` and an image's with
//! `{image}`, so state spreads over the masters), and one script cannot
//! touch both. So the gate decides in steps, each one atomic script:
//! 1. `container.lua`, in the container's slot: a refusal decided before
//!    the gate (an operator's silence, the container's policy, its `held`:
//!    [`GateInputs::refusal`], refused and audited here), cooldown and
//!    breaker (the container's own, when it has them); an allowed action is
//!    taken at once (a concurrent request for the same container sees the
//!    cooldown) and, when the fleet brake must still decide, marked pending;
//! 2. `fleet.lua`, in the image's slot: admits the host or trips the
//!    brake, exactly, however many responders race;
//! 3. `settle.lua`, in the container's slot: confirms the action, or
//!    undoes it when the brake said no, and audits the outcome.
//!
//! A responder that dies between steps leaves the action pending; the
//! redelivered request finds it (`pending`) and finishes steps 2 and 3.
//!
//! [`Gate::preview`] runs step 1's script in its read-only mode: the same
//! checks in the same order, nothing written (no action taken, no breaker
//! opened, no audit).
//!
//! Module map:
//! - `settings`: the fleet's limits and their environment variables, and
//!   the fleet brake's.
//! - [`ladder`]: the escalation ladder's decision (which step a request
//!   for a failing container takes), which `container.lua` applies.
//! - `inputs`: what the gate believes about a container (its collector's
//!   facts, made stricter by the request) turned into the script's inputs,
//!   for the decision and the preview alike.

mod inputs;
pub mod ladder;
mod settings;

use redis::Script;

pub use inputs::{Asked, Belief, ContainerFacts, GateInputs};
pub use ladder::{Ladder, Plan, Rung, Step};
pub use settings::{
    BREAKER, COOLDOWN, ESCALATION, ESCALATION_QUIET, FleetBrake, GateSettings, MAX_RETRIES_PER_HOUR, fleet_ladder,
};

use crate::{Action, ContainerRef, ProtocolError, audit::AuditRequest, keys};

static CONTAINER_LUA: &str = include_str!("container.lua");
static FLEET_LUA: &str = include_str!("fleet.lua");
static SETTLE_LUA: &str = include_str!("settle.lua");

/// What the gate decided.
#[derive(Debug, Clone, PartialEq)]
pub enum GateDecision {
    /// Go ahead; `count` actions in the last hour, this one included.
    Allowed {
        count: u64,
    },
    Refused {
        reason: String,
    },
    /// Refused because the container's fixes keep not holding: this
    /// request opened its circuit breaker, which now refuses every action
    /// until it expires or an operator resets it.
    BreakerOpened {
        reason: String,
    },
    /// The fleet brake holds: this image was remediated on too many hosts
    /// recently, a suspected bad release.
    Brake {
        reason: String,
    },
    /// This very request (same command id) was already allowed.
    Duplicate,
    /// Go ahead with the escalation ladder's `step` instead of the action
    /// asked for; `duplicate`: this very request was already allowed (as
    /// [`GateDecision::Duplicate`]).
    Escalated {
        count: u64,
        step: Step,
        duplicate: bool,
    },
    /// The ladder's last step has no reported outcome yet: ask again later
    /// (the responder leaves the request to be redelivered). Not audited.
    Wait {
        reason: String,
    },
}

/// One request to act on a container.
#[derive(Debug, Clone)]
pub struct GateRequest<'a> {
    pub container: &'a ContainerRef,
    pub command_id: &'a str,
    pub action: &'a str,
    pub reason: &'a str,
    pub confidence: f64,
    pub dry_run: bool,
    /// The container's image; `None` leaves the fleet brake out of the decision.
    pub image: Option<&'a str>,
    /// From the container's facts ([`GateSettings::inputs`]).
    pub inputs: &'a GateInputs,
}

/// What the gate would decide for a container now, and the state it read.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// [`GateDecision::Allowed`] (the fleet brake left out), or
    /// [`GateDecision::Escalated`] for the step a restart would take,
    /// [`GateDecision::Wait`], [`GateDecision::Refused`] or
    /// [`GateDecision::BreakerOpened`] (the next request would open it).
    pub decision: GateDecision,
    /// Actions taken on it within the last hour.
    pub actions_last_hour: u64,
    /// What remains of its cooldown, ms.
    pub cooldown_left_ms: u64,
}

pub struct Gate {
    container: Script,
    fleet: Script,
    settle: Script,
    settings: GateSettings,
    brake: FleetBrake,
}

impl Gate {
    /// The gate with these limits and no fleet brake.
    pub fn new(settings: GateSettings) -> Self {
        Gate {
            container: Script::new(CONTAINER_LUA),
            fleet: Script::new(FLEET_LUA),
            settle: Script::new(SETTLE_LUA),
            settings,
            brake: FleetBrake::OFF,
        }
    }

    pub fn with_brake(mut self, brake: FleetBrake) -> Self {
        self.brake = brake;
        self
    }

    pub async fn check<C>(&self, conn: &mut C, req: &GateRequest<'_>) -> Result<GateDecision, ProtocolError>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let requested = match req.action {
            "restart" => Action::Restart,
            "recreate" => Action::Recreate,
            _ => Action::None,
        };
        let ladder = self.ladder(conn, req.container, req.inputs, requested).await?;
        let step = match &ladder.plan {
            Plan::Take(step) => Some(step),
            _ => None,
        };
        // The scripts add the decision (verdict, reason, at_ms).
        let audit = serde_json::to_string(&AuditRequest {
            host: req.container.host.clone(),
            container: req.container.name.clone(),
            action: req.action.to_owned(),
            command_id: Some(req.command_id.to_owned()),
            request_reason: Some(req.reason.to_owned()),
            confidence: Some(req.confidence),
            dry_run: Some(req.dry_run),
            image: req.image.map(str::to_owned),
            forgotten_actions: None,
        })?;
        let image = req.image.filter(|i| !i.is_empty());
        let brake_decides = image.is_some() && self.brake.hosts > 0;
        let c = req.container;
        let container_keys = container_keys(c);
        let (verdict, reason, count, _): (String, String, u64, u64) = self
            .container_step(&container_keys, req.inputs, &ladder, false)
            .arg(req.command_id)
            .arg(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string())
            .arg(keys::REMEDIATION_TTL.as_secs())
            .arg(&audit)
            .arg(keys::AUDIT_MAX)
            .arg(keys::AUDIT_TTL.as_secs())
            .arg(if brake_decides { "1" } else { "0" })
            .invoke_async(conn)
            .await?;
        // A redelivery of the request that took the ladder's last step.
        let own_step = ladder.rung.as_ref().filter(|r| r.command_id == req.command_id).map(|r| Step {
            number: r.step,
            of: req.inputs.ladder.steps().len(),
            action: r.action,
            text: format!("escalation step {}/{}: {}", r.step, req.inputs.ladder.steps().len(), r.action),
        });
        let allowed = |count, duplicate: bool| match (step, &own_step) {
            (Some(step), _) if !duplicate => GateDecision::Escalated { count, step: step.clone(), duplicate },
            (_, Some(own)) if duplicate => GateDecision::Escalated { count, step: own.clone(), duplicate },
            _ if duplicate => GateDecision::Duplicate,
            _ => GateDecision::Allowed { count },
        };
        match verdict.as_str() {
            "allowed" => return Ok(allowed(count, false)),
            "duplicate" => return Ok(allowed(count, true)),
            "refused" => return Ok(GateDecision::Refused { reason }),
            "opened" => return Ok(GateDecision::BreakerOpened { reason }),
            "wait" => return Ok(GateDecision::Wait { reason }),
            "reserved" | "pending" => {}
            other => return Err(ProtocolError::Redis(unexpected(other))),
        }
        let image = image.unwrap_or_default();
        let (fleet, reason): (String, String) = self
            .fleet
            .key(keys::fleet(image))
            .key(keys::fleet_brake(image))
            .arg(&c.host)
            .arg(self.brake.hosts)
            .arg(self.brake.window_seconds)
            .arg(image)
            .invoke_async(conn)
            .await?;
        let settled = if fleet == "admitted" { "allowed" } else { "brake" };
        // An admitted step is audited with its action and name.
        let (audit, audited) = match step {
            Some(step) if settled == "allowed" => {
                let mut entry: serde_json::Value = serde_json::from_str(&audit)?;
                entry["action"] = step.action.as_str().into();
                (entry.to_string(), &step.text)
            }
            _ => (audit, &reason),
        };
        let count: u64 = with_keys(&self.settle, &container_keys)
            .arg(req.command_id)
            .arg(settled)
            .arg(audited)
            .arg(keys::REMEDIATION_TTL.as_secs())
            .arg(&audit)
            .arg(keys::AUDIT_MAX)
            .arg(keys::AUDIT_TTL.as_secs())
            .invoke_async(conn)
            .await?;
        Ok(match (settled, verdict.as_str()) {
            ("brake", _) => GateDecision::Brake { reason },
            (_, "pending") => allowed(count, true),
            _ => allowed(count, false),
        })
    }

    /// The ladder's plan for a request to `requested` the container: its
    /// last step (one read in its slot) and that step's outcome (its
    /// command's marker, in another slot: read before the script, which
    /// checks the step did not move since).
    async fn ladder<C>(
        &self,
        conn: &mut C,
        c: &ContainerRef,
        inputs: &GateInputs,
        requested: Action,
    ) -> Result<LadderInput, ProtocolError>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        if ladder::plan(&inputs.ladder, requested, None, None, 0) == Plan::Off {
            return Ok(LadderInput { plan: Plan::Off, raw: String::new(), rung: None });
        }
        let raw: Option<String> = redis::cmd("GET").arg(keys::ladder(c)).query_async(conn).await?;
        let raw = raw.unwrap_or_default();
        let rung = Rung::parse(&raw);
        let outcome = match &rung {
            Some(r) => {
                let marker: Option<String> =
                    redis::cmd("GET").arg(keys::command_seen(&c.host, &r.command_id)).query_async(conn).await?;
                marker.and_then(|m| m.strip_prefix(keys::COMMAND_DONE).map(str::to_owned))
            }
            None => None,
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let plan = match ladder::plan(&inputs.ladder, requested, rung.as_ref(), outcome.as_deref(), now_ms) {
            Plan::Exhausted { reason, stopped: false } => Plan::Exhausted {
                reason: format!(
                    "circuit breaker open: {reason}, open for {}s or until hemostat reset",
                    self.settings.breaker_seconds.max(1)
                ),
                stopped: false,
            },
            plan => plan,
        };
        Ok(LadderInput { plan, raw, rung })
    }

    /// What [`check`](Gate::check) would decide for the container now, by
    /// the same script in its read-only mode: nothing is written. The
    /// fleet brake is left out (it depends on the request's image and the
    /// other hosts' requests).
    pub async fn preview<C>(
        &self,
        conn: &mut C,
        container: &ContainerRef,
        inputs: &GateInputs,
    ) -> Result<Preview, ProtocolError>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let ladder = self.ladder(conn, container, inputs, Action::Restart).await?;
        let (verdict, reason, count, cooldown_left_ms): (String, String, u64, u64) =
            self.container_step(&container_keys(container), inputs, &ladder, true).invoke_async(conn).await?;
        let decision = match (verdict.as_str(), ladder.plan) {
            ("allowed", Plan::Take(step)) => GateDecision::Escalated { count: count + 1, step, duplicate: false },
            ("allowed", _) => GateDecision::Allowed { count: count + 1 },
            ("refused", _) => GateDecision::Refused { reason },
            ("opened", _) => GateDecision::BreakerOpened { reason },
            ("wait", _) => GateDecision::Wait { reason },
            (other, _) => return Err(ProtocolError::Redis(unexpected(other))),
        };
        Ok(Preview { decision, actions_last_hour: count, cooldown_left_ms })
    }

    /// `container.lua` with its keys and the arguments the decision and the
    /// preview share (the script's ARGV 1 to 11); a decision adds the rest.
    fn container_step(
        &self,
        keys: &[String],
        inputs: &GateInputs,
        ladder: &LadderInput,
        preview: bool,
    ) -> redis::ScriptInvocation<'_> {
        let mut invocation = with_keys(&self.container, keys);
        let (plan, text, number, action) = match &ladder.plan {
            Plan::Off => ("", "", 0, ""),
            Plan::Take(step) => ("take", step.text.as_str(), step.number, step.action.as_str()),
            Plan::Wait(reason) => ("wait", reason.as_str(), 0, ""),
            Plan::Exhausted { reason, stopped: true } => ("stopped", reason.as_str(), 0, ""),
            Plan::Exhausted { reason, stopped: false } => ("exhausted", reason.as_str(), 0, ""),
        };
        invocation
            .arg(inputs.cooldown_seconds)
            .arg(inputs.max_per_hour)
            .arg(inputs.refusal.as_deref().unwrap_or_default())
            .arg(self.settings.breaker_seconds.max(1))
            .arg(if preview { "1" } else { "0" })
            .arg(plan)
            .arg(text)
            .arg(&ladder.raw)
            .arg(number)
            .arg(action)
            .arg(inputs.ladder_seconds.max(1));
        invocation
    }
}

/// The ladder's plan for one request, and the step it was made from.
struct LadderInput {
    plan: Plan,
    /// The step's record as read ("" for none): the script takes the plan
    /// only if it still reads the same.
    raw: String,
    rung: Option<Rung>,
}

/// The container's keys, in the order both scripts of its slot take them.
fn container_keys(c: &ContainerRef) -> [String; 6] {
    [
        keys::remediation(c),
        keys::action_log(c),
        keys::audit(c),
        keys::gate_pending(c),
        keys::breaker(c),
        keys::ladder(c),
    ]
}

fn with_keys<'a>(script: &'a Script, keys: &[String]) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    invocation
}

fn unexpected(verdict: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "unknown gate verdict", verdict.to_owned()))
}
