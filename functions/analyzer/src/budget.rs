//! The hourly LLM call budget, shared by every analyzer instance: one
//! counter per clock hour (UTC), incremented atomically before each call.

use hemostat_protocol::connection::Connection;
use hemostat_protocol::keys;

use crate::error::AnalyzerError;

/// Counters outlive their hour a little, so a clock skew between instances
/// near the hour's end does not restart a count.
const COUNTER_TTL_SECS: u64 = 2 * 3600;

/// The counter's hour, `YYYYMMDDHH` (UTC), for a Unix time in ms.
pub fn hour_bucket(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default().format("%Y%m%d%H").to_string()
}

/// Takes one call from this hour's budget: `true` if it was available.
/// A refused attempt is counted too; it changes nothing, the hour is spent.
pub async fn take(conn: &mut Connection, max_per_hour: u64, now_ms: i64) -> Result<bool, AnalyzerError> {
    if max_per_hour == 0 {
        return Ok(false);
    }
    let key = keys::ai_calls(&hour_bucket(now_ms));
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(&key)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(COUNTER_TTL_SECS)
        .ignore()
        .query_async(conn)
        .await?;
    Ok(count <= max_per_hour)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hour_bucket_is_utc_hour() {
        // 2026-01-02T03:59:59.999Z
        assert_eq!(super::hour_bucket(1_767_326_399_999), "2026010203");
        assert_eq!(super::hour_bucket(1_767_326_400_000), "2026010204");
    }
}
