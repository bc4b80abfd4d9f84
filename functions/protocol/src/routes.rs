//! Which function consumes which durable stream: the one table the bridge
//! reads, locally and in the cloud. Every route has its own consumer group,
//! so each function sees every event of its stream independently.

use crate::event::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub kind: EventKind,
    /// The function's short name; the deployed name is `{prefix}-{function}`
    /// (template.yaml: `!Sub "${FunctionPrefix}-analyzer"`).
    pub function: &'static str,
}

impl Route {
    pub fn stream(&self) -> String {
        self.kind.stream()
    }

    /// The consumer group of this route on its stream.
    pub fn group(&self) -> String {
        format!("bridge:{}", self.function)
    }

    pub fn function_name(&self, prefix: &str) -> String {
        if prefix.is_empty() { self.function.to_owned() } else { format!("{prefix}-{}", self.function) }
    }
}

pub const ROUTES: &[Route] = &[
    Route { kind: EventKind::HealthAlert, function: "analyzer" },
    Route { kind: EventKind::RemediationNeeded, function: "responder" },
    // Answers to approvals (Slack's buttons, the dashboard's).
    Route { kind: EventKind::ApprovalAnswer, function: "responder" },
    // Notifications and the dashboard's event log.
    Route { kind: EventKind::RemediationComplete, function: "alert" },
    Route { kind: EventKind::FalseAlarm, function: "alert" },
    Route { kind: EventKind::SystemAlert, function: "alert" },
    // Metrics: the exporter counts every event, in its own groups.
    Route { kind: EventKind::HealthAlert, function: "exporter" },
    Route { kind: EventKind::RemediationNeeded, function: "exporter" },
    Route { kind: EventKind::RemediationComplete, function: "exporter" },
    Route { kind: EventKind::FalseAlarm, function: "exporter" },
    Route { kind: EventKind::SystemAlert, function: "exporter" },
];

/// The route that decides what to do about a health alert (the
/// analyzer's): once its group has taken an alert, the control plane has
/// the crash in hand, whatever it decides.
pub fn deciding() -> &'static Route {
    &ROUTES[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_distinct_group_per_stream() {
        let mut pairs: Vec<_> = ROUTES.iter().map(|r| (r.stream(), r.group())).collect();
        let n = pairs.len();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), n);
        assert_eq!(ROUTES[0].function_name("hemostat"), "hemostat-analyzer");
        assert_eq!((deciding().kind, deciding().function), (EventKind::HealthAlert, "analyzer"));
    }
}
