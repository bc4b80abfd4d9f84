//! What a container's collector writes about it (its registry's
//! membership, stats and facts), for tests that play the collector: the
//! gate acts only on containers a collector reports.

use hemostat_protocol::{
    ContainerRef,
    connection::Connection,
    facts::{self, Observed},
    keys,
    policy::Policy,
};

/// Reports `c` (image `image`, labels that make `policy`) as its collector
/// would: a member of the fleet, its stats, its facts.
pub async fn report_container(conn: &Connection, c: &ContainerRef, image: &str, policy: Policy) {
    let mut conn = conn.clone();
    let id = format!("{:0>64}", hex_of(&c.key()));
    let observed = Observed { id, image: Some(image.to_owned()), policy, ..Observed::default() };
    let mut pipe = redis::pipe();
    pipe.sadd(keys::CONTAINERS, c.key()).ignore();
    let stats = serde_json::json!({"name": c.name, "status": "exited", "image": image});
    pipe.set_ex(keys::stats(c), stats.to_string(), keys::STATS_TTL.as_secs()).ignore();
    facts::observe(&mut pipe, c, &observed).expect("facts serialise");
    let () = pipe.query_async(&mut conn).await.unwrap_or_else(|e| panic!("reporting {c}: {e}"));
}

/// A stable fake container id for a name.
fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect::<String>().chars().rev().take(64).collect()
}
