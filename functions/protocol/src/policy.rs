//! A container's own policy: what its owner told HemoStat about it, in
//! labels set when the container was created.
//!
//! The collector reads the labels (it alone talks to Docker) and resolves
//! them into a [`Policy`], which travels with the container's alerts and,
//! through the analyzer's verdict, to the safety gate that enforces it. A
//! policy holds only what its labels override; everything else stays at the
//! fleet's settings. This file is the single spelling of the labels.
//!
//! | label | value | means |
//! |---|---|---|
//! | `hemostat.action` | `restart` (default), `stop`, `notify`, `none` | what a fix may be: the analyzer's choice, only a stop, alert only, or not even an alert |
//! | `hemostat.cooldown` | duration (`90s`, `5m`) | the gate's cooldown between two actions |
//! | `hemostat.max_actions_per_hour` | whole number | the gate's hourly cap |
//! | `hemostat.cpu_threshold` | percent of the CPU limit | the CPU alert's threshold |
//! | `hemostat.memory_threshold` | percent of the memory limit | the memory alert's threshold |
//! | `hemostat.sustain` | duration | how long a breach lasts before it is an alert |
//! | `hemostat.unhealthy_grace` | duration | how long `unhealthy` lasts before it is an alert |
//! | `hemostat.stop_timeout` | duration | graceful stop before a stop or restart kills |
//! | `hemostat.approve` | actions (`restart,stop`), `all` or `none` | these actions wait for a person's yes ([`crate::approval`]) |
//! | `hemostat.maintenance` | schedule (`every day at 02:00 for 45m tz Europe/Berlin`) | a recurring maintenance window (a backup that stops it): no action while it is open ([`crate::maintenance`]) |
//! | `hemostat.escalation` | steps among `restart`, `recreate`, `stop` (`restart,recreate,stop`), or `off` | the escalation ladder when restarts do not hold ([`crate::gate::ladder`]) |
//! | `autoheal` | `true` / `false`, any case | docker-autoheal's opt-in and opt-out (the collector's scope) |
//! | `autoheal.stop.timeout` | seconds | docker-autoheal's stop timeout (`hemostat.stop_timeout` wins) |
//!
//! A container without a stop-timeout label keeps its own `StopTimeout`
//! (compose's `stop_grace_period`); only a container with neither gets the
//! collector's `--stop-timeout`.
//!
//! A label that does not parse is left out of the policy (the fleet's
//! setting applies) and named in [`Resolved::problems`], for the collector to
//! report once.

use std::{collections::HashMap, fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::config::parse_duration;

pub const LABEL_ACTION: &str = "hemostat.action";
pub const LABEL_COOLDOWN: &str = "hemostat.cooldown";
pub const LABEL_MAX_ACTIONS_PER_HOUR: &str = "hemostat.max_actions_per_hour";
pub const LABEL_CPU_THRESHOLD: &str = "hemostat.cpu_threshold";
pub const LABEL_MEMORY_THRESHOLD: &str = "hemostat.memory_threshold";
pub const LABEL_SUSTAIN: &str = "hemostat.sustain";
pub const LABEL_UNHEALTHY_GRACE: &str = "hemostat.unhealthy_grace";
pub const LABEL_STOP_TIMEOUT: &str = "hemostat.stop_timeout";
/// The actions that wait for a person's yes: `restart,stop`, `all`
/// ([`crate::approval::Rule`]).
pub const LABEL_APPROVE: &str = "hemostat.approve";
/// A recurring maintenance window: `every <days> at <HH:MM> for <length>
/// [tz <zone>]` ([`crate::maintenance::Schedule`]).
pub const LABEL_MAINTENANCE: &str = "hemostat.maintenance";
/// The escalation ladder: `restart,recreate,stop` ([`crate::gate::Ladder`]).
pub const LABEL_ESCALATION: &str = "hemostat.escalation";
/// docker-autoheal's stop timeout, in whole seconds.
pub const LABEL_AUTOHEAL_STOP_TIMEOUT: &str = "autoheal.stop.timeout";
/// Compose's labels: a container's project, its service, and its replica
/// number within the service.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
pub const COMPOSE_NUMBER_LABEL: &str = "com.docker.compose.container-number";
/// Compose's record of a service's `depends_on`: comma-separated
/// `service:condition:restart` entries (`db:service_healthy:true`).
pub const COMPOSE_DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// Set by compose on a container it created to replace another (`up` after
/// a change): the replaced container's name or id.
pub const COMPOSE_REPLACE_LABEL: &str = "com.docker.compose.replace";

/// What a fix may be, as the container's owner allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionPolicy {
    /// Whatever the analysis decides (the default).
    #[default]
    Restart,
    /// Never a restart: a stop where the analysis would restart.
    Stop,
    /// Neither act nor alert.
    None,
    /// Alert, never act. Also what an action this version does not know
    /// (a newer collector's) reads as: the safe side is not to act.
    #[serde(other)]
    Notify,
}

