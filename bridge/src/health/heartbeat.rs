//! The heartbeat: every interval, each route's lag as Redis counts it,
//! written to this replica's heartbeat key, and the alerts people need
//! when records wait too long or were given up as stale.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hemostat_protocol::{
    Envelope, EventKind,
    connection::Connection,
    envelope::agent,
    event::{Severity, SystemAlert},
    keys,
    liveness::{BridgeHeartbeat, RouteProgress},
    publisher::{Publisher, RedisPublisher},
};
use redis::{AsyncCommands, streams::StreamInfoGroupsReply};
use tokio::sync::watch;

use super::Health;
use crate::Config;

/// How long one replica's lag alert for a stream silences the others' (and
/// its own next ones): one alert per episode, repeated while it lasts.
const LAG_ALERT_EVERY: Duration = Duration::from_secs(600);
/// Replicas not heard of for this long leave the replica set.
const REPLICA_FORGOTTEN_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Beats until `stop`.
pub(crate) async fn run(health: Arc<Health>, conn: Connection, config: Config, mut stop: watch::Receiver<bool>) {
    let publisher = RedisPublisher::new(conn.clone());
    let mut stale_reported = 0;
    let mut tick = tokio::time::interval(config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let heartbeat = beat(&health, &conn).await;
        if let Err(e) = write(&conn, &heartbeat, config.heartbeat_interval).await {
            tracing::warn!(error = %e, "could not write the bridge's heartbeat");
        }
        for route in &heartbeat.routes {
            if let Some(why) = lagging(route, &config) {
                alert_lag(&conn, &publisher, &heartbeat.consumer, route, &why).await;
            }
        }
        let stale = heartbeat.totals.stale;
        if stale > stale_reported {
            let alert = SystemAlert {
                kind: SystemAlert::STALE_DEAD_LETTERED.into(),
                severity: Severity::Critical,
                host: heartbeat.consumer.clone(),
                message: format!(
                    "{} record(s) were dead-lettered as stale (older than {}s) by bridge {}: incidents nobody acted \
                     on. `hemostat dead-letters list` shows them, `replay` sends them again.",
                    stale - stale_reported,
                    config.max_age_seconds,
                    heartbeat.consumer
                ),
                last_seen: None,
                missing_for_seconds: None,
                container: None,
                approval: None,
            };
            if publish(&publisher, &alert).await {
                stale_reported = stale;
            }
        }
        if heartbeat.healthy {
            tracing::debug!(routes = heartbeat.routes.len(), "bridge heartbeat");
        } else {
            tracing::warn!(problems = ?health.problems(), "bridge unhealthy");
        }
        health.remember(heartbeat);
    }
}

/// The heartbeat now: each route's lag, pending count and oldest waiting
/// record from Redis (unknown when Redis cannot say).
async fn beat(health: &Health, conn: &Connection) -> BridgeHeartbeat {
    let now = now_ms();
    let mut lags = Vec::with_capacity(health.routes.len());
    for (binding, _) in &health.routes {
        lags.push(lag(conn, &binding.stream, &binding.group, now).await.unwrap_or_else(|e| {
            tracing::debug!(stream = %binding.stream, error = %e, "could not read the group's lag");
            (None, 0, None)
        }));
    }
    health.heartbeat(lags, now)
}

/// `(lag, pending, oldest waiting seconds)` of `group` on `stream`.
async fn lag(
    conn: &Connection,
    stream: &str,
    group: &str,
    now: u64,
) -> Result<(Option<u64>, u64, Option<u64>), redis::RedisError> {
    let mut conn = conn.clone();
    let groups: StreamInfoGroupsReply = conn.xinfo_groups(stream).await?;
    let Some(info) = groups.groups.into_iter().find(|g| g.name == group) else {
        return Ok((None, 0, None));
    };
    // The first record after the last one delivered to the group: the
    // oldest still waiting to be read.
    let next: redis::streams::StreamRangeReply =
        conn.xrange_count(stream, format!("({}", info.last_delivered_id), "+", 1).await?;
    let oldest = next.ids.first().and_then(|e| e.id.split('-').next()?.parse::<u64>().ok());
    let lag = info.lag.map(|l| l as u64).or_else(|| oldest.is_none().then_some(0));
    Ok((lag, info.pending as u64, oldest.map(|ms| now.saturating_sub(ms) / 1000)))
}

async fn write(conn: &Connection, heartbeat: &BridgeHeartbeat, interval: Duration) -> Result<(), redis::RedisError> {
    let json = serde_json::to_string(heartbeat).unwrap_or_default();
    let ttl = (interval * 3).as_secs().max(1);
    let mut conn = conn.clone();
    let () = conn.set_ex(keys::bridge_heartbeat(&heartbeat.consumer), json, ttl).await?;
    let () = conn.zadd(keys::BRIDGES, &heartbeat.consumer, heartbeat.at_ms).await?;
    let forget = heartbeat.at_ms.saturating_sub(REPLICA_FORGOTTEN_AFTER.as_millis() as u64);
    let () = conn.zrembyscore(keys::BRIDGES, 0, forget).await?;
    Ok(())
}

/// Why `route` calls for an alert, if it does.
fn lagging(route: &RouteProgress, config: &Config) -> Option<String> {
    if let Some(lag) = route.lag.filter(|l| config.lag_alert > 0 && *l >= config.lag_alert) {
        return Some(format!("{lag} records wait (alert at {})", config.lag_alert));
    }
    let wait = config.wait_alert.as_secs();
    route
        .oldest_waiting_seconds
        .filter(|s| wait > 0 && *s >= wait)
        .map(|s| format!("the oldest has waited {s}s (alert at {wait}s)"))
}

/// One alert per stream and episode across replicas (`SET NX`).
async fn alert_lag(conn: &Connection, publisher: &RedisPublisher, consumer: &str, route: &RouteProgress, why: &str) {
    let mut c = conn.clone();
    let first: Result<Option<String>, _> = redis::cmd("SET")
        .arg(keys::bridge_alerted(&route.stream))
        .arg(consumer)
        .arg("NX")
        .arg("EX")
        .arg(LAG_ALERT_EVERY.as_secs())
        .query_async(&mut c)
        .await;
    if !matches!(first, Ok(Some(_))) {
        return;
    }
    let alert = SystemAlert {
        kind: SystemAlert::BRIDGE_LAG.into(),
        severity: Severity::High,
        host: consumer.to_owned(),
        message: format!(
            "{} is not keeping up with {}: {why}; {} pending. Alerts wait with them.",
            route.function, route.stream, route.pending
        ),
        last_seen: None,
        missing_for_seconds: None,
        container: None,
        approval: None,
    };
    publish(publisher, &alert).await;
}

async fn publish(publisher: &RedisPublisher, alert: &SystemAlert) -> bool {
    let env = match Envelope::new(agent::BRIDGE, EventKind::SystemAlert, alert) {
        Ok(env) => env,
        Err(e) => {
            tracing::error!(error = %e, "could not encode a system alert");
            return false;
        }
    };
    match publisher.publish(&env).await {
        Ok(_) => {
            tracing::warn!(kind = %alert.kind, message = %alert.message, "system alert");
            true
        }
        Err(e) => {
            tracing::warn!(kind = %alert.kind, error = %e, "could not publish a system alert; trying again next beat");
            false
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
