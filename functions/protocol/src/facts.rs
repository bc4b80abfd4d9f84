//! What a container's collector says about it: the only account of a
//! container the safety gate believes.
//!
//! Every message on Redis may be forged (the seed protocol invites custom
//! analyzers to publish `remediation_needed`), so the gate takes nothing
//! about its target from a request: not its identity, image, policy or
//! holds. It reads them here, from what the collector of the container's
//! host wrote (with Redis ACLs, each collector may write only its own
//! host's keys), and a request may only ask for less ([`Policy::stricter`]).
//!
//! One hash per container, `hemostat:facts:{host/name}` (in the container's
//! slot, beside the gate's own state), with one field per writer's concern,
//! so that writers never overwrite each other's news:
//! - `container`: its identity, image, policy (from its labels) and compose
//!   project and service, written by the collector's registry when the
//!   container starts or the host resyncs, and again with every alert;
//! - `held`: why HemoStat must not act on it now and until when (an
//!   operator at work, a deploy, a parent it went down with), written with
//!   every alert (and removed by an alert that holds nothing);
//! - `silenced_by`: the label silences the collector matched, with every
//!   alert and, while a label silence holds, every heartbeat (labels never
//!   leave the host; only the silences' ids do).
//!
//! The hash is removed when the container is. Readers are lenient: a field
//! that does not parse is absent.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{
    ContainerRef, ProtocolError, keys,
    policy::{COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, Policy},
};

/// The hash's fields.
pub const CONTAINER_FIELD: &str = "container";
pub const HELD_FIELD: &str = "held";
pub const SILENCED_BY_FIELD: &str = "silenced_by";

/// A container as its collector knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Docker's full id: a request naming another id is about another
    /// container (recreated since) and is refused.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its policy, from its labels (the default when they set none).
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
}

impl Observed {
    /// A container as its labels describe it (policy, compose project and
    /// service); labels that do not parse leave the fleet's settings.
    pub fn from_labels(id: &str, image: Option<&str>, labels: &HashMap<String, String>) -> Observed {
        let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
        Observed {
            id: id.to_owned(),
            image: image.filter(|i| !i.is_empty()).map(str::to_owned),
            policy: Policy::from_labels(labels, None).policy,
            compose_project: label(COMPOSE_PROJECT_LABEL),
            compose_service: label(COMPOSE_SERVICE_LABEL),
        }
    }
}

/// Why HemoStat must not act on a container, until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    /// Epoch ms; after it the hold is over.
    pub until_ms: i64,
}

/// Everything the collector wrote about a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// None while only an alert's news exist (the registry's write is
    /// still on its way).
    pub container: Option<Observed>,
    pub held: Option<Hold>,
    pub silenced_by: Vec<String>,
}

impl Facts {
    /// The hold, if it still holds at `now_ms`.
    pub fn held_at(&self, now_ms: i64) -> Option<&str> {
        self.held.as_ref().filter(|h| h.until_ms > now_ms && !h.reason.is_empty()).map(|h| h.reason.as_str())
    }
}

/// The container's facts, None when its collector wrote none.
pub async fn read<C>(conn: &mut C, c: &ContainerRef) -> Result<Option<Facts>, ProtocolError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(keys::facts(c)).query_async(conn).await?;
    if fields.is_empty() {
        return Ok(None);
    }
    Ok(Some(Facts {
        container: parse(&fields, CONTAINER_FIELD),
        held: parse(&fields, HELD_FIELD),
        silenced_by: parse(&fields, SILENCED_BY_FIELD).unwrap_or_default(),
    }))
}

fn parse<T: serde::de::DeserializeOwned>(fields: &HashMap<String, String>, field: &str) -> Option<T> {
    fields.get(field).and_then(|v| serde_json::from_str(v).ok())
}

/// Adds the container's identity, image and policy to `pipe`.
pub fn observe(pipe: &mut redis::Pipeline, c: &ContainerRef, observed: &Observed) -> Result<(), ProtocolError> {
    pipe.hset(keys::facts(c), CONTAINER_FIELD, serde_json::to_string(observed)?).ignore();
    Ok(())
}

/// Adds what an alert found (its hold, or none; the silences that select
/// the container) to `pipe`.
pub fn alerted(
    pipe: &mut redis::Pipeline,
    c: &ContainerRef,
    held: Option<&Hold>,
    silenced_by: &[String],
) -> Result<(), ProtocolError> {
    let key = keys::facts(c);
    match held {
        Some(h) => pipe.hset(&key, HELD_FIELD, serde_json::to_string(h)?).ignore(),
        None => pipe.hdel(&key, HELD_FIELD).ignore(),
    };
    silenced(pipe, c, silenced_by)
}

/// Adds the label silences that select the container now to `pipe`.
pub fn silenced(pipe: &mut redis::Pipeline, c: &ContainerRef, silenced_by: &[String]) -> Result<(), ProtocolError> {
    pipe.hset(keys::facts(c), SILENCED_BY_FIELD, serde_json::to_string(silenced_by)?).ignore();
    Ok(())
}

/// Adds the removal of the container's facts (it is gone) to `pipe`.
pub fn forget(pipe: &mut redis::Pipeline, c: &ContainerRef) {
    pipe.del(keys::facts(c)).ignore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_ends_at_its_time() {
        let facts = Facts { held: Some(Hold { reason: "operator".into(), until_ms: 1_000 }), ..Facts::default() };
        assert_eq!(facts.held_at(999), Some("operator"));
        assert_eq!(facts.held_at(1_000), None);
        let empty = Facts { held: Some(Hold { reason: String::new(), until_ms: i64::MAX }), ..Facts::default() };
        assert_eq!(empty.held_at(0), None);
    }

    #[test]
    fn observed_from_labels() {
        let labels: HashMap<String, String> = [
            ("hemostat.action", "notify"),
            ("hemostat.cooldown", "90s"),
            ("com.docker.compose.project", "shop"),
            ("com.docker.compose.service", "api"),
            ("hemostat.max_actions_per_hour", "lots"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = Observed::from_labels("c1", Some("shop/api:1"), &labels);
        assert_eq!(
            (o.policy.action, o.policy.cooldown_seconds, o.policy.max_actions_per_hour),
            (crate::policy::ActionPolicy::Notify, Some(90), None)
        );
        assert_eq!((o.compose_project.as_deref(), o.compose_service.as_deref()), (Some("shop"), Some("api")));
        assert_eq!(Observed::from_labels("c1", Some(""), &HashMap::new()).image, None);
    }

    #[test]
    fn observed_reads_with_only_an_id() {
        let o: Observed = serde_json::from_str(r#"{"id": "c0ffee"}"#).unwrap();
        assert_eq!((o.id.as_str(), o.policy.is_default()), ("c0ffee", true));
    }
}