impl ActionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionPolicy::Restart => "restart",
            ActionPolicy::Stop => "stop",
            ActionPolicy::Notify => "notify",
            ActionPolicy::None => "none",
        }
    }

    fn parse(v: &str) -> Option<ActionPolicy> {
        match v.trim().to_ascii_lowercase().as_str() {
            "restart" => Some(ActionPolicy::Restart),
            "stop" => Some(ActionPolicy::Stop),
            "notify" => Some(ActionPolicy::Notify),
            "none" => Some(ActionPolicy::None),
            _ => None,
        }
    }
}

impl fmt::Display for ActionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overrides a container's labels set; `None` (left out of the JSON)
/// is the fleet's setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "is_default_action")]
    pub action: ActionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_actions_per_hour: Option<u32>,
    /// Percent of the container's CPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_threshold: Option<f64>,
    /// Percent of the container's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustain_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_grace_seconds: Option<f64>,
    /// From `hemostat.stop_timeout`, else `autoheal.stop.timeout`, else the
    /// container's own `StopTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_seconds: Option<f64>,
    /// From `hemostat.maintenance`: its schedule, as
    /// [`Schedule`](crate::maintenance::Schedule) writes it (checked when
    /// read from the label; one a newer collector wrote that this version
    /// cannot read opens no window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// `hemostat.escalation`, as written back by [`crate::gate::Ladder`]
    /// (`restart,recreate,stop`, or `off`): the ladder a failing container
    /// climbs instead of the fleet's. A request cannot change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// From `hemostat.approve`: the actions that wait for a person's yes,
    /// as [`Rule`](crate::approval::Rule) writes them (checked when read
    /// from the label; one that does not parse reads as `all`, the safe
    /// side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
}

fn is_default_action(a: &ActionPolicy) -> bool {
    *a == ActionPolicy::Restart
}

/// A policy, and the labels that could not be read (`label=value: why`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub policy: Policy,
    pub problems: Vec<String>,
}

impl Policy {
    /// Whether no label changed anything (such a policy is not sent).
    pub fn is_default(&self) -> bool {
        *self == Policy::default()
    }

    /// This policy (a container's own), made stricter by `other` (a
    /// request's) wherever `other` is stricter: the action that does less
    /// (none, then notify, then stop, then restart), the longer cooldown,
    /// the lower hourly cap. What the gate makes of a container's own policy
    /// and a request's: a request may ask for less than the container's
    /// labels allow, never for more. Where the container has no limit of its
    /// own, the fleet's applies, and a request's is not taken: `other`
    /// cannot be compared with a setting it does not know, and a forged
    /// `cooldown_seconds: 0` must not replace the fleet's hour.
    pub fn stricter(&self, other: &Policy) -> Policy {
        let strictness = |a: ActionPolicy| match a {
            ActionPolicy::None => 3,
            ActionPolicy::Notify => 2,
            ActionPolicy::Stop => 1,
            ActionPolicy::Restart => 0,
        };
        let action = if strictness(other.action) > strictness(self.action) { other.action } else { self.action };
        Policy {
            action,
            cooldown_seconds: self.cooldown_seconds.map(|own| other.cooldown_seconds.map_or(own, |o| own.max(o))),
            max_actions_per_hour: self
                .max_actions_per_hour
                .map(|own| other.max_actions_per_hour.map_or(own, |o| own.min(o))),
            // A request may ask for a yes the labels do not: that is asking for less.
            approve: Some(self.approval_rule().union(&other.approval_rule()))
                .filter(|rule| !rule.is_empty())
                .map(|rule| rule.to_string()),
            ..self.clone()
        }
    }

