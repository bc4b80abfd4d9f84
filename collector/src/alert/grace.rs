//! When HemoStat keeps its hands off a container in trouble because someone
//! else is at work on it: an operator who just stopped, restarted, killed or
//! paused it (HemoStat does not fight the person at the keyboard), a
//! container that is paused, one a deploy just created, or one that went
//! down with the container whose network namespace it shares (its
//! recovery is the dependents' recovery's (in `act`), which starts it when the
//! parent is back: a restart of its own would race that, or fail while the
//! parent is down).
//!
//! Pure: the container's recent events, its state and the time in, the
//! reason out. The alert still goes (people should know), carrying the
//! reason in `health_alert.held`; the gate refuses any action with it and
//! audits the refusal.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};

use super::recent::Noted;
use crate::namespace::WITH_PARENT;

/// `kill` signals an API stop or kill sends; any other signal is one
/// someone chose to send (a reload, a test's crash on demand), not a stop.
const STOP_SIGNALS: [i32; 2] = [9, 15];

/// The collector's graces (0: off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Graces {
    /// After an operator's `docker stop`, `restart`, `kill` or `pause`.
    pub operator: Duration,
    /// After the container was created (a deploy, `compose up`, an updater).
    pub created: Duration,
    /// After compose created the container to replace another (`compose up`
    /// after a change: label `com.docker.compose.replace`).
    pub recreated: Duration,
}

/// What [`hold`] reads about one container.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// Its recent events, oldest first.
    pub events: &'a [Noted],
    pub paused: bool,
    /// When it was created (Unix ns), if known.
    pub created_nano: Option<i64>,
    /// The container compose created it to replace (its
    /// `com.docker.compose.replace` label), if it did.
    pub replaces: Option<&'a str>,
    /// When its last run ended (Unix ns); None while it runs.
    pub finished_nano: Option<i64>,
    /// The containers whose network namespace it joins, nearest first: its
    /// parent, that parent's parent (Docker records `container:<B>` for C
    /// started to join B, who joins A), and so on; empty when it joins none.
    pub ancestors: &'a [Parent<'a>],
    pub now_nano: i64,
}

/// What [`hold`] reads about a container's namespace parent.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    /// As the reason names it.
    pub name: &'a str,
    /// Its recent events, oldest first.
    pub events: &'a [Noted],
}

/// Why HemoStat must not act on the container now, if it must not.
/// `own(time)`: whether an event at `time` was HemoStat's own action.
pub fn hold(graces: &Graces, at: &Moment<'_>, own: impl Fn(i64) -> bool) -> Option<String> {
    if at.paused {
        return Some("operator: the container is paused".into());
    }
    // Before the operator's grace: a dependent's own `kill` is often the
    // operator cleaning up after the parent, and the parent is the story.
    if let Some(why) = with_parent(at) {
        return Some(why);
    }
    let ago = |t: i64| (at.now_nano - t) as f64 / 1e9;
    if !graces.operator.is_zero() {
        let within = |t: i64| at.now_nano - t <= graces.operator.as_nanos() as i64;
        let by_operator = at.events.iter().rev().take_while(|e| within(e.time_nano)).find(|e| {
            let verb = match e.action {
                "kill" => e.signal.is_some_and(|s| STOP_SIGNALS.contains(&s)),
                "stop" | "restart" | "pause" => true,
                _ => false,
            };
            verb && !own(e.time_nano)
        });
        if let Some(e) = by_operator {
            return Some(format!(
                "operator: docker {} {:.0} s ago (grace {} s)",
                e.action,
                ago(e.time_nano),
                graces.operator.as_secs_f64()
            ));
        }
    }
    let within =
        |grace: Duration| at.created_nano.filter(|c| !grace.is_zero() && at.now_nano - c <= grace.as_nanos() as i64);
    if let (Some(replaced), Some(created)) = (at.replaces, within(graces.recreated)) {
        return Some(format!(
            "deploy: compose recreated it {:.0} s ago, replacing {} (grace {} s)",
            ago(created),
            short(replaced),
            graces.recreated.as_secs_f64()
        ));
    }
    if let Some(created) = within(graces.created) {
        return Some(format!("deploy: created {:.0} s ago (grace {} s)", ago(created), graces.created.as_secs_f64()));
    }
    None
}

/// A replaced container's id as `docker ps` shows it; a name as it is.
fn short(replaced: &str) -> &str {
    match replaced.len() == 64 && replaced.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => &replaced[..12],
        false => replaced,
    }
}

fn is_stop(e: &Noted) -> bool {
    match e.action {
        "kill" => e.signal.is_some_and(|s| STOP_SIGNALS.contains(&s)),
        "stop" => true,
        _ => false,
    }
}

