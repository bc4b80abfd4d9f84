//! Naming a container across a fleet: names repeat across hosts.

use std::fmt;

/// A container as HemoStat addresses it: the host it runs on and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    pub host: String,
    pub name: String,
}

impl ContainerRef {
    pub fn new(host: impl Into<String>, name: impl Into<String>) -> Self {
        let name: String = name.into();
        // Docker reports names with a leading slash in some APIs.
        let name = name.trim_start_matches('/').to_owned();
        ContainerRef { host: host.into(), name }
    }

    /// `host/name`: the identity used inside Redis keys. Docker names
    /// cannot contain `/`, so this is unambiguous.
    pub fn key(&self) -> String {
        format!("{}/{}", self.host, self.name)
    }

    /// Parses `host/name`.
    pub fn parse(key: &str) -> Option<Self> {
        let (host, name) = key.split_once('/')?;
        (!host.is_empty() && !name.is_empty()).then(|| ContainerRef::new(host, name))
    }
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_strips_docker_slash() {
        let c = ContainerRef::new("host-a", "/web");
        assert_eq!(c.key(), "host-a/web");
        assert_eq!(ContainerRef::parse("host-a/web"), Some(c));
        assert_eq!(ContainerRef::parse("nohost"), None);
        assert_eq!(ContainerRef::parse("/web"), None);
    }
}
