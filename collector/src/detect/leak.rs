//! Memory leak detection: steady growth that will hit the limit soon.
//!
//! A least-squares line through the memory samples of a sliding window.
//! It is a leak when the slope is positive, the line explains the samples
//! well (R² high: growth is steady, not noise), memory never fell back
//! much inside the window (a garbage-collected heap grows and drops in a
//! sawtooth, which is healthy), and at that slope the limit is reached
//! within the horizon. That fires minutes before a threshold would, while
//! there is still time to act gracefully.

use std::collections::VecDeque;

/// Below this R², growth is too irregular to call a leak.
pub const MIN_R2: f64 = 0.8;
/// Once reported, re-armed when the trend is gone: slope not positive or
/// R² below this.
pub const REARM_R2: f64 = 0.5;
/// A fall of more than this fraction of the window's range is a release
/// (GC, cache drop): the container manages its memory.
pub const MAX_DRAWDOWN: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakRule {
    /// Samples in the window (the window's duration is this times the
    /// sampling interval).
    pub window: usize,
    /// Seconds: report when the limit would be reached sooner than this.
    pub horizon: f64,
}

/// A detected leak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leak {
    /// Growth, bytes per second.
    pub slope: f64,
    pub r2: f64,
    /// Seconds until the fitted line reaches the limit.
    pub time_to_limit: f64,
    /// The fitted usage now, bytes.
    pub fitted: f64,
}

/// A line fitted by least squares: slope, value at the last x, and R².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub last: f64,
    pub r2: f64,
}

pub fn fit(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<Fit> {
    let n = points.clone().count() as f64;
    if n < 3.0 {
        return None;
    }
    let (sx, sy) = points.clone().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy, mut syy, mut last_x) = (0.0, 0.0, 0.0, 0.0);
    for (x, y) in points {
        let (dx, dy) = (x - mx, y - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
        last_x = x;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    // A perfectly flat series is explained perfectly but has no trend.
    let r2 = if syy <= 0.0 { 0.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(Fit { slope, last: my + slope * (last_x - mx), r2 })
}

/// The largest fall from a running peak, as a fraction of the range.
fn drawdown(values: impl Iterator<Item = f64>) -> f64 {
    let (mut peak, mut lo, mut hi, mut worst) = (f64::MIN, f64::MAX, f64::MIN, 0.0f64);
    for v in values {
        peak = peak.max(v);
        lo = lo.min(v);
        hi = hi.max(v);
        worst = worst.max(peak - v);
    }
    if hi > lo { worst / (hi - lo) } else { 0.0 }
}

/// The window of one container. Samples are (seconds, bytes) as f32 pairs
/// (8 bytes each): a few KiB per container even with long windows, and
/// f32's precision (1 part in 16 million) is ample for a trend.
#[derive(Debug, Default)]
pub struct LeakDetector {
    samples: VecDeque<(f32, f32)>,
    /// Time origin of the samples, so f32 seconds stay precise.
    origin: Option<f64>,
    reported: bool,
}

impl LeakDetector {
    /// Feeds memory in use at `now` (seconds) against `limit` (bytes).
    /// Returns a leak when one is first seen; not again until the trend
    /// has gone.
    pub fn observe(&mut self, now: f64, used: u64, limit: u64, rule: &LeakRule) -> Option<Leak> {
        let origin = *self.origin.get_or_insert(now);
        if self.samples.len() >= rule.window.max(3) {
            self.samples.pop_front();
        }
        self.samples.push_back(((now - origin) as f32, used as f32));
        if self.samples.len() < rule.window.max(3) {
            return None;
        }
        let points = self.samples.iter().map(|&(t, v)| (t as f64, v as f64));
        let fit = fit(points.clone())?;
        if self.reported {
            if fit.slope <= 0.0 || fit.r2 < REARM_R2 {
                self.reported = false;
            }
            return None;
        }
        if fit.slope <= 0.0 || fit.r2 < MIN_R2 || limit == 0 {
            return None;
        }
        if drawdown(points.map(|(_, v)| v)) > MAX_DRAWDOWN {
            return None;
        }
        let time_to_limit = ((limit as f64 - fit.last) / fit.slope).max(0.0);
        if time_to_limit > rule.horizon {
            return None;
        }
        self.reported = true;
        Some(Leak { slope: fit.slope, r2: fit.r2, time_to_limit, fitted: fit.last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;
    const LIMIT: u64 = 512 << 20;
    const RULE: LeakRule = LeakRule { window: 120, horizon: 600.0 };

    /// Deterministic noise in [-1, 1] (no rand dependency).
    fn noise(i: usize) -> f64 {
        let x = (i as u64).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((x >> 33) as f64 / (1u64 << 31) as f64) - 1.0
    }

    fn feed(series: impl Fn(usize) -> f64, n: usize) -> Vec<(usize, Leak)> {
        let mut d = LeakDetector::default();
        (0..n).filter_map(|i| d.observe(i as f64, series(i).max(0.0) as u64, LIMIT, &RULE).map(|l| (i, l))).collect()
    }

    #[test]
    fn steady_growth_is_a_leak_reported_once() {
        // 100 MB, +0.5 MB/s with 1 MB noise: limit in ~13 min at first,
        // inside the 10 min horizon after a few minutes.
        let leaks = feed(|i| 100.0 * MB + 0.5 * MB * i as f64 + noise(i) * MB, 600);
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        let (at, leak) = leaks[0];
        assert!(leak.time_to_limit <= 600.0 && leak.r2 > 0.9, "{leak:?}");
        assert!((leak.slope / MB - 0.5).abs() < 0.05, "{leak:?}");
        // Reported well before the container crossed 80 % of its limit.
        let used = 100.0 * MB + 0.5 * MB * at as f64;
        assert!(used < 0.8 * LIMIT as f64, "reported at {at}s, {used} bytes");
    }

    #[test]
    fn slow_growth_far_from_the_limit_is_not() {
        // +10 KB/s: hours to the limit.
        assert!(feed(|i| 100.0 * MB + 10_000.0 * i as f64, 600).is_empty());
    }

    #[test]
    fn noisy_flat_is_not() {
        assert!(feed(|i| 200.0 * MB + noise(i) * 20.0 * MB, 600).is_empty());
    }

    #[test]
    fn garbage_collected_sawtooth_is_not() {
        // Grows 2 MB/s for 40 s, then drops back: a GC cycle.
        assert!(feed(|i| 100.0 * MB + 2.0 * MB * (i % 40) as f64, 600).is_empty());
    }

    #[test]
    fn fit_is_least_squares() {
        let f = fit([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)].into_iter()).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-9 && (f.last - 5.0).abs() < 1e-9 && (f.r2 - 1.0).abs() < 1e-9);
        assert_eq!(fit([(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)].into_iter()).unwrap().r2, 0.0);
    }
}
