//! The namespace dependents of a recreated parent: their `NetworkMode`
//! names the old parent's id, which is gone, so Docker can neither restart
//! nor start them ("No such container"). Each is recreated from its own
//! configuration in the new parent's namespace (`container:<new id>`),
//! level by level: a dependent's own dependents join its new container.

use std::collections::HashMap;

use hemostat_protocol::{
    Action,
    event::{DependentResult, RemediationStatus},
};

use super::dependent::{Dependent, Tie};
use crate::act::actions::replace::Replacement;

/// Recreates each namespace dependent in `found` (level by level, in
/// creation order, as [`find`](super::find()) lists them) against the
/// container it joins: the parent, `parent_name`, now `new_parent_id`, or a
/// dependent recreated before it. One that joins a container that was not
/// recreated is left as it is; compose `depends_on` dependents are not
/// this function's (they keep their own network).
pub async fn rejoin(
    replacement: &Replacement<'_>,
    parent_name: &str,
    new_parent_id: &str,
    found: &[Dependent],
) -> Vec<DependentResult> {
    let mut new_ids: HashMap<&str, String> = HashMap::from([(parent_name, new_parent_id.to_owned())]);
    let mut results = Vec::new();
    for d in found.iter().filter(|d| d.tie == Tie::Namespace) {
        if let Some(why) = d.excluded.as_deref() {
            tracing::info!(container = %d.name, parent = parent_name, joins = %d.joins, why, "dependent of a recreated parent left alone");
            results.push(d.skipped(Action::Recreate, why));
            continue;
        }
        let Some(joins_id) = new_ids.get(d.joins.as_str()).cloned() else {
            results.push(d.not_applicable(Action::Recreate, format!("not recreated: {} was not", d.joins)));
            continue;
        };
        tracing::info!(container = %d.name, parent = parent_name, joins = %d.joins, depth = d.depth, "recreating a dependent in its parent's new namespace");
        let result = match replacement.replace(&d.inspect, Some(&format!("container:{joins_id}"))).await {
            Ok(done) => {
                let result = DependentResult {
                    container_id: Some(done.id.clone()),
                    verified: done.outcome.verified,
                    details: done.outcome.details,
                    ..d.result(Action::Recreate, done.outcome.status)
                };
                new_ids.insert(&d.name, done.id);
                result
            }
            Err(failed) => DependentResult {
                error: failed.error,
                verified: failed.verified,
                ..d.result(Action::Recreate, RemediationStatus::Failed)
            },
        };
        results.push(result);
    }
    results
}
