//! Deciding, from Docker events alone, whether something is a crash.
//!
//! Pure: events and facts in, decisions out; no I/O and no clock (Docker's
//! own event timestamps order everything), so every rule is unit-tested.
//! Detection is two steps because one fact, `State.OOMKilled`, needs an
//! inspect: [`Detector::observe`] remembers context (recent kills, OOM
//! events) and names a [`Suspect`]; [`assess`] turns it into a
//! [`Detection`] once the caller has inspected the container and checked
//! whether the collector itself is acting on it.

use std::collections::HashMap;

use bollard::models::ContainerInspectResponse;

use crate::{
    event::{ContainerEvent, Happening},
    scope::Scope,
};

/// A die this soon after an API SIGTERM/SIGKILL is the requested stop, not
/// a crash (`docker stop` waits 10 s by default before its SIGKILL).
const REQUESTED_STOP_WINDOW_NANOS: i64 = 30_000_000_000;
/// Signals `docker stop`, `docker kill` and `docker restart` send.
const STOP_SIGNALS: [i32; 2] = [9, 15];

/// What the caller learned by inspecting the container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub oom_killed: bool,
    pub image: Option<String>,
    pub labels: HashMap<String, String>,
}

impl Facts {
    pub fn of(inspect: &ContainerInspectResponse) -> Facts {
        Facts {
            oom_killed: inspect.state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false),
            image: inspect.config.as_ref().and_then(|c| c.image.clone()),
            labels: inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Trouble {
    Exit {
        code: i64,
        /// An `oom` event came before the die.
        oom_event: bool,
        /// The stop signal of an API kill shortly before the die.
        requested_stop: Option<i32>,
    },
    Unhealthy,
}

/// An event that may deserve an alert, pending the container's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub attributes: HashMap<String, String>,
    pub time_nano: i64,
    pub trouble: Trouble,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Crash,
    Oom,
    Unhealthy,
}

/// A confirmed problem, ready to become a `health_alert`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub container: String,
    pub container_id: String,
    pub image: Option<String>,
    pub exit_code: Option<i64>,
    pub time_nano: i64,
}

/// What [`assess`] made of a suspect: an alert, or the reason there is none
/// (logged, so an unreported exit can be explained).
#[derive(Debug, Clone, PartialEq)]
pub enum Detection {
    Alert(Finding),
    Ignore(String),
}

/// Per-container memory of the events that change what a later die means.
#[derive(Debug, Default)]
pub struct Detector {
    /// Container id -> (signal, event time) of the last API kill.
    kills: HashMap<String, (i32, i64)>,
    /// Container id -> time of the last `oom` event.
    ooms: HashMap<String, i64>,
}

impl Detector {
    pub fn new() -> Self {
        Detector::default()
    }

    pub fn observe(&mut self, e: &ContainerEvent) -> Option<Suspect> {
        self.forget_before(e.time_nano.saturating_sub(REQUESTED_STOP_WINDOW_NANOS));
        let trouble = match e.happening {
            Happening::Killed { signal: Some(signal) } => {
                self.kills.insert(e.id.clone(), (signal, e.time_nano));
                return None;
            }
            Happening::Oom => {
                self.ooms.insert(e.id.clone(), e.time_nano);
                return None;
            }
            Happening::Died { exit_code } => {
                let kill = self.kills.remove(&e.id);
                let oom_event = self.ooms.remove(&e.id).is_some();
                if exit_code == 0 {
                    return None;
                }
                let requested_stop = kill
                    .filter(|(signal, at)| {
                        STOP_SIGNALS.contains(signal) && e.time_nano - at <= REQUESTED_STOP_WINDOW_NANOS
                    })
                    .map(|(signal, _)| signal);
                Trouble::Exit { code: exit_code, oom_event, requested_stop }
            }
            Happening::Destroyed => {
                self.kills.remove(&e.id);
                self.ooms.remove(&e.id);
                return None;
            }
            Happening::Health { healthy: false } => Trouble::Unhealthy,
            Happening::Killed { signal: None } | Happening::Started | Happening::Health { healthy: true } => {
                return None;
            }
        };
        Some(Suspect {
            id: e.id.clone(),
            name: e.name.clone(),
            image: e.image.clone(),
            attributes: e.attributes.clone(),
            time_nano: e.time_nano,
            trouble,
        })
    }

    /// The API kills (container id, signal, time) a later die may still
    /// be the requested stop of: kept across a restart of the collector,
    /// so a `docker stop` begun before it and ended while it was away is
    /// still the operator's.
    pub fn kills(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.kills.iter().map(|(id, (signal, at))| (id.as_str(), *signal, *at))
    }