    /// The actions its labels say wait for a person's yes.
    pub fn approval_rule(&self) -> crate::approval::Rule {
        match self.approve.as_deref() {
            None => crate::approval::Rule::default(),
            Some(text) => crate::approval::Rule::parse(text).unwrap_or_else(|_| crate::approval::Rule::all()),
        }
    }

    /// Resolves `labels`; `own_stop_timeout` is the container's own
    /// `StopTimeout` in seconds, used when no label sets one.
    pub fn from_labels(labels: &HashMap<String, String>, own_stop_timeout: Option<i64>) -> Resolved {
        let mut problems = Vec::new();
        let action = read_label(labels, &mut problems, LABEL_ACTION, &|v| {
            ActionPolicy::parse(v).ok_or_else(|| "expected restart, stop, notify or none".to_owned())
        });
        let mut read =
            |label: &str, parse: &dyn Fn(&str) -> Result<f64, String>| read_label(labels, &mut problems, label, parse);
        let cooldown_seconds = read(LABEL_COOLDOWN, &seconds).map(|s| s.ceil() as u64);
        let max_actions_per_hour = read(LABEL_MAX_ACTIONS_PER_HOUR, &|v| whole(v, "a whole number")).map(|n| n as u32);
        let cpu_threshold = read(LABEL_CPU_THRESHOLD, &percent);
        let memory_threshold = read(LABEL_MEMORY_THRESHOLD, &percent);
        let sustain_seconds = read(LABEL_SUSTAIN, &seconds);
        let unhealthy_grace_seconds = read(LABEL_UNHEALTHY_GRACE, &seconds);
        let stop_timeout_seconds = read(LABEL_STOP_TIMEOUT, &seconds)
            .or_else(|| read(LABEL_AUTOHEAL_STOP_TIMEOUT, &|v| whole(v, "whole seconds")))
            .or_else(|| own_stop_timeout.filter(|s| *s >= 0).map(|s| s as f64));
        let maintenance = read_label(labels, &mut problems, LABEL_MAINTENANCE, &|v| {
            crate::maintenance::Schedule::parse(v).map(|s| s.to_string())
        });
        let escalation = read_label(labels, &mut problems, LABEL_ESCALATION, &|v| {
            crate::gate::Ladder::parse(v).map(|l| l.to_string())
        });
        let approve = read_label(labels, &mut problems, LABEL_APPROVE, &|v| {
            crate::approval::Rule::parse(v).map(|r| r.to_string())
        });
        Resolved {
            policy: Policy {
                approve,
                action: action.unwrap_or_default(),
                cooldown_seconds,
                max_actions_per_hour,
                cpu_threshold,
                memory_threshold,
                sustain_seconds,
                unhealthy_grace_seconds,
                stop_timeout_seconds,
                maintenance,
                escalation,
            },
            problems,
        }
    }

    /// `None` also for a value no `Duration` holds (negative, NaN, past
    /// its range), which only a policy read from JSON can carry.
    pub fn stop_timeout(&self) -> Option<Duration> {
        self.stop_timeout_seconds.and_then(|s| Duration::try_from_secs_f64(s).ok())
    }

    /// As [`Policy::stop_timeout`].
    pub fn unhealthy_grace(&self) -> Option<Duration> {
        self.unhealthy_grace_seconds.and_then(|s| Duration::try_from_secs_f64(s).ok())
    }
}

/// `label`'s value parsed, `None` when absent; a value that does not parse
/// is named in `problems` and reads as absent.
fn read_label<T>(
    labels: &HashMap<String, String>,
    problems: &mut Vec<String>,
    label: &str,
    parse: &dyn Fn(&str) -> Result<T, String>,
) -> Option<T> {
    let value = labels.get(label)?;
    parse(value).map_err(|why| problems.push(format!("{label}={value:?}: {why}"))).ok()
}

