//! Restart loops: a container started again after dying, too often.
//!
//! Pure, on Docker's own event times. A `start` counts as a restart when
//! the container died before (a first start is not a restart); restarts
//! the collector itself caused are not counted (the caller says so). One
//! report per loop: re-armed once the window holds no more than the
//! allowed restarts again.

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRule {
    /// More restarts than this within the window is a loop.
    pub max: u32,
    pub window_nanos: i64,
}

#[derive(Debug, Default)]
struct History {
    died: bool,
    starts: VecDeque<i64>,
    reported: bool,
}

#[derive(Debug, Default)]
pub struct Restarts {
    by_id: HashMap<String, History>,
}

impl Restarts {
    pub fn died(&mut self, id: &str) {
        self.by_id.entry(id.to_owned()).or_default().died = true;
    }

    /// A start at `time_nano`; returns the restarts in the window when
    /// that makes a loop not reported yet.
    pub fn started(&mut self, id: &str, time_nano: i64, ours: bool, rule: &RestartRule) -> Option<u32> {
        let h = self.by_id.entry(id.to_owned()).or_default();
        let restart = std::mem::take(&mut h.died) && !ours;
        while h.starts.front().is_some_and(|t| *t < time_nano - rule.window_nanos) {
            h.starts.pop_front();
        }
        if restart {
            h.starts.push_back(time_nano);
        }
        // Bounded: only the count above the limit matters.
        while h.starts.len() > rule.max as usize + 1 {
            h.starts.pop_front();
        }
        let count = h.starts.len() as u32;
        if count <= rule.max {
            h.reported = false;
            return None;
        }
        if h.reported {
            return None;
        }
        h.reported = true;
        Some(count)
    }

    pub fn forget(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const RULE: RestartRule = RestartRule { max: 3, window_nanos: 300 * S };

    fn cycle(r: &mut Restarts, t: i64) -> Option<u32> {
        r.died("c");
        r.started("c", t, false, &RULE)
    }

    #[test]
    fn a_loop_is_reported_once() {
        let mut r = Restarts::default();
        assert_eq!(r.started("c", 0, false, &RULE), None, "first start");
        let got: Vec<Option<u32>> = (1..=8).map(|i| cycle(&mut r, i * S)).collect();
        assert_eq!(got, [None, None, None, Some(4), None, None, None, None]);
    }

    #[test]
    fn slow_restarts_and_own_restarts_are_not_a_loop() {
        let mut r = Restarts::default();
        for i in 0..10 {
            assert_eq!(cycle(&mut r, i * 120 * S), None);
        }
        let mut r = Restarts::default();
        for i in 0..10 {
            r.died("c");
            assert_eq!(r.started("c", i * S, true, &RULE), None);
        }
    }

    #[test]
    fn rearms_after_the_loop_stops() {
        let mut r = Restarts::default();
        let first: Vec<_> = (0..5).filter_map(|i| cycle(&mut r, i * S)).collect();
        assert_eq!(first, [4]);
        // Quiet for longer than the window, then a new loop.
        let second: Vec<_> = (0..5).filter_map(|i| cycle(&mut r, 1000 * S + i * S)).collect();
        assert_eq!(second, [4]);
    }
}
