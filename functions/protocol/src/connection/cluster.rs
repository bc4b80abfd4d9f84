//! How a cluster connection routes what it sends: a command by its first
//! key, a pipeline split into one pipeline per master (by the slot map), a
//! transaction to its first key's master, following `MOVED` through a
//! failover.

use std::{collections::HashMap, time::Duration};

use redis::{
    Cmd, Pipeline, Value,
    aio::ConnectionLike,
    cluster_async::ClusterConnection,
    cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr},
};

use super::slot_map::SlotCache;
use crate::slot::key_slot;

/// A cluster sends a pipeline to one node, so a plain pipeline over keys on
/// several masters is split into one pipeline per master (by a slot map of
/// our own, refreshed when it proves stale), sent concurrently, and the
/// replies put back in order; a command that meets `MOVED` anyway (a slot
/// moved since) is sent again alone, which the client redirects. A
/// transaction goes to its first key's master as it is: its keys must share
/// a slot (the server says `CROSSSLOT` otherwise); after a failover it is
/// retried once the client has learned the slot's new master.
pub(super) async fn cluster_pipeline(
    slots: &SlotCache,
    mut conn: ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    // Each command's routing key and its slot, computed once.
    let keys: Vec<Option<(&[u8], u16)>> = pipeline.cmd_iter().map(|c| first_key(c).map(|k| (k, key_slot(k)))).collect();
    let Some((first, first_slot)) = keys.iter().flatten().next().copied() else {
        return conn.req_packed_commands(pipeline, offset, count).await;
    };
    if pipeline.is_transaction() || keys.iter().flatten().all(|&(_, slot)| slot == first_slot) {
        let mut route = route_to(first);
        let mut attempt = 0;
        loop {
            match conn.route_pipeline(pipeline.clone(), offset, count, route.clone()).await {
                Err(e) if attempt < 4 && redirected(&e) => {
                    attempt += 1;
                    // The client does not follow a MOVED that aborted a
                    // transaction: follow it here, to the node it names.
                    route = match moved_to(&e.to_string()) {
                        Some((host, port)) => SingleNodeRoutingInfo::ByAddress { host, port },
                        None => {
                            learn_owner(&mut conn, first).await;
                            route_to(first)
                        }
                    };
                }
                other => return other,
            }
        }
    }
    let map = slots.get(&mut conn).await;
    // Keyless commands (PUBLISH) ride with the first key's pipeline.
    let node_of = |slot: u16| match &map {
        Some(map) => map.node_of(slot),
        None => usize::from(slot),
    };
    let mut groups: HashMap<usize, (&[u8], Vec<usize>)> = HashMap::new();
    for (i, routed) in keys.iter().enumerate() {
        let (key, slot) = routed.unwrap_or((first, first_slot));
        groups.entry(node_of(slot)).or_insert_with(|| (key, Vec::new())).1.push(i);
    }
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let parts = groups.into_values().map(|(key, indices)| {
        let mut conn = conn.clone();
        let mut part = redis::pipe();
        for &i in &indices {
            part.add_command(commands[i].clone());
        }
        async move {
            let replies = conn.route_pipeline(part, 0, indices.len(), route_to(key)).await?;
            Ok::<_, redis::RedisError>(indices.into_iter().zip(replies).collect::<Vec<_>>())
        }
    });
    let mut replies = vec![Value::Nil; commands.len()];
    let mut stale = false;
    for part in futures::future::try_join_all(parts).await? {
        for (i, reply) in part {
            if let Value::ServerError(e) = &reply
                && matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN")
            {
                stale = true;
                replies[i] = conn.req_packed_command(commands[i]).await?;
            } else {
                replies[i] = reply;
            }
        }
    }
    if stale {
        slots.forget();
    }
    Ok(replies)
}

pub(super) fn route_to(key: &[u8]) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master))
}

/// A redirection or a cluster in the middle of a failover.
fn redirected(e: &redis::RedisError) -> bool {
    if e.is_cluster_error() {
        return true;
    }
    // A transaction aborted by MOVED reports it inside its message.
    let text = e.to_string();
    ["Moved", "MOVED", "Ask:", "TryAgain", "ClusterDown"].iter().any(|w| text.contains(w))
}

/// The node a `MOVED` (or `ASK`) in an error's text points to.
fn moved_to(text: &str) -> Option<(String, u16)> {
    let at = text.rfind("Moved: ").map(|i| i + 7).or_else(|| text.rfind("MOVED ").map(|i| i + 6))?;
    let mut words = text[at..].split_whitespace();
    let _slot = words.next()?;
    let addr = words.next()?.trim_end_matches(|c: char| !c.is_ascii_digit());
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Makes the client learn who serves `key` now: a plain command follows
/// `MOVED` and refreshes the client's slot map.
async fn learn_owner(conn: &mut ClusterConnection, key: &[u8]) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: redis::RedisResult<Value> = conn.req_packed_command(redis::cmd("EXISTS").arg(key)).await;
}

/// The key a command is routed by, for the commands HemoStat sends: the
/// first key after the command name, after `numkeys` for scripts, after
/// `STREAMS` for stream reads; `None` for commands without one.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    // Sent for every command of every cluster pipeline: no allocation.
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()?;
    let is = |names: &[&[u8]]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
    if is(&[b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL"]) {
        let _script = args.next()?;
        let numkeys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
        if numkeys == 0 { None } else { args.next() }
    } else if is(&[b"XREAD", b"XREADGROUP"]) {
        args.skip_while(|a| !a.eq_ignore_ascii_case(b"STREAMS")).nth(1)
    } else if is(&[b"XINFO", b"XGROUP", b"OBJECT", b"MEMORY"]) {
        // A subcommand first (`XINFO GROUPS <key>`, `XGROUP CREATE <key>`).
        args.nth(1)
    } else if is(&[
        b"PUBLISH",
        b"PING",
        b"INFO",
        b"SCRIPT",
        b"MULTI",
        b"EXEC",
        b"TIME",
        b"FLUSHALL",
        b"FLUSHDB",
        b"DBSIZE",
        b"CLUSTER",
        b"CLIENT",
        b"CONFIG",
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
    ]) {
        None
    } else {
        args.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_node_a_moved_names() {
        let text = "Transaction aborted: [(Index 0, error: Moved: 7124 127.0.0.1:44927), (Index 1, error: Moved: 7124 127.0.0.1:44927)]";
        assert_eq!(moved_to(text), Some(("127.0.0.1".into(), 44927)));
        assert_eq!(moved_to("MOVED 3999 127.0.0.1:6381"), Some(("127.0.0.1".into(), 6381)));
        assert_eq!(moved_to("Connection refused"), None);
    }

    #[test]
    fn routes_by_the_first_key() {
        let key = |c: &Cmd| first_key(c).map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(key(redis::cmd("SET").arg("a").arg(1)), Some("a".into()));
        assert_eq!(key(redis::cmd("EVALSHA").arg("abc").arg(2).arg("k1").arg("k2")), Some("k1".into()));
        assert_eq!(key(redis::cmd("EVAL").arg("return 1").arg(0)), None);
        assert_eq!(
            key(redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg("s")
                .arg(">")),
            Some("s".into())
        );
        assert_eq!(key(redis::cmd("PUBLISH").arg("ch").arg("m")), None);
        assert_eq!(key(redis::cmd("XINFO").arg("GROUPS").arg("s")), Some("s".into()));
        assert_eq!(key(redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("0")), Some("s".into()));
    }
}
