//! The safety gate's decision, made atomically inside Redis.

use redis::Script;
use serde_json::json;

use hemostat_protocol::{ContainerRef, ProtocolError, keys};

/// Audit entries kept per container.
const AUDIT_MAX: usize = 1000;

static GATE_LUA: &str = include_str!("gate.lua");

/// What the gate decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go ahead; `count` actions in the last hour, this one included.
    Allowed {
        count: u64,
    },
    Refused {
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
}

/// The fleet brake: at most `hosts` hosts per image remediated within
/// `window_seconds`; `hosts == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct FleetBrake {
    pub hosts: u64,
    pub window_seconds: u64,
}

pub struct Gate {
    script: Script,
    cooldown_seconds: u64,
    max_per_hour: u64,
    brake: FleetBrake,
}

impl Gate {
    pub fn new(cooldown_seconds: u64, max_per_hour: u64) -> Self {
        Self::with_brake(cooldown_seconds, max_per_hour, FleetBrake { hosts: 0, window_seconds: 0 })
    }

    pub fn with_brake(cooldown_seconds: u64, max_per_hour: u64, brake: FleetBrake) -> Self {
        Gate { script: Script::new(GATE_LUA), cooldown_seconds, max_per_hour, brake }
    }

    pub async fn check<C>(&self, conn: &mut C, req: &GateRequest<'_>) -> Result<Verdict, ProtocolError>
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
        });
        let image = req.image.unwrap_or("");
        let brake_hosts = if image.is_empty() { 0 } else { self.brake.hosts };
        let (verdict, reason, count): (String, String, u64) = self
            .script
            .key(keys::remediation(req.container))
            .key(keys::action_log(req.container))
            .key(keys::audit(req.container))
            .key(keys::fleet(image))
            .key(keys::fleet_brake(image))
            .arg(self.cooldown_seconds)
            .arg(self.max_per_hour)
            .arg(req.command_id)
            .arg(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string())
            .arg(keys::REMEDIATION_TTL.as_secs())
            .arg(audit.to_string())
            .arg(AUDIT_MAX)
            .arg(&req.container.host)
            .arg(brake_hosts)
            .arg(self.brake.window_seconds)
            .arg(image)
            .invoke_async(conn)
            .await?;
        Ok(match verdict.as_str() {
            "allowed" => Verdict::Allowed { count },
            "duplicate" => Verdict::Duplicate,
            "brake" => Verdict::Brake { reason },
            _ => Verdict::Refused { reason },
        })
    }
}
