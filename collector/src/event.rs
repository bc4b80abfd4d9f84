//! A Docker container event reduced to what detection needs.

use std::collections::HashMap;

use bollard::models::{EventMessage, EventMessageTypeEnum};

/// What happened to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// The main process exited (`die`).
    Died {
        exit_code: i64,
    },
    /// The kernel OOM killer hit the container (`oom`, precedes `die`).
    Oom,
    /// A signal was sent through the API (`docker stop`/`kill`/`restart`).
    Killed {
        signal: Option<i32>,
    },
    Started,
    Destroyed,
    Health {
        healthy: bool,
    },
}

impl Happening {
    /// A stable name for it (`die:1`, `kill:15`, `start`, ...): the
    /// watcher's record of the last event handled per container is kept in
    /// the state folder across versions, so it does not use `Debug`.
    pub fn identity(&self) -> String {
        match self {
            Happening::Died { exit_code } => format!("die:{exit_code}"),
            Happening::Oom => "oom".into(),
            Happening::Killed { signal: Some(signal) } => format!("kill:{signal}"),
            Happening::Killed { signal: None } => "kill".into(),
            Happening::Started => "start".into(),
            Happening::Destroyed => "destroy".into(),
            Happening::Health { healthy: true } => "health:healthy".into(),
            Happening::Health { healthy: false } => "health:unhealthy".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEvent {
    pub happening: Happening,
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    /// Docker copies every container label into the event attributes.
    pub attributes: HashMap<String, String>,
    /// Docker's timestamp of the event, in nanoseconds since the epoch.
    pub time_nano: i64,
}

impl ContainerEvent {
    /// None for events the collector does not act on (exec_*, attach, ...)
    /// and for events too malformed to attribute to a container.
    pub fn from_message(msg: &EventMessage) -> Option<Self> {
        if msg.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let action = msg.action.as_deref()?;
        let actor = msg.actor.as_ref()?;
        let id = actor.id.clone().filter(|id| !id.is_empty())?;
        let attributes = actor.attributes.clone().unwrap_or_default();
        let happening = match action {
            "die" => Happening::Died {
                // A die without a readable code is not evidence of a crash.
                exit_code: attributes.get("exitCode").and_then(|c| c.trim().parse().ok())?,
            },
            "oom" => Happening::Oom,
            "kill" => Happening::Killed { signal: attributes.get("signal").and_then(|s| parse_signal(s)) },
            "start" => Happening::Started,
            // `remove`: Podman's name for it.
            "destroy" | "remove" => Happening::Destroyed,
            a if a.starts_with("health_status") => match a.rsplit(':').next().map(str::trim) {
                Some("healthy") => Happening::Health { healthy: true },
                Some("unhealthy") => Happening::Health { healthy: false },
                _ => return None,
            },
            _ => return None,
        };
        let time_nano = msg.time_nano.or_else(|| msg.time.map(|t| t.saturating_mul(1_000_000_000))).unwrap_or_default();
        Some(ContainerEvent {
            happening,
            name: attributes.get("name").cloned().unwrap_or_else(|| id.clone()),
            image: attributes.get("image").cloned(),
            id,
            attributes,
            time_nano,
        })
    }
}

/// Docker writes the number (`"15"`); accept names too for other engines.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.trim_start_matches("SIG");
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    fn msg(action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            }),
            scope: None,
            time: Some(1),
            time_nano: Some(1_000_000_123),
        }
    }

    #[test]
    fn reads_docker_events() {
        let e = ContainerEvent::from_message(&msg("die", &[("exitCode", "1"), ("name", "web")])).unwrap();
        assert_eq!(e.happening, Happening::Died { exit_code: 1 });
        assert_eq!((e.name.as_str(), e.time_nano), ("web", 1_000_000_123));
        let k = ContainerEvent::from_message(&msg("kill", &[("signal", "15")])).unwrap();
        assert_eq!(k.happening, Happening::Killed { signal: Some(15) });
        let h = ContainerEvent::from_message(&msg("health_status: unhealthy", &[])).unwrap();
        assert_eq!(h.happening, Happening::Health { healthy: false });
        assert!(ContainerEvent::from_message(&msg("exec_start: sh", &[])).is_none());
        assert!(ContainerEvent::from_message(&msg("die", &[("exitCode", "x")])).is_none());
        assert_eq!(parse_signal("SIGUSR1"), Some(10));
    }

    #[test]
    fn podmans_remove_is_a_destroy() {
        let e = ContainerEvent::from_message(&msg("remove", &[("name", "web")])).unwrap();
        assert_eq!(e.happening, Happening::Destroyed);
    }

    #[test]
    fn identities_are_stable_and_distinct() {
        let all = [
            Happening::Died { exit_code: 1 },
            Happening::Died { exit_code: 2 },
            Happening::Oom,
            Happening::Killed { signal: Some(15) },
            Happening::Killed { signal: None },
            Happening::Started,
            Happening::Destroyed,
            Happening::Health { healthy: true },
            Happening::Health { healthy: false },
        ];
        let names: Vec<String> = all.iter().map(Happening::identity).collect();
        assert_eq!(names[0], "die:1");
        assert_eq!(names[3], "kill:15");
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), all.len(), "{names:?}");
    }
}
