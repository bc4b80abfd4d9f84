//! The escalation ladder: what the gate does when a restart does not hold.
//!
//! Without a ladder a container that keeps failing is restarted until the
//! hourly cap opens its circuit breaker. With one (`hemostat.escalation`,
//! else `RESPONDER_ESCALATION`), say `restart,recreate,stop`, a request to
//! restart a container climbs one step each time the previous step did not
//! hold: a restart, then a fresh container from the same configuration,
//! then a stop and a page. Each step waits for the previous one's outcome
//! (its collector's `done:` marker, [`keys::COMMAND_DONE`]), so a step is
//! never taken before the collector verified (or failed) the one before.
//! The ladder's position ([`Rung`]) lives beside the breaker, in the
//! container's slot, and expires once the container has been quiet (its
//! cooldown, then the quiet period) since the last step: the next failure
//! starts at the bottom again.
//!
//! This module holds the decision ([`plan`]), a pure function of the
//! ladder, the last step and its outcome; `container.lua` takes it
//! atomically (after the refusals, the cooldown and an open breaker, in
//! place of the hourly cap) and writes the new [`Rung`].
//!
//! [`keys::COMMAND_DONE`]: crate::keys::COMMAND_DONE

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Action;

/// How long a step's outcome may take: its command is carried out within
/// its lifetime or refused as expired, and verified within minutes. A step
/// with no outcome after this never had one (its collector was down, or
/// refused the command before marking it), and counts as not held, so the
/// ladder does not wait until it expires.
pub const OUTCOME_PATIENCE_MS: i64 = crate::command::LIFETIME.as_millis() as i64 + 10 * 60 * 1000;

/// The most steps a ladder may have.
pub const MAX_STEPS: usize = 6;

/// What a ladder may hold.
const STEPS: [Action; 3] = [Action::Restart, Action::Recreate, Action::Stop];

/// The steps, in order; none is the ladder turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    steps: [Action; MAX_STEPS],
    len: u8,
}

impl Ladder {
    /// No ladder: restarts until the hourly cap opens the breaker.
    pub const OFF: Ladder = Ladder { steps: [Action::None; MAX_STEPS], len: 0 };

    /// `restart,recreate,stop`: steps among restart, recreate and stop
    /// (stop and page), comma-separated, stop only last; `off` (or empty)
    /// turns the ladder off.
    pub fn parse(text: &str) -> Result<Ladder, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(Ladder::OFF);
        }
        let mut ladder = Ladder::OFF;
        for word in text.split(',').map(str::trim) {
            let Some(step) = STEPS.iter().copied().find(|a| a.as_str().eq_ignore_ascii_case(word)) else {
                return Err(format!("{word:?} is not a step: expected restart, recreate or stop, comma-separated"));
            };
            if ladder.steps().last() == Some(&Action::Stop) {
                return Err("stop ends the ladder: no step may follow it".into());
            }
            if ladder.len as usize == MAX_STEPS {
                return Err(format!("at most {MAX_STEPS} steps"));
            }
            ladder.steps[ladder.len as usize] = step;
            ladder.len += 1;
        }
        Ok(ladder)
    }

    pub fn steps(&self) -> &[Action] {
        &self.steps[..self.len as usize]
    }

    pub fn is_off(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Ladder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let names: Vec<&str> = self.steps().iter().map(|a| a.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// The last step taken on a container: its [`crate::keys::ladder`] record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// 1 for the ladder's first step.
    pub step: usize,
    pub action: Action,
    /// The command that carried it out, whose marker says its outcome.
    pub command_id: String,
    /// When the gate allowed it (Redis' clock), epoch ms.
    pub at_ms: i64,
}

impl Rung {
    /// A record that does not parse reads as none: the bottom of the ladder.
    pub fn parse(raw: &str) -> Option<Rung> {
        serde_json::from_str(raw).ok()
    }
}

/// A step the gate allows, and how it is named in the audit, the command's
/// reason and the `remediation_complete` it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1 for the ladder's first step.
    pub number: usize,
    pub of: usize,
    pub action: Action,
    /// `escalation step 2/3: recreate after the restart at ... did not hold (failed)`.
    pub text: String,
}

impl Step {
    /// The last step: nothing is left to try after it.
    pub fn is_last(&self) -> bool {
        self.number == self.of
    }
}

