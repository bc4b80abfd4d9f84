//! CPU and memory thresholds with a sustain window and hysteresis.
//!
//! Pure: values and times in, breaches out. A value must stay above the
//! threshold for the whole sustain window before it is a breach (a
//! one-second spike is normal life for a container); once reported, a
//! breach is not repeated while the value stays high, and the gauge re-arms
//! only after the value stayed below `threshold - margin` for the clear
//! window, so a value hovering at the threshold does not flap.

use hemostat_protocol::event::Severity;

/// Above this, whatever the threshold, the seed calls it critical.
pub const CRITICAL_PERCENT: f64 = 95.0;

/// One metric's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Percent above which the value is high.
    pub threshold: f64,
    /// Seconds the value must stay above the threshold to be a breach.
    pub sustain: f64,
    /// Seconds the value must stay below `threshold - margin` to re-arm.
    pub clear: f64,
    /// Percentage points below the threshold that count as recovered.
    pub margin: f64,
}

/// A sustained breach, to be published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breach {
    pub severity: Severity,
    pub actual: f64,
    pub threshold: f64,
    /// How long the value has been above the threshold.
    pub sustained: f64,
    /// The rule's sustain window: what "sustained" meant for this breach.
    pub sustain: f64,
}

/// The state of one metric of one container.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauge {
    above_since: Option<f64>,
    critical_since: Option<f64>,
    below_since: Option<f64>,
    /// The severity last reported; None when armed.
    reported: Option<Severity>,
}

impl Gauge {
    /// Feeds the value measured at `now` (seconds, any monotonic origin).
    /// Returns a breach when one starts, or when a reported high breach
    /// has since been sustained at critical (an escalation the analyzer
    /// acts on differently).
    pub fn observe(&mut self, value: f64, now: f64, rule: &Rule) -> Option<Breach> {
        let critical = CRITICAL_PERCENT.max(rule.threshold);
        if value > rule.threshold {
            self.above_since.get_or_insert(now);
        } else {
            self.above_since = None;
        }
        if value > critical {
            self.critical_since.get_or_insert(now);
        } else {
            self.critical_since = None;
        }
        if let Some(reported) = self.reported {
            if value < rule.threshold - rule.margin {
                let since = *self.below_since.get_or_insert(now);
                if now - since >= rule.clear {
                    self.reported = None;
                    self.below_since = None;
                }
            } else {
                self.below_since = None;
            }
            let escalated =
                reported < Severity::Critical && self.critical_since.is_some_and(|t| now - t >= rule.sustain);
            if !escalated {
                return None;
            }
        }
        let since = self.above_since?;
        if now - since < rule.sustain {
            return None;
        }
        // Critical only if sustained at critical: one peak inside a high
        // window does not make the whole episode critical.
        let severity = if self.critical_since.is_some_and(|t| now - t >= rule.sustain) {
            Severity::Critical
        } else {
            Severity::High
        };
        self.reported = Some(severity);
        self.below_since = None;
        Some(Breach {
            severity,
            actual: value,
            threshold: rule.threshold,
            sustained: now - since,
            sustain: rule.sustain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { threshold: 85.0, sustain: 5.0, clear: 10.0, margin: 10.0 };

    /// Feeds one value per second; returns (second, breach) pairs.
    fn run(values: &[f64]) -> Vec<(usize, Breach)> {
        let mut g = Gauge::default();
        values.iter().enumerate().filter_map(|(t, v)| g.observe(*v, t as f64, &RULE).map(|b| (t, b))).collect()
    }

    #[test]
    fn a_spike_is_not_a_breach() {
        assert!(run(&[10.0, 99.0, 99.0, 10.0, 10.0, 99.0, 99.0, 99.0, 10.0]).is_empty());
    }

    #[test]
    fn sustained_high_is_reported_once() {
        let b = run(&[90.0; 30]);
        assert_eq!(b.len(), 1, "{b:?}");
        let (t, breach) = b[0];
        assert_eq!(t, 5);
        assert_eq!(breach.severity, Severity::High);
        assert_eq!((breach.actual, breach.threshold, breach.sustained), (90.0, 85.0, 5.0));
    }

    #[test]
    fn escalates_to_critical_once() {
        let mut v = vec![90.0; 8];
        v.extend([99.0; 10]);
        let b = run(&v);
        let sev: Vec<Severity> = b.iter().map(|(_, b)| b.severity).collect();
        assert_eq!(sev, [Severity::High, Severity::Critical]);
    }

    #[test]
    fn clears_only_after_staying_below_the_margin() {
        // High, then hovering just under the threshold (no clear), high again:
        // still the same episode.
        let mut v = vec![90.0; 6];
        v.extend([80.0; 20]);
        v.extend([90.0; 10]);
        assert_eq!(run(&v).len(), 1);
        // High, then well below for the clear window, then high again: a new
        // episode.
        let mut v = vec![90.0; 6];
        v.extend([50.0; 11]);
        v.extend([90.0; 10]);
        let b = run(&v);
        assert_eq!(b.len(), 2, "{b:?}");
        // Below for less than the clear window: not re-armed.
        let mut v = vec![90.0; 6];
        v.extend([50.0; 5]);
        v.extend([90.0; 10]);
        assert_eq!(run(&v).len(), 1);
    }
}
