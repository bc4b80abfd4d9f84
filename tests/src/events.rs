//! Reading HemoStat's durable streams back, as the tests' evidence.

use hemostat_protocol::{Envelope, EventKind, event::RemediationComplete, publisher::ENVELOPE_FIELD};
use redis::{AsyncCommands, streams::StreamRangeReply};
use serde::de::DeserializeOwned;

/// Every event of `kind` in its durable stream, oldest first, with the time
/// Redis took it (ms, from the entry id) and its `data` decoded as `T`.
/// Entries that are not such events are skipped, and an unreachable Redis
/// reads as empty: callers poll until what they wait for is there, also
/// across a Redis restart.
pub async fn stream_events<T: DeserializeOwned>(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    kind: EventKind,
) -> Vec<(u64, T)> {
    let reply: StreamRangeReply = conn.xrange_all(kind.stream()).await.unwrap_or_default();
    reply
        .ids
        .iter()
        .filter_map(|e| {
            let ms = e.id.split('-').next()?.parse().ok()?;
            let json: String = e.get(ENVELOPE_FIELD)?;
            let data = Envelope::parse(json.as_bytes()).ok()?.data_of::<T>(kind).ok()?;
            Some((ms, data))
        })
        .collect()
}

/// The `remediation_complete`s of the container named `name`, oldest first.
pub async fn outcomes_for(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    name: &str,
) -> Vec<RemediationComplete> {
    stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| c.container == name)
        .collect()
}

/// Crashes `container` (a [`crate::container::CRASH_ON_USR1`] one with no
/// restart policy), then waits for the collector, alone (no control plane),
/// to heal it at the edge: one verified, successful outcome decided there,
/// and the container running again since a later start. `log` is the
/// collector's log, shown when it did not.
pub async fn crash_and_expect_edge_heal(
    container: &crate::TestContainer,
    conn: &(impl redis::aio::ConnectionLike + Clone + Send + Sync),
    log: impl Fn() -> String,
) {
    use bollard::models::ContainerStateStatusEnum;
    use hemostat_protocol::event::{DECIDED_AT_THE_EDGE, RemediationStatus};
    use std::time::Duration;

    let before = container.state().await.started_at.unwrap_or_default();
    container.kill("USR1").await;
    container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    // Its restart policy is `no`: only the collector can start it again.
    let healed = crate::wait_for(Duration::from_secs(30), || async {
        outcomes_for(&mut conn.clone(), container.name()).await.into_iter().next()
    })
    .await;
    let healed = healed.unwrap_or_else(|| panic!("no outcome; collector:\n{}", log()));
    assert_eq!(healed.context.analysis_method.as_deref(), Some(DECIDED_AT_THE_EDGE), "{healed:?}");
    assert_eq!(healed.result.status, RemediationStatus::Success, "{healed:?}\n{}", log());
    assert_eq!(healed.result.verified, Some(true), "{healed:?}");
    let state = container.state().await;
    assert_eq!(state.running, Some(true), "{state:?}");
    assert!(state.started_at.unwrap_or_default() > before, "not restarted");
}
