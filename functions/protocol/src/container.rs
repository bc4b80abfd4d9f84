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

/// The longest host name HemoStat takes (a DNS name's limit).
pub const HOST_MAX: usize = 253;

/// Checks a host name as HemoStat uses it in Redis keys and ACL patterns:
/// letters, digits, `.`, `-` and `_`, at most [`HOST_MAX`]. A host named
/// `web/x` or `web:x` would share key prefixes with host `web` (and could be
/// written with `web`'s credentials), so such names are refused.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > HOST_MAX {
        return Err(format!("a host name has 1 to {HOST_MAX} characters"));
    }
    match host.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
        Some(c) => Err(format!("{c:?} is not allowed in a host name (letters, digits, '.', '-', '_')")),
        None => Ok(()),
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
        assert!(check_host("web-1.prod_eu").is_ok());
        for bad in ["", "web/x", "web:x", "web*", "wéb", &"a".repeat(HOST_MAX + 1)] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        assert_eq!(ContainerRef::parse("/web"), None);
    }
}