/// Whether the container went down with a namespace ancestor: the nearest
/// ancestor that is down now, or went down within [`WITH_PARENT`] of the
/// container's end. An ancestor with no event noted is taken to be fine: a
/// dependent's crash of its own must still be healed.
fn with_parent(at: &Moment<'_>) -> Option<String> {
    let (depth, ancestor, down, back) = at.ancestors.iter().enumerate().find_map(|(depth, ancestor)| {
        let (down, back) = went_down_with(ancestor, at)?;
        Some((depth, ancestor, down, back))
    })?;
    let when = DateTime::from_timestamp_nanos(down).to_rfc3339_opts(SecondsFormat::Secs, true);
    let then = if back { "recovered with it" } else { "it is still down; recovered with it when it starts" };
    let (whose, went) = match depth {
        0 => (ancestor.name.to_owned(), "its parent".to_owned()),
        _ => (format!("{} through {}", ancestor.name, at.ancestors[0].name), ancestor.name.to_owned()),
    };
    Some(format!("dependent of {whose}: {went} went down at {when} (shared network namespace); {then}"))
}

/// When `ancestor` went down, and whether it is back, if the container went
/// down with it.
fn went_down_with(ancestor: &Parent<'_>, at: &Moment<'_>) -> Option<(i64, bool)> {
    let down = ancestor.events.iter().rev().find(|e| e.action == "die" || is_stop(e))?;
    let back = ancestor.events.iter().any(|e| e.action == "start" && e.time_nano > down.time_nano);
    let ended = at.finished_nano.unwrap_or(at.now_nano);
    let together = (ended - down.time_nano).abs() <= WITH_PARENT.as_nanos() as i64;
    (!back || together).then_some((down.time_nano, back))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const NOW: i64 = 1_700_000_000 * S;
    const GRACES: Graces = Graces {
        operator: Duration::from_secs(30),
        created: Duration::from_secs(60),
        recreated: Duration::from_secs(60),
    };

    fn ev(action: &'static str, secs_ago: i64, signal: Option<i32>) -> Noted {
        Noted { time_nano: NOW - secs_ago * S, action, exit_code: None, signal }
    }

    fn at(events: &[Noted]) -> Moment<'_> {
        Moment {
            events,
            paused: false,
            created_nano: Some(NOW - 3600 * S),
            replaces: None,
            finished_nano: None,
            ancestors: &[],
            now_nano: NOW,
        }
    }

    /// Why a dependent that ended `ended_ago` s ago is held, given its
    /// ancestors' events, nearest first (`vpn`, then `gateway`, ...).
    fn held_with(own: &[Noted], ancestors: &[&[Noted]], ended_ago: i64) -> Option<String> {
        const NAMES: [&str; 3] = ["vpn", "gateway", "edge"];
        let ancestors: Vec<Parent<'_>> =
            ancestors.iter().zip(NAMES).map(|(events, name)| Parent { name, events }).collect();
        let moment = Moment { finished_nano: Some(NOW - ended_ago * S), ancestors: &ancestors, ..at(own) };
        hold(&GRACES, &moment, |_| false)
    }

    /// Why a dependent is held, given its parent's events.
    fn held(own: &[Noted], parent: &[Noted], ended_ago: i64) -> Option<String> {
        held_with(own, &[parent], ended_ago)
    }

    #[test]
    fn a_dependent_that_went_down_with_its_parent_is_held() {
        // An operator's restart of the parent; the dependent died of it 2 s later.
        let restarted = [ev("kill", 12, Some(15)), ev("die", 12, None), ev("stop", 12, None), ev("start", 11, None)];
        let died = [ev("die", 10, None)];
        let why = held(&died, &restarted, 10).unwrap();
        assert_eq!(
            why,
            "dependent of vpn: its parent went down at 2023-11-14T22:13:08Z (shared network namespace); recovered with it"
        );
        // Also before the operator's grace, which its own kill would raise.
        let killed = [ev("kill", 10, Some(9)), ev("die", 10, None)];
        assert!(held(&killed, &restarted, 10).unwrap().starts_with("dependent of vpn"));
        // A parent that stays down holds it however long ago it went.
        let stopped = [ev("start", 900, None), ev("kill", 300, Some(15)), ev("die", 300, None), ev("stop", 300, None)];
        let why = held(&died, &stopped, 10).unwrap();
        assert!(why.ends_with("it is still down; recovered with it when it starts"), "{why}");
        // The dependent went down first, the parent right after.
        let after = [ev("die", 7, None), ev("start", 6, None)];
        assert!(held(&died, &after, 10).is_some());
    }

    #[test]
    fn a_dependent_that_went_down_with_its_grandparent_is_held() {
        // C joins vpn, which joins gateway: gateway restarted, vpn kept
        // running (no event), C died of it 2 s later.
        let restarted = [ev("kill", 12, Some(15)), ev("die", 12, None), ev("stop", 12, None), ev("start", 11, None)];
        let died = [ev("die", 10, None)];
        let running = [ev("start", 900, None)];
        assert_eq!(
            held_with(&died, &[&running, &restarted], 10).unwrap(),
            "dependent of gateway through vpn: gateway went down at 2023-11-14T22:13:08Z (shared network \
             namespace); recovered with it"
        );
        // The nearest ancestor that went down is the one named.
        assert!(held_with(&died, &[&restarted, &restarted], 10).unwrap().starts_with("dependent of vpn: its parent"));
        // A grandparent restarted long before holds nothing.
        let earlier = [ev("die", 200, None), ev("start", 199, None)];
        assert_eq!(held_with(&died, &[&running, &earlier], 10), None);
    }

    #[test]
    fn a_dependent_whose_parent_is_fine_is_not_held() {
        let died = [ev("die", 10, None)];
        // Restarted long before, and running since.
        let earlier = [ev("die", 200, None), ev("start", 199, None)];
        assert_eq!(held(&died, &earlier, 10), None);
        // Never went down while the collector watched.
        assert_eq!(held(&died, &[ev("start", 100, None)], 10), None);
        assert_eq!(held(&died, &[], 10), None);
        // `docker kill -s USR1` of the parent is no going down.
        let usr1 = [ev("start", 100, None), ev("kill", 10, Some(10))];
        assert_eq!(held(&died, &usr1, 10), None);
        // Not a dependent at all.
        assert_eq!(hold(&GRACES, &at(&died), |_| false), None);
    }

    #[test]
    fn an_operators_restart_stop_kill_or_pause_holds_for_the_grace() {
        for action in ["restart", "stop", "pause"] {
            let events = [ev("start", 50, None), ev(action, 12, None)];
            assert_eq!(
                hold(&GRACES, &at(&events), |_| false).as_deref(),
                Some(format!("operator: docker {action} 12 s ago (grace 30 s)").as_str())
            );
            let old = [ev(action, 31, None)];
            assert_eq!(hold(&GRACES, &at(&old), |_| false), None, "{action}: the grace is over");
        }
        let killed = [ev("kill", 5, Some(9)), ev("die", 5, None)];
        assert!(hold(&GRACES, &at(&killed), |_| false).unwrap().starts_with("operator: docker kill 5 s ago"));
    }

    #[test]
    fn hemostats_own_actions_and_chosen_signals_do_not_hold() {
        let restarted = [ev("kill", 4, Some(15)), ev("stop", 4, None), ev("restart", 3, None)];
        assert_eq!(hold(&GRACES, &at(&restarted), |_| true), None);
        // `docker kill -s USR1`: a signal chosen to make the process act, not a stop.
        let usr1 = [ev("kill", 2, Some(10)), ev("die", 2, None)];
        assert_eq!(hold(&GRACES, &at(&usr1), |_| false), None);
        let off = Graces { operator: Duration::ZERO, ..GRACES };
        assert_eq!(hold(&off, &at(&[ev("restart", 1, None)]), |_| false), None);
    }

    #[test]
    fn paused_and_just_created_containers_are_held() {
        let mut m = at(&[]);
        m.paused = true;
        assert_eq!(hold(&GRACES, &m, |_| false).as_deref(), Some("operator: the container is paused"));
        let mut fresh = at(&[]);
        fresh.created_nano = Some(NOW - 20 * S);
        assert_eq!(hold(&GRACES, &fresh, |_| false).as_deref(), Some("deploy: created 20 s ago (grace 60 s)"));
        assert_eq!(hold(&Graces { created: Duration::ZERO, ..GRACES }, &fresh, |_| false), None);
    }

    #[test]
    fn a_container_compose_recreated_is_held_for_its_own_grace() {
        let only_recreated = Graces { created: Duration::ZERO, ..GRACES };
        let old = "3734efb788e244631300a9d0ef26d97bff4a0ad74c4ebfdc7a74ad7e37b3f076";
        let recreated = Moment { created_nano: Some(NOW - 12 * S), replaces: Some(old), ..at(&[]) };
        assert_eq!(
            hold(&only_recreated, &recreated, |_| false).as_deref(),
            Some("deploy: compose recreated it 12 s ago, replacing 3734efb788e2 (grace 60 s)")
        );
        let by_name = Moment { replaces: Some("shop-web-1"), ..recreated };
        assert!(hold(&only_recreated, &by_name, |_| false).unwrap().contains("replacing shop-web-1"));
        // A first creation is not a recreation; an old recreation is over.
        assert_eq!(hold(&only_recreated, &Moment { replaces: None, ..recreated }, |_| false), None);
        let long_ago = Moment { created_nano: Some(NOW - 61 * S), ..recreated };
        assert_eq!(hold(&only_recreated, &long_ago, |_| false), None);
        let off = Graces { recreated: Duration::ZERO, ..only_recreated };
        assert_eq!(hold(&off, &recreated, |_| false), None);
    }
}
