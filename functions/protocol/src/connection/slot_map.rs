//! Which master serves which slots, from `CLUSTER SLOTS`: to send one
//! pipeline per master, to know whether a write has a replica to wait for,
//! and to find every node of a cluster.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{Value, cluster_async::ClusterConnection, cluster_routing::SingleNodeRoutingInfo};

/// Slot ranges and the master serving each, from `CLUSTER SLOTS`.
pub(super) struct SlotMap {
    /// (first slot, last slot, node index), sorted.
    ranges: Vec<(u16, u16, usize)>,
    /// Per node index: how many replicas it has.
    replicas: Vec<usize>,
    fetched: Instant,
}

impl SlotMap {
    /// How long a map is trusted before it is asked for again.
    const TTL: Duration = Duration::from_secs(30);

    pub(super) fn replicas_of(&self, slot: u16) -> usize {
        self.replicas.get(self.node_of(slot)).copied().unwrap_or(0)
    }

    pub(super) fn node_of(&self, slot: u16) -> usize {
        let at = self.ranges.partition_point(|r| r.1 < slot);
        match self.ranges.get(at) {
            Some(&(start, _, node)) if start <= slot => node,
            // Not covered (a cluster mid-reshard): its own group.
            _ => usize::MAX - usize::from(slot),
        }
    }

    fn parse(reply: &Value) -> Option<SlotMap> {
        let Value::Array(entries) = reply else { return None };
        let mut nodes: Vec<(String, u16)> = Vec::new();
        let mut replicas = Vec::new();
        let mut ranges = Vec::new();
        for entry in entries {
            let Value::Array(fields) = entry else { return None };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let node = slot_node(master)?;
            let index = nodes.iter().position(|n| *n == node).unwrap_or_else(|| {
                nodes.push(node);
                replicas.push(0);
                nodes.len() - 1
            });
            replicas[index] = replicas[index].max(fields.len().saturating_sub(3));
            ranges.push((u16::try_from(*start).ok()?, u16::try_from(*end).ok()?, index));
        }
        ranges.sort_unstable();
        Some(SlotMap { ranges, replicas, fetched: Instant::now() })
    }
}

/// One node of a `CLUSTER SLOTS` range: `[host, port, id, ...]`.
fn slot_node(node: &Value) -> Option<(String, u16)> {
    let Value::Array(fields) = node else { return None };
    let host = match fields.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = fields.get(1)? else { return None };
    Some((host, u16::try_from(*port).ok()?))
}

/// The nodes a `CLUSTER SLOTS` reply names, each once: every range's
/// master, then the replicas. A node whose endpoint the cluster does not
/// know (`?` or empty) is left out.
pub(super) fn nodes_of_cluster_slots(reply: &Value) -> Vec<(String, u16)> {
    let Value::Array(entries) = reply else { return Vec::new() };
    let endpoint = |node: &Value| slot_node(node).filter(|(host, _)| !host.is_empty() && host != "?");
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for entry in entries {
        let Value::Array(fields) = entry else { continue };
        for (i, node) in fields.iter().enumerate().skip(2) {
            let Some(address) = endpoint(node) else { continue };
            let list = if i == 2 { &mut masters } else { &mut replicas };
            if !list.contains(&address) {
                list.push(address);
            }
        }
    }
    replicas.retain(|r| !masters.contains(r));
    masters.extend(replicas);
    masters
}

/// A connection's slot map, shared by its clones.
#[derive(Default)]
pub(super) struct SlotCache(Mutex<Option<Arc<SlotMap>>>);

impl SlotCache {
    /// The cached slot map, fetched again when older than [`SlotMap::TTL`] or
    /// found stale; `None` when the cluster does not answer `CLUSTER SLOTS`
    /// (then pipelines are split per slot: slower, still correct).
    pub(super) async fn get(&self, conn: &mut ClusterConnection) -> Option<Arc<SlotMap>> {
        if let Some(map) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && map.fetched.elapsed() < SlotMap::TTL
        {
            return Some(map.clone());
        }
        let routing = redis::cluster_routing::RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let reply = conn.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), routing).await.ok()?;
        let map = Arc::new(SlotMap::parse(&reply)?);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(map.clone());
        Some(map)
    }

    /// Drops the map, found stale (a slot moved): the next use fetches it again.
    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_map_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001), node(7004)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(7002)]),
        ]);
        assert_eq!(
            nodes_of_cluster_slots(&reply),
            [7001, 7000, 7002, 7004].map(|p| ("127.0.0.1".to_owned(), p)).to_vec(),
            "masters first, then replicas, each once"
        );
        let map = SlotMap::parse(&reply).unwrap();
        assert_eq!(map.node_of(0), map.node_of(5460));
        assert_ne!(map.node_of(5460), map.node_of(5461));
        assert_eq!(map.node_of(16383), map.node_of(10923));
        assert_eq!((map.replicas_of(6000), map.replicas_of(0)), (1, 0));
        assert!(SlotMap::parse(&Value::Int(1)).is_none());
    }
}
