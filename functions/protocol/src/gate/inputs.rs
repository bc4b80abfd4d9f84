//! What the gate is told about a container beyond the state its scripts
//! read from Redis: the one place that turns a container's facts into the
//! gate's inputs, for the responder deciding and `hemostat explain`
//! previewing alike, so both give the same reasons in the same order.

use crate::{
    gate::GateSettings,
    policy::{ActionPolicy, LABEL_ACTION, Policy},
    silence::Silence,
};

/// A container's facts, as the newest alert about it tells them (the
/// responder reads them from the request's context, which the analyzer
/// copied from the alert; `hemostat` from the alert itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerFacts<'a> {
    /// Its policy, from its labels.
    pub policy: Option<&'a Policy>,
    /// The alert's `held`: why HemoStat must not act on it now (an
    /// operator's own docker command within the grace, a deploy, its
    /// parent's failure).
    pub held: Option<&'a str>,
    /// The first live silence that holds for it.
    pub silence: Option<&'a Silence>,
}

/// What the gate's container script takes besides its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInputs {
    /// A refusal decided before the gate's own limits, refused and audited
    /// with this reason.
    pub refusal: Option<String>,
    /// The container's own cooldown (`hemostat.cooldown`), else the fleet's.
    pub cooldown_seconds: u64,
    /// The container's own hourly cap (`hemostat.max_actions_per_hour`),
    /// else the fleet's.
    pub max_per_hour: u64,
}

impl GateSettings {
    /// The gate's inputs for a container. The refusals come first, in this
    /// order (the first that applies is the reason given): an operator's
    /// silence, the owner's notify-only policy, then `held`; the script
    /// then checks the cooldown, the open circuit breaker and the hourly
    /// cap.
    pub fn inputs(&self, facts: &ContainerFacts<'_>) -> GateInputs {
        let policy = facts.policy;
        let notify_only = policy.is_some_and(|p| p.action == ActionPolicy::Notify);
        let refusal = facts
            .silence
            .map(Silence::refusal)
            .or_else(|| notify_only.then(|| format!("policy: notify ({LABEL_ACTION}=notify: alert only, never act)")))
            .or_else(|| facts.held.filter(|h| !h.is_empty()).map(str::to_owned));
        GateInputs {
            refusal,
            cooldown_seconds: policy.and_then(|p| p.cooldown_seconds).unwrap_or(self.cooldown_seconds),
            max_per_hour: policy.and_then(|p| p.max_actions_per_hour).map_or(self.max_per_hour, u64::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::silence::TargetKind;

    fn silence() -> Silence {
        Silence {
            id: "s1".into(),
            kind: TargetKind::Host,
            target: "h1".into(),
            reason: "kernel upgrade".into(),
            created: "2026-12-02T10:00:00+00:00".into(),
            until: "2099-01-01T00:00:00+00:00".into(),
            by: "alice".into(),
        }
    }

    #[test]
    fn a_silence_outranks_the_policy_which_outranks_held() {
        let settings = GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60 };
        let notify = Policy { action: ActionPolicy::Notify, ..Policy::default() };
        let s = silence();
        let held = Some("operator: docker restart 4 s ago (grace 30 s)");
        let all = ContainerFacts { policy: Some(&notify), held, silence: Some(&s) };
        assert_eq!(
            settings.inputs(&all).refusal.as_deref(),
            Some("silenced: kernel upgrade (until 2099-01-01T00:00:00+00:00)")
        );
        let no_silence = ContainerFacts { silence: None, ..all };
        assert_eq!(
            settings.inputs(&no_silence).refusal.as_deref(),
            Some("policy: notify (hemostat.action=notify: alert only, never act)")
        );
        let only_held = ContainerFacts { held, ..ContainerFacts::default() };
        assert_eq!(settings.inputs(&only_held).refusal.as_deref(), held);
        let empty_held = ContainerFacts { held: Some(""), ..ContainerFacts::default() };
        assert_eq!(settings.inputs(&empty_held).refusal, None);
    }

    #[test]
    fn a_containers_own_limits_replace_the_fleets() {
        let settings = GateSettings { cooldown_seconds: 3600, max_per_hour: 3, breaker_seconds: 60 };
        let fleet = settings.inputs(&ContainerFacts::default());
        assert_eq!((fleet.refusal, fleet.cooldown_seconds, fleet.max_per_hour), (None, 3600, 3));
        let own = Policy { cooldown_seconds: Some(90), max_actions_per_hour: Some(1), ..Policy::default() };
        let inputs = settings.inputs(&ContainerFacts { policy: Some(&own), ..ContainerFacts::default() });
        assert_eq!((inputs.cooldown_seconds, inputs.max_per_hour), (90, 1));
    }
}