/// What the ladder says about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No ladder, or not a restart: the gate decides as without one.
    Off,
    /// Take this step (instead of the action asked for).
    Take(Step),
    /// The last step's outcome is not reported yet: ask again later.
    Wait(String),
    /// Every step was taken and the last did not hold. `stopped`: the last
    /// step was a stop (and paged), so nothing more is done; else the
    /// circuit breaker opens, as without a ladder.
    Exhausted { reason: String, stopped: bool },
}

/// The ladder's decision for a request to `requested` a container, whose
/// last step was `rung` (none: the bottom, or quiet since) and whose
/// collector reported `outcome` for it (the status of its `done:` marker;
/// none while the marker is absent or says it is executing), at `now_ms`.
pub fn plan(ladder: &Ladder, requested: Action, rung: Option<&Rung>, outcome: Option<&str>, now_ms: i64) -> Plan {
    if ladder.is_off() || !matches!(requested, Action::Restart | Action::Recreate) {
        return Plan::Off;
    }
    let of = ladder.steps().len();
    let Some(rung) = rung else {
        let action = ladder.steps()[0];
        return Plan::Take(Step { number: 1, of, action, text: format!("escalation step 1/{of}: {action}") });
    };
    let at = chrono::DateTime::from_timestamp_millis(rung.at_ms)
        .map_or_else(|| rung.at_ms.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let overdue = format!("no outcome reported within {}s", OUTCOME_PATIENCE_MS / 1000);
    let outcome = match outcome {
        Some(outcome) => Some(outcome),
        None if now_ms.saturating_sub(rung.at_ms) > OUTCOME_PATIENCE_MS => Some(overdue.as_str()),
        None => None,
    };
    let Some(outcome) = outcome else {
        return Plan::Wait(format!(
            "escalation: step {}/{of} ({} at {at}, command {}) has no reported outcome yet; the next step waits for it",
            rung.step, rung.action, rung.command_id
        ));
    };
    let held = if outcome == "success" { "it was verified, then failed again" } else { outcome };
    if rung.step >= of {
        let done: Vec<&str> = ladder.steps().iter().map(|a| a.as_str()).collect();
        let stopped = rung.action == Action::Stop;
        let reason = if stopped {
            format!(
                "escalation ladder exhausted: {} taken, stopped at {at}; HemoStat does not act on it again until it has been quiet or an operator runs hemostat reset",
                done.join(", ")
            )
        } else {
            format!(
                "escalation ladder exhausted: {} taken, the {} at {at} did not hold ({held})",
                done.join(", "),
                rung.action
            )
        };
        return Plan::Exhausted { reason, stopped };
    }
    let number = rung.step + 1;
    let action = ladder.steps()[rung.step];
    Plan::Take(Step {
        number,
        of,
        action,
        text: format!(
            "escalation step {number}/{of}: {action} after the {} at {at} did not hold ({held})",
            rung.action
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minute after [`rung`]'s step.
    const NOW: i64 = 1_796_539_322_000;

    fn rung(step: usize, action: Action) -> Rung {
        // 2026-12-06T06:41:02Z
        Rung { step, action, command_id: "c1".into(), at_ms: 1_796_539_262_000 }
    }

    #[test]
    fn parses_what_users_write_and_names_what_it_refuses() {
        let l = Ladder::parse(" Restart, recreate ,STOP").unwrap();
        assert_eq!(l.steps(), [Action::Restart, Action::Recreate, Action::Stop]);
        assert_eq!(l.to_string(), "restart,recreate,stop");
        assert_eq!(Ladder::parse("restart,restart,recreate").unwrap().steps().len(), 3);
        for off in ["", "off", " OFF "] {
            assert!(Ladder::parse(off).unwrap().is_off(), "{off:?}");
        }
        assert_eq!(Ladder::OFF.to_string(), "off");
        let e = Ladder::parse("restart,reboot").unwrap_err();
        assert!(e.contains("\"reboot\" is not a step"), "{e}");
        assert!(Ladder::parse("restart,,stop").is_err());
        assert!(Ladder::parse("stop,restart").unwrap_err().contains("stop ends the ladder"));
        assert!(Ladder::parse("scale_up").is_err());
        assert!(Ladder::parse(&["restart"; MAX_STEPS + 1].join(",")).unwrap_err().contains("at most"));
    }

    #[test]
    fn climbs_one_step_after_each_reported_outcome() {
        let l = Ladder::parse("restart,recreate,stop").unwrap();
        let Plan::Take(first) = plan(&l, Action::Restart, None, None, NOW) else { panic!() };
        assert_eq!((first.number, first.of, first.action), (1, 3, Action::Restart));
        assert_eq!(first.text, "escalation step 1/3: restart");

        let Plan::Take(second) = plan(&l, Action::Restart, Some(&rung(1, Action::Restart)), Some("failed"), NOW) else {
            panic!()
        };
        assert_eq!((second.number, second.action, second.is_last()), (2, Action::Recreate, false));
        assert_eq!(
            second.text,
            "escalation step 2/3: recreate after the restart at 2026-12-06T06:41:02Z did not hold (failed)"
        );

        // A verified step that failed again later climbs too.
        let Plan::Take(third) = plan(&l, Action::Restart, Some(&rung(2, Action::Recreate)), Some("success"), NOW)
        else {
            panic!()
        };
        assert_eq!((third.number, third.action, third.is_last()), (3, Action::Stop, true));
        assert!(third.text.ends_with("did not hold (it was verified, then failed again)"), "{}", third.text);
    }

    #[test]
    fn a_step_without_an_outcome_for_too_long_did_not_hold() {
        let l = Ladder::parse("restart,recreate,stop").unwrap();
        let r = rung(1, Action::Restart);
        let patient = r.at_ms + OUTCOME_PATIENCE_MS;
        assert!(matches!(plan(&l, Action::Restart, Some(&r), None, patient), Plan::Wait(_)));
        let Plan::Take(next) = plan(&l, Action::Restart, Some(&r), None, patient + 1) else { panic!() };
        assert_eq!(next.action, Action::Recreate);
        assert!(next.text.ends_with("did not hold (no outcome reported within 900s)"), "{}", next.text);
    }

    #[test]
    fn waits_for_the_outcome_and_ends_at_the_top() {
        let l = Ladder::parse("restart,recreate,stop").unwrap();
        let Plan::Wait(why) = plan(&l, Action::Restart, Some(&rung(1, Action::Restart)), None, NOW) else { panic!() };
        assert!(
            why.contains("step 1/3 (restart at 2026-12-06T06:41:02Z, command c1) has no reported outcome"),
            "{why}"
        );

        let Plan::Exhausted { reason, stopped } =
            plan(&l, Action::Restart, Some(&rung(3, Action::Stop)), Some("success"), NOW)
        else {
            panic!()
        };
        assert!(
            stopped && reason.starts_with("escalation ladder exhausted: restart, recreate, stop taken"),
            "{reason}"
        );

        // Without a stop at the top, the breaker takes over.
        let l = Ladder::parse("restart,recreate").unwrap();
        let Plan::Exhausted { reason, stopped } =
            plan(&l, Action::Restart, Some(&rung(2, Action::Recreate)), Some("failed"), NOW)
        else {
            panic!()
        };
        assert!(!stopped && reason.ends_with("the recreate at 2026-12-06T06:41:02Z did not hold (failed)"), "{reason}");

        // A ladder shortened since the last step: exhausted by the new one.
        let short = Ladder::parse("restart").unwrap();
        assert!(matches!(
            plan(&short, Action::Restart, Some(&rung(2, Action::Recreate)), Some("failed"), NOW),
            Plan::Exhausted { stopped: false, .. }
        ));
    }

    #[test]
    fn off_or_not_a_restart_leaves_the_gate_as_it_was() {
        let l = Ladder::parse("restart,recreate,stop").unwrap();
        assert_eq!(plan(&Ladder::OFF, Action::Restart, None, None, NOW), Plan::Off);
        for other in [Action::Stop, Action::ScaleUp, Action::Cleanup, Action::Start] {
            assert_eq!(plan(&l, other, Some(&rung(1, Action::Restart)), Some("failed"), NOW), Plan::Off, "{other}");
        }
        // A recreate asked for is restart-class: on the ladder.
        assert!(matches!(plan(&l, Action::Recreate, None, None, NOW), Plan::Take(_)));
        assert_eq!(Rung::parse("not json"), None);
        let r = rung(2, Action::Recreate);
        assert_eq!(Rung::parse(&serde_json::to_string(&r).unwrap()), Some(r));
    }
}
