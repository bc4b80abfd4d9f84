//! A container's own limits, enforced again on its host: the last line
//! that holds even if Redis is written by someone else. Its labels say
//! whether HemoStat may act at all (`hemostat.action`), how often
//! (`hemostat.max_actions_per_hour`) and how soon again
//! (`hemostat.cooldown`); the gate applies them before a command is sent,
//! and the collector refuses a command that breaks them all the same.
//!
//! The actions counted are the ones this collector carried out on the
//! container by command, in memory: a restarted collector starts counting
//! again (the gate's own count, in Redis, is the first line).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hemostat_protocol::{
    Action,
    policy::{ActionPolicy, LABEL_ACTION, LABEL_COOLDOWN, LABEL_MAX_ACTIONS_PER_HOUR, Policy},
};

const HOUR: Duration = Duration::from_secs(3600);

/// Containers remembered before the quietest are forgotten.
const MAX_CONTAINERS: usize = 10_000;

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Limits {
    /// By container id: when each action of the last hour was carried out.
    done: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl Limits {
    /// Why `action` on the container with this policy must be refused, if
    /// it must. `escalation_step`: the signed command's ladder step; one
    /// past the first is paced by the ladder (each waits for the previous
    /// outcome, six at most), so the cooldown and the hourly cap leave it
    /// be, as the gate's do.
    pub fn refusal(
        &self,
        id: &str,
        policy: &Policy,
        action: Action,
        escalation_step: Option<u32>,
        now: Instant,
    ) -> Option<String> {
        match (policy.action, action) {
            (ActionPolicy::None | ActionPolicy::Notify, _) => {
                return Some(format!(
                    "policy: {} ({LABEL_ACTION}={}): its collector does not act on it",
                    policy.action, policy.action
                ));
            }
            (
                ActionPolicy::Stop,
                Action::Restart | Action::Recreate | Action::Start | Action::ScaleUp | Action::Exec,
            ) => {
                return Some(format!(
                    "policy: stop ({LABEL_ACTION}=stop): its collector only stops it, never {action}"
                ));
            }
            _ => {}
        }
        if escalation_step.is_some_and(|n| n > 1) {
            return None;
        }
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let times = done.get_mut(id)?;
        times.retain(|t| now.duration_since(*t) < HOUR);
        if let (Some(cap), n) = (policy.max_actions_per_hour, times.len())
            && n >= cap as usize
        {
            return Some(format!(
                "hourly cap: {n} actions on it in the last hour ({LABEL_MAX_ACTIONS_PER_HOUR}={cap}), refused by its collector"
            ));
        }
        if let (Some(cooldown), Some(last)) = (policy.cooldown_seconds, times.back())
            && now.duration_since(*last) < Duration::from_secs(cooldown)
        {
            return Some(format!(
                "cooldown: last action {:.1}s ago ({LABEL_COOLDOWN}={cooldown}s), refused by its collector",
                now.duration_since(*last).as_secs_f64()
            ));
        }
        None
    }

    /// An action was carried out on the container.
    pub fn record(&self, id: &str, now: Instant) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if done.len() >= MAX_CONTAINERS && !done.contains_key(id) {
            done.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < HOUR));
        }
        done.entry(id.to_owned()).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_none_notify_and_stop_refuse_what_they_forbid() {
        let limits = Limits::default();
        let now = Instant::now();
        let with = |action| Policy { action, ..Policy::default() };
        assert!(limits.refusal("c", &with(ActionPolicy::None), Action::Stop, None, now).is_some());
        let notify = limits.refusal("c", &with(ActionPolicy::Notify), Action::Restart, None, now).unwrap();
        assert_eq!(notify, "policy: notify (hemostat.action=notify): its collector does not act on it");
        assert!(limits.refusal("c", &with(ActionPolicy::Stop), Action::Restart, None, now).is_some());
        assert!(limits.refusal("c", &with(ActionPolicy::Stop), Action::Recreate, None, now).is_some());
        assert_eq!(limits.refusal("c", &with(ActionPolicy::Stop), Action::Stop, None, now), None);
        assert_eq!(limits.refusal("c", &Policy::default(), Action::Restart, None, now), None);
    }

    #[test]
    fn its_own_cap_and_cooldown_count_what_this_collector_did() {
        let limits = Limits::default();
        let t0 = Instant::now();
        let policy = Policy { max_actions_per_hour: Some(2), cooldown_seconds: Some(60), ..Policy::default() };
        assert_eq!(limits.refusal("c", &policy, Action::Restart, None, t0), None);
        limits.record("c", t0);
        let soon = limits.refusal("c", &policy, Action::Restart, None, t0 + Duration::from_secs(10)).unwrap();
        assert!(soon.starts_with("cooldown: last action 10.0s ago (hemostat.cooldown=60s)"), "{soon}");
        assert_eq!(limits.refusal("c", &policy, Action::Restart, None, t0 + Duration::from_secs(61)), None);
        limits.record("c", t0 + Duration::from_secs(61));
        let capped = limits.refusal("c", &policy, Action::Restart, None, t0 + Duration::from_secs(200)).unwrap();
        assert!(capped.starts_with("hourly cap: 2 actions on it in the last hour"), "{capped}");
        // Another container, and the same one an hour later: free.
        assert_eq!(limits.refusal("d", &policy, Action::Restart, None, t0 + Duration::from_secs(200)), None);
        assert_eq!(limits.refusal("c", &policy, Action::Restart, None, t0 + Duration::from_secs(3662)), None);
        // Without labels, the gate's limits are the only ones.
        assert_eq!(limits.refusal("c", &Policy::default(), Action::Restart, None, t0 + Duration::from_secs(62)), None);
        // A ladder's step past the first is the ladder's to pace; its first
        // step, and the labels' own refusals, stand.
        limits.record("c", t0 + Duration::from_secs(3700));
        let soon = t0 + Duration::from_secs(3705);
        assert_eq!(limits.refusal("c", &policy, Action::Recreate, Some(2), soon), None);
        assert!(limits.refusal("c", &policy, Action::Restart, Some(1), soon).is_some());
        let notify = Policy { action: ActionPolicy::Notify, ..policy };
        assert!(limits.refusal("c", &notify, Action::Recreate, Some(2), soon).is_some());
    }
}