fn seconds(v: &str) -> Result<f64, String> {
    parse_duration(v).map(|d| d.as_secs_f64())
}

fn percent(v: &str) -> Result<f64, String> {
    match v.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err("expected a percentage above 0 and at most 100".to_owned()),
    }
}

fn whole(v: &str, what: &str) -> Result<f64, String> {
    v.trim().parse::<u32>().map(f64::from).map_err(|_| format!("expected {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_request_may_make_a_policy_stricter_never_looser() {
        let own = Policy {
            action: ActionPolicy::Stop,
            cooldown_seconds: Some(600),
            max_actions_per_hour: Some(2),
            ..Policy::default()
        };
        let looser = Policy {
            action: ActionPolicy::Restart,
            cooldown_seconds: Some(0),
            max_actions_per_hour: Some(100),
            ..Policy::default()
        };
        assert_eq!(own.stricter(&looser), own);
        let stricter = Policy {
            action: ActionPolicy::Notify,
            cooldown_seconds: Some(3600),
            max_actions_per_hour: Some(1),
            ..Policy::default()
        };
        assert_eq!(own.stricter(&stricter), stricter);
        assert_eq!(own.stricter(&Policy::default()), own);
        // No limit of its own: the fleet's holds, a request's is not taken.
        let fleet = Policy::default().stricter(&looser);
        assert_eq!((fleet.cooldown_seconds, fleet.max_actions_per_hour), (None, None));
        assert_eq!(Policy::default().stricter(&own), Policy { action: ActionPolicy::Stop, ..Policy::default() });
        let none = Policy { action: ActionPolicy::None, ..Policy::default() };
        assert_eq!(stricter.stricter(&none).action, ActionPolicy::None);
    }

    #[test]
    fn approvals_come_from_the_label_and_a_request_may_only_add_to_them() {
        let r = Policy::from_labels(&labels(&[(LABEL_APPROVE, "Stop, restart")]), None);
        assert_eq!(r.policy.approve.as_deref(), Some("stop,restart"));
        assert!(r.policy.approval_rule().requires(crate::Action::Restart));
        let bad = Policy::from_labels(&labels(&[(LABEL_APPROVE, "reboot")]), None);
        assert_eq!((bad.policy.approve, bad.problems.len()), (None, 1));
        let own = Policy { approve: Some("stop".into()), ..Policy::default() };
        let asked = Policy { approve: Some("restart".into()), ..Policy::default() };
        assert_eq!(own.stricter(&asked).approve.as_deref(), Some("stop,restart"));
        assert_eq!(own.stricter(&Policy::default()).approve.as_deref(), Some("stop"));
        assert_eq!(Policy::default().stricter(&Policy::default()).approve, None);
        // A value only a newer collector writes: the safe side, every action.
        let newer = Policy { approve: Some("reboot".into()), ..Policy::default() };
        assert!(newer.approval_rule().requires(crate::Action::Cleanup));
    }

    #[test]
    fn durations_no_duration_holds_are_none_not_a_panic() {
        // Found by hemostat-fuzz (envelope): a policy from an alert's JSON.
        for bad in ["-1", "1e300", "1.8446744073709552e19"] {
            let p: Policy =
                serde_json::from_str(&format!(r#"{{"stop_timeout_seconds":{bad},"unhealthy_grace_seconds":{bad}}}"#))
                    .unwrap();
            assert_eq!((p.stop_timeout(), p.unhealthy_grace()), (None, None), "{bad}");
        }
        let p = Policy { stop_timeout_seconds: Some(f64::NAN), ..Policy::default() };
        assert_eq!(p.stop_timeout(), None);
    }

    #[test]
    fn no_labels_is_the_default_policy() {
        let r = Policy::from_labels(&labels(&[("com.docker.compose.project", "shop")]), None);
        assert!(r.policy.is_default());
        assert!(r.problems.is_empty());
        assert_eq!(serde_json::to_string(&r.policy).unwrap(), "{}");
    }

    #[test]
    fn every_label_is_read() {
        let r = Policy::from_labels(
            &labels(&[
                ("hemostat.action", "Notify"),
                ("hemostat.cooldown", "2m"),
                ("hemostat.max_actions_per_hour", "3"),
                ("hemostat.cpu_threshold", "95%"),
                ("hemostat.memory_threshold", "80"),
                ("hemostat.sustain", "30s"),
                ("hemostat.unhealthy_grace", "45"),
                ("hemostat.stop_timeout", "1m"),
                ("hemostat.maintenance", "every Mon,thu at 2:00 for 45m tz Europe/Berlin"),
                ("hemostat.escalation", "Restart, recreate,stop"),
            ]),
            Some(30),
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let p = r.policy;
        assert_eq!(p.action, ActionPolicy::Notify);
        assert_eq!(p.cooldown_seconds, Some(120));
        assert_eq!(p.max_actions_per_hour, Some(3));
        assert_eq!(p.cpu_threshold, Some(95.0));
        assert_eq!(p.memory_threshold, Some(80.0));
        assert_eq!(p.sustain_seconds, Some(30.0));
        assert_eq!(p.unhealthy_grace_seconds, Some(45.0));
        // The label wins over the container's own StopTimeout.
        assert_eq!(p.stop_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(
            p.maintenance.as_deref(),
            Some("every mon,thu at 02:00 for 45m tz Europe/Berlin"),
            "as written back"
        );
        assert_eq!(p.escalation.as_deref(), Some("restart,recreate,stop"), "as written back");
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn stop_timeout_falls_back_from_label_to_autoheal_to_the_container() {
        let own = Policy::from_labels(&labels(&[]), Some(30)).policy;
        assert_eq!(own.stop_timeout(), Some(Duration::from_secs(30)));
        let autoheal = Policy::from_labels(&labels(&[("autoheal.stop.timeout", "20")]), Some(30)).policy;
        assert_eq!(autoheal.stop_timeout(), Some(Duration::from_secs(20)));
        let both =
            Policy::from_labels(&labels(&[("autoheal.stop.timeout", "20"), ("hemostat.stop_timeout", "5s")]), Some(30))
                .policy;
        assert_eq!(both.stop_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(Policy::from_labels(&labels(&[]), None).policy.stop_timeout(), None);
    }

    #[test]
    fn bad_values_are_named_and_fall_back() {
        let r = Policy::from_labels(
            &labels(&[
                ("hemostat.action", "reboot"),
                ("hemostat.cooldown", "soon"),
                ("hemostat.cpu_threshold", "150"),
                ("hemostat.max_actions_per_hour", "-1"),
                ("autoheal.stop.timeout", "1.5"),
                ("hemostat.maintenance", "nightly"),
                ("hemostat.escalation", "restart,reboot"),
            ]),
            Some(12),
        );
        assert_eq!(r.policy.action, ActionPolicy::Restart);
        assert_eq!(r.policy.cooldown_seconds, None);
        assert_eq!(r.policy.cpu_threshold, None);
        assert_eq!(r.policy.max_actions_per_hour, None);
        // A bad autoheal timeout leaves the container's own.
        assert_eq!(r.policy.stop_timeout(), Some(Duration::from_secs(12)));
        assert_eq!(r.policy.maintenance, None);
        assert_eq!(r.policy.escalation, None);
        assert_eq!(r.problems.len(), 7, "{:?}", r.problems);
        assert!(
            r.problems
                .iter()
                .any(|p| p.starts_with("hemostat.escalation=\"restart,reboot\": \"reboot\" is not a step"))
        );
        assert!(r.problems.iter().any(|p| p.starts_with("hemostat.action=\"reboot\": expected restart")));
    }

    #[test]
    fn unknown_fields_and_actions_from_a_newer_collector_do_not_break_reading() {
        let p: Policy = serde_json::from_str(r#"{"action":"stop","future":1}"#).unwrap();
        assert_eq!(p.action, ActionPolicy::Stop);
        let p: Policy = serde_json::from_str(r#"{"action":"drain"}"#).unwrap();
        assert_eq!(p.action, ActionPolicy::Notify);
    }
}
