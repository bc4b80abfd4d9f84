//! What the benchmark binaries share: wall-clock and stream-id times, and
//! percentiles.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in epoch milliseconds (fractional).
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// When Redis took a stream entry: the milliseconds of its id (`ms-seq`).
pub fn id_ms(id: &str) -> f64 {
    id.split('-').next().and_then(|ms| ms.parse::<f64>().ok()).unwrap_or(0.0)
}

/// Stream ids compare as (milliseconds, sequence).
pub fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Nearest-rank percentile `p` (0 to 1) of sorted values; `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_and_ids() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!((percentile(&v, 0.5), percentile(&v, 0.99), percentile(&v, 0.0)), (Some(5), Some(10), Some(1)));
        assert_eq!(percentile::<u8>(&[], 0.5), None);
        assert_eq!(id_key("17-3"), (17, 3));
        assert!(id_key("17-3") < id_key("17-10"));
        assert_eq!(id_ms("1700000000000-0"), 1_700_000_000_000.0);
    }
}
