//! The safety gate's decision, made atomically inside Redis.
//!
//! A decision spans a container (cooldown, circuit breaker) and its image
//! across hosts (fleet brake). On a Redis Cluster those are two slots (the
//! key schema tags a container's keys with `{host/name}` and an image's with
//! `{image}`, so state spreads over the masters), and one script cannot
//! touch both. So the gate decides in steps, each one atomic script:
//! 1. `gate_container.lua`, in the container's slot: an operator's silence
//!    or the container's policy (found by the handler, refused and audited
//!    here), cooldown and breaker (the container's own, when it has them);
//!    an allowed action is taken at once (a concurrent request for the same
//!    container sees the cooldown) and, when the fleet brake must still
//!    decide, marked pending;
//! 2. `gate_fleet.lua`, in the image's slot: admits the host or trips the
//!    brake, exactly, however many responders race;
//! 3. `gate_settle.lua`, in the container's slot: confirms the action, or
//!    undoes it when the brake said no, and audits the outcome.
//!
//! A responder that dies between steps leaves the action pending; the
//! redelivered request finds it (`pending`) and finishes steps 2 and 3.

use redis::Script;
use serde_json::json;

use hemostat_protocol::{ContainerRef, ProtocolError, keys};

/// Audit entries kept per container.
const AUDIT_MAX: usize = 1000;

static CONTAINER_LUA: &str = include_str!("gate_container.lua");
static FLEET_LUA: &str = include_str!("gate_fleet.lua");
static SETTLE_LUA: &str = include_str!("gate_settle.lua");

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
    /// A refusal decided before the gate, refused and audited with this
    /// reason: an operator's silence that holds for the container
    /// (`silenced: <reason> (until ...)`), or its policy (`policy: notify`).
    pub held: Option<&'a str>,
    /// The container's own cooldown (`hemostat.cooldown`), else the gate's.
    pub cooldown_seconds: Option<u64>,
    /// The container's own hourly cap (`hemostat.max_actions_per_hour`),
    /// else the gate's.
    pub max_per_hour: Option<u64>,
}

/// The fleet brake: at most `hosts` hosts per image remediated within
/// `window_seconds`; `hosts == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct FleetBrake {
    pub hosts: u64,
    pub window_seconds: u64,
}

pub struct Gate {
    container: Script,
    fleet: Script,
    settle: Script,
    cooldown_seconds: u64,
    max_per_hour: u64,
    brake: FleetBrake,
    breaker_seconds: u64,
}

/// How long an opened circuit breaker stays open by default.
pub const BREAKER_SECONDS: u64 = 3600;

impl Gate {
    pub fn new(cooldown_seconds: u64, max_per_hour: u64) -> Self {
        Self::with_brake(cooldown_seconds, max_per_hour, FleetBrake { hosts: 0, window_seconds: 0 })
    }

    pub fn with_brake(cooldown_seconds: u64, max_per_hour: u64, brake: FleetBrake) -> Self {
        Gate {
            container: Script::new(CONTAINER_LUA),
            fleet: Script::new(FLEET_LUA),
            settle: Script::new(SETTLE_LUA),
            cooldown_seconds,
            max_per_hour,
            brake,
            breaker_seconds: BREAKER_SECONDS,
        }
    }

    /// An opened circuit breaker stays open `seconds` (unless reset).
    pub fn with_breaker_seconds(mut self, seconds: u64) -> Self {
        self.breaker_seconds = seconds.max(1);
        self
    }

    pub async fn check<C>(&self, conn: &mut C, req: &GateRequest<'_>) -> Result<GateDecision, ProtocolError>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let audit = json!({
            "command_id": req.command_id,
            "host": req.container.host,
            "container": req.container.name,
            "action": req.action,
            "request_reason": req.reason,
            "confidence": req.confidence,
            "dry_run": req.dry_run,
            "image": req.image,
        })
        .to_string();
        let image = req.image.filter(|i| !i.is_empty());
        let brake_decides = image.is_some() && self.brake.hosts > 0;
        let c = req.container;
        // In the order both scripts of the container's slot take them.
        let container_keys =
            [keys::remediation(c), keys::action_log(c), keys::audit(c), keys::gate_pending(c), keys::breaker(c)];
        let (verdict, reason, count): (String, String, u64) = with_keys(&self.container, &container_keys)
            .arg(req.cooldown_seconds.unwrap_or(self.cooldown_seconds))
            .arg(req.max_per_hour.unwrap_or(self.max_per_hour))
            .arg(req.command_id)
            .arg(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string())
            .arg(keys::REMEDIATION_TTL.as_secs())
            .arg(&audit)
            .arg(AUDIT_MAX)
            .arg(if brake_decides { "1" } else { "0" })
            .arg(req.held.unwrap_or_default())
            .arg(self.breaker_seconds)
            .invoke_async(conn)
            .await?;
        match verdict.as_str() {
            "allowed" => return Ok(GateDecision::Allowed { count }),
            "duplicate" => return Ok(GateDecision::Duplicate),
            "refused" => return Ok(GateDecision::Refused { reason }),
            "opened" => return Ok(GateDecision::BreakerOpened { reason }),
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
        let count: u64 = with_keys(&self.settle, &container_keys)
            .arg(req.command_id)
            .arg(settled)
            .arg(&reason)
            .arg(keys::REMEDIATION_TTL.as_secs())
            .arg(&audit)
            .arg(AUDIT_MAX)
            .invoke_async(conn)
            .await?;
        Ok(match (settled, verdict.as_str()) {
            ("brake", _) => GateDecision::Brake { reason },
            (_, "pending") => GateDecision::Duplicate,
            _ => GateDecision::Allowed { count },
        })
    }
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