    /// Restores a kill [`Detector::kills`] listed (a later one wins).
    pub fn remember_kill(&mut self, id: &str, signal: i32, at: i64) {
        let newer = self.kills.get(id).is_none_or(|(_, seen)| *seen < at);
        if newer {
            self.kills.insert(id.to_owned(), (signal, at));
        }
    }

    /// Bounds memory: context older than the window can no longer matter.
    fn forget_before(&mut self, horizon: i64) {
        self.kills.retain(|_, (_, at)| *at >= horizon);
        self.ooms.retain(|_, at| *at >= horizon);
    }
}

/// Whether a suspect is an alert. `facts` is None when the container
/// could not be inspected (e.g. already removed by `--rm`): the event's
/// own attributes, which carry the labels, stand in.
pub fn assess(s: &Suspect, facts: Option<&Facts>, in_flight: bool, scope: &Scope) -> Detection {
    let labels = facts.map(|f| &f.labels).unwrap_or(&s.attributes);
    if let Some(why) = scope.excludes(labels) {
        return Detection::Ignore(why.into());
    }
    if in_flight {
        return Detection::Ignore("caused by the collector's own action".into());
    }
    let (kind, exit_code) = match s.trouble {
        Trouble::Exit { code, oom_event, requested_stop } => {
            let oom = oom_event || facts.is_some_and(|f| f.oom_killed);
            match (oom, requested_stop) {
                (true, _) => (FindingKind::Oom, Some(code)),
                (false, Some(signal)) => {
                    return Detection::Ignore(format!("requested stop (signal {signal})"));
                }
                (false, None) => (FindingKind::Crash, Some(code)),
            }
        }
        Trouble::Unhealthy => (FindingKind::Unhealthy, None),
    };
    Detection::Alert(Finding {
        kind,
        container: s.name.trim_start_matches('/').to_owned(),
        container_id: s.id.clone(),
        image: facts.and_then(|f| f.image.clone()).or_else(|| s.image.clone()),
        exit_code,
        time_nano: s.time_nano,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;

    fn ev(happening: Happening, at: i64, labels: &[(&str, &str)]) -> ContainerEvent {
        let mut attributes: HashMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        attributes.insert("name".into(), "web".into());
        ContainerEvent {
            happening,
            id: "c1".into(),
            name: "web".into(),
            image: Some("nginx".into()),
            attributes,
            time_nano: at,
        }
    }

    fn die(code: i64, at: i64) -> ContainerEvent {
        ev(Happening::Died { exit_code: code }, at, &[])
    }

    fn kill(signal: i32, at: i64) -> ContainerEvent {
        ev(Happening::Killed { signal: Some(signal) }, at, &[])
    }

    /// Runs events through a fresh detector, assessing with `facts`.
    fn detections(events: &[ContainerEvent], facts: Option<&Facts>, in_flight: bool) -> Vec<Detection> {
        let mut d = Detector::new();
        events.iter().filter_map(|e| d.observe(e)).map(|s| assess(&s, facts, in_flight, &Scope::default())).collect()
    }

    /// The single alert among the detections (ignores are not alerts).
    fn alert(v: &[Detection]) -> &Finding {
        let alerts: Vec<&Finding> =
            v.iter().filter_map(|v| if let Detection::Alert(f) = v { Some(f) } else { None }).collect();
        match alerts[..] {
            [f] => f,
            _ => panic!("expected one alert, got {v:?}"),
        }
    }

    fn no_alert(v: &[Detection]) -> bool {
        v.iter().all(|v| matches!(v, Detection::Ignore(_)))
    }

    #[test]
    fn exit_zero_is_nothing() {
        assert!(detections(&[die(0, T0)], None, false).is_empty());
    }

    #[test]
    fn exit_one_is_a_crash() {
        let v = detections(&[die(1, T0)], None, false);
        let f = alert(&v);
        assert_eq!((f.kind, f.exit_code), (FindingKind::Crash, Some(1)));
        assert_eq!((f.container.as_str(), f.container_id.as_str(), f.time_nano), ("web", "c1", T0));
        assert_eq!(f.image.as_deref(), Some("nginx"));
    }

    #[test]
    fn exit_137_oom_killed_is_an_oom() {
        let facts = Facts { oom_killed: true, image: Some("app:1".into()), ..Default::default() };
        let v = detections(&[die(137, T0)], Some(&facts), false);
        let f = alert(&v);
        assert_eq!((f.kind, f.exit_code), (FindingKind::Oom, Some(137)));
        // The inspected image wins over the event's.
        assert_eq!(f.image.as_deref(), Some("app:1"));
        // The oom event alone is enough when the container is already gone.
        let v = detections(&[ev(Happening::Oom, T0, &[]), die(137, T0 + 1)], None, false);
        assert_eq!(alert(&v).kind, FindingKind::Oom);
    }

    #[test]
    fn docker_stop_is_nothing() {
        let v = detections(&[kill(15, T0), die(143, T0 + SEC)], None, false);
        assert_eq!(v, [Detection::Ignore("requested stop (signal 15)".into())]);
        // stop whose grace period ran out: SIGTERM, then SIGKILL.
        assert!(no_alert(&detections(&[kill(15, T0), kill(9, T0 + 10 * SEC), die(137, T0 + 10 * SEC)], None, false)));
        assert!(no_alert(&detections(&[kill(9, T0), die(137, T0)], None, false)));
    }

    #[test]
    fn user_signal_then_exit_one_is_a_crash() {
        let v = detections(&[kill(10, T0), die(1, T0 + SEC / 5)], None, false);
        assert_eq!(alert(&v).kind, FindingKind::Crash);
    }

    #[test]
    fn an_old_stop_does_not_hide_a_later_crash() {
        let v = detections(&[kill(15, T0), die(1, T0 + 31 * SEC)], None, false);
        assert_eq!(alert(&v).kind, FindingKind::Crash);
        // Nor does a stop before an earlier die (each die consumes its kill).
        let v = detections(&[kill(15, T0), die(143, T0 + SEC), die(1, T0 + 2 * SEC)], None, false);
        assert_eq!(alert(&v).kind, FindingKind::Crash);
    }

    #[test]
    fn opted_out_containers_are_nothing() {
        let e = ev(Happening::Died { exit_code: 1 }, T0, &[("hemostat.enable", "false")]);
        assert!(matches!(detections(std::slice::from_ref(&e), None, false)[..], [Detection::Ignore(_)]));
        // Inspected labels win over event attributes.
        let facts = Facts { labels: [("hemostat.enable".into(), "FALSE".into())].into(), ..Default::default() };
        assert!(matches!(detections(&[die(1, T0)], Some(&facts), false)[..], [Detection::Ignore(_)]));
        let enabled = ev(Happening::Died { exit_code: 1 }, T0, &[("hemostat.enable", "true")]);
        assert!(matches!(detections(&[enabled], None, false)[..], [Detection::Alert(_)]));
    }

    #[test]
    fn hemostat_own_containers_are_nothing() {
        let e = ev(Happening::Died { exit_code: 1 }, T0, &[("hemostat.role", "collector")]);
        assert!(matches!(detections(&[e], None, false)[..], [Detection::Ignore(_)]));
    }

    #[test]
    fn the_collectors_own_action_is_nothing() {
        assert!(matches!(detections(&[die(1, T0)], None, true)[..], [Detection::Ignore(_)]));
    }

    #[test]
    fn unhealthy_alerts_healthy_does_not() {
        let v = detections(&[ev(Happening::Health { healthy: false }, T0, &[])], None, false);
        let f = alert(&v);
        assert_eq!((f.kind, f.exit_code), (FindingKind::Unhealthy, None));
        assert!(detections(&[ev(Happening::Health { healthy: true }, T0, &[])], None, false).is_empty());
    }

    #[test]
    fn a_kill_remembered_across_a_restart_still_makes_the_die_a_stop() {
        let mut before = Detector::new();
        before.observe(&kill(15, T0));
        let kept: Vec<(String, i32, i64)> = before.kills().map(|(id, s, t)| (id.to_owned(), s, t)).collect();
        assert_eq!(kept, [("c1".to_owned(), 15, T0)]);
        let mut after = Detector::new();
        for (id, signal, at) in &kept {
            after.remember_kill(id, *signal, *at);
        }
        let s = after.observe(&die(1, T0 + 5 * SEC)).unwrap();
        assert_eq!(assess(&s, None, false, &Scope::default()), Detection::Ignore("requested stop (signal 15)".into()));
        // Without it, the same die is a crash.
        let s = Detector::new().observe(&die(1, T0 + 5 * SEC)).unwrap();
        assert!(matches!(assess(&s, None, false, &Scope::default()), Detection::Alert(_)));
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut d = Detector::new();
        for i in 0..100 {
            let mut k = kill(15, T0 + i);
            k.id = format!("c{i}");
            d.observe(&k);
        }
        d.observe(&die(0, T0 + 60 * SEC));
        assert!(d.kills.is_empty());
    }
}
