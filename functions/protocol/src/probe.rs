//! Probes from labels: a health check for a container whose image has
//! none, run by the collector inside the container's own network
//! namespace. This file is the single spelling of their labels.
//!
//! | label | value | default |
//! |---|---|---|
//! | `hemostat.probe` | `http://:PORT/PATH`, `https://:PORT/PATH` or `tcp://:PORT` | none: no probe |
//! | `hemostat.probe.interval` | duration, 1 s to 1 h | 10 s |
//! | `hemostat.probe.timeout` | duration, 100 ms to the interval | 2 s |
//! | `hemostat.probe.retries` | whole number, 1 to 100 | 3 |
//!
//! Labels are written by whoever creates a container, so a probe can never
//! aim anywhere but the container itself: the URL's host is empty,
//! `localhost`, `127.0.0.1` or `[::1]`, and nothing else parses (no user
//! part, no other host, no redirect followed). The path is printable ASCII
//! without spaces, so it cannot inject a header into the request.

use std::{collections::HashMap, fmt, net::IpAddr, time::Duration};

use crate::config::parse_duration;

pub const LABEL_PROBE: &str = "hemostat.probe";
pub const LABEL_PROBE_INTERVAL: &str = "hemostat.probe.interval";
pub const LABEL_PROBE_TIMEOUT: &str = "hemostat.probe.timeout";
pub const LABEL_PROBE_RETRIES: &str = "hemostat.probe.retries";

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_RETRIES: u32 = 3;
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_RETRIES: u32 = 100;
/// Longer is more likely a mistake (or an attempt) than a health path.
const MAX_PATH: usize = 512;

/// What is probed, always on the container's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A GET whose status must be 2xx or 3xx (a redirect is not followed).
    Http { tls: bool, ip: IpAddr, port: u16, path: String },
    /// A TCP connection that must be accepted.
    Tcp { ip: IpAddr, port: u16 },
}

impl Target {
    pub fn ip(&self) -> IpAddr {
        match self {
            Target::Http { ip, .. } | Target::Tcp { ip, .. } => *ip,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Target::Http { port, .. } | Target::Tcp { port, .. } => *port,
        }
    }
}

/// A container's probe, as its labels set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    /// The label's value, for logs and alerts.
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    pub retries: u32,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl Probe {
    /// None without a `hemostat.probe` label; an error naming the label
    /// and why when one of the labels is wrong (the container is then not
    /// probed at all: a half-read probe could alert on a healthy service).
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Result<Probe, String>> {
        let url = labels.get(LABEL_PROBE)?;
        Some(Probe::read(url, labels))
    }

    fn read(url: &str, labels: &HashMap<String, String>) -> Result<Probe, String> {
        let target = parse_target(url).map_err(|why| format!("{LABEL_PROBE}={url:?}: {why}"))?;
        let duration = |label: &str, default: Duration| match labels.get(label) {
            None => Ok(default),
            Some(v) => parse_duration(v).map_err(|why| format!("{label}={v:?}: {why}")),
        };
        let interval = duration(LABEL_PROBE_INTERVAL, DEFAULT_INTERVAL)?;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(format!("{LABEL_PROBE_INTERVAL}={interval:?}: expected 1s to 1h"));
        }
        let timeout = duration(LABEL_PROBE_TIMEOUT, DEFAULT_TIMEOUT.min(interval))?;
        if timeout < MIN_TIMEOUT || timeout > interval {
            return Err(format!("{LABEL_PROBE_TIMEOUT}={timeout:?}: expected 100ms up to the interval ({interval:?})"));
        }
        let retries = match labels.get(LABEL_PROBE_RETRIES) {
            None => DEFAULT_RETRIES,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_RETRIES).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "{LABEL_PROBE_RETRIES}={v:?}: expected a whole number from 1 to {MAX_RETRIES}"
                    ));
                }
            },
        };
        Ok(Probe { target, url: url.trim().to_owned(), interval, timeout, retries })
    }
}

/// `scheme://host:port/path`, the host on the container's loopback only.
fn parse_target(url: &str) -> Result<Target, String> {
    let url = url.trim();
    let (scheme, rest) =
        url.split_once("://").ok_or("expected http://:PORT/PATH, https://:PORT/PATH or tcp://:PORT")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("a user part is not allowed".into());
    }
    let (host, port) = split_port(authority)?;
    let ip = loopback(host)?;
    match scheme.to_ascii_lowercase().as_str() {
        "tcp" => {
            if !(path.is_empty() || path == "/") {
                return Err("a tcp probe has no path".into());
            }
            let port = port.ok_or("a tcp probe needs a port (tcp://:5432)")?;
            Ok(Target::Tcp { ip, port })
        }
        s @ ("http" | "https") => {
            let tls = s == "https";
            let port = port.unwrap_or(if tls { 443 } else { 80 });
            let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
            if path.len() > MAX_PATH {
                return Err(format!("the path is longer than {MAX_PATH} bytes"));
            }
            // Printable ASCII, no space: nothing can end the request line
            // early or start a header of its own.
            if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains('#') {
                return Err("the path must be printable ASCII without spaces or '#' (percent-encode the rest)".into());
            }
            Ok(Target::Http { tls, ip, port, path })
        }
        other => Err(format!("unknown scheme {other:?} (use http, https or tcp)")),
    }
}

/// `host:port`, `[v6]:port`, `:port` or a bare host.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("an unclosed '['")?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("expected ':' after ']'")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("bad port {p:?} (1 to 65535)")),
        },
    };
    Ok((host, port))
}

/// The loopback address a probe's host names; anything else is refused.
fn loopback(host: &str) -> Result<IpAddr, String> {
    match host.to_ascii_lowercase().as_str() {
        "" | "localhost" | "127.0.0.1" => Ok(IpAddr::from([127, 0, 0, 1])),
        "::1" => Ok(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        other => Err(format!(
            "host {other:?} is not the container's own: leave it empty (http://:8080/) or use localhost, 127.0.0.1 or [::1]"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn probe(pairs: &[(&str, &str)]) -> Result<Probe, String> {
        Probe::from_labels(&labels(pairs)).expect("a probe label")
    }

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn no_label_no_probe() {
        assert_eq!(Probe::from_labels(&labels(&[("hemostat.probe.interval", "5s")])), None);
    }

    #[test]
    fn urls_and_defaults_are_read() {
        let p = probe(&[("hemostat.probe", "http://:8080/healthz?deep=1")]).unwrap();
        assert_eq!(p.target, Target::Http { tls: false, ip: LO, port: 8080, path: "/healthz?deep=1".into() });
        assert_eq!((p.interval, p.timeout, p.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_RETRIES));
        let p = probe(&[("hemostat.probe", " tcp://localhost:5432 ")]).unwrap();
        assert_eq!(p.target, Target::Tcp { ip: LO, port: 5432 });
        assert_eq!(p.url, "tcp://localhost:5432");
        let p = probe(&[("hemostat.probe", "HTTPS://[::1]")]).unwrap();
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert_eq!(p.target, Target::Http { tls: true, ip: v6, port: 443, path: "/".into() });
        let p = probe(&[("hemostat.probe", "http://127.0.0.1")]).unwrap();
        assert_eq!(p.target, Target::Http { tls: false, ip: LO, port: 80, path: "/".into() });
        let p = probe(&[
            ("hemostat.probe", "tcp://:6379"),
            ("hemostat.probe.interval", "30s"),
            ("hemostat.probe.timeout", "500ms"),
            ("hemostat.probe.retries", "5"),
        ])
        .unwrap();
        assert_eq!((p.interval, p.timeout, p.retries), (Duration::from_secs(30), Duration::from_millis(500), 5));
        // A short interval brings the default timeout down with it.
        let p = probe(&[("hemostat.probe", "tcp://:1"), ("hemostat.probe.interval", "1s")]).unwrap();
        assert_eq!(p.timeout, Duration::from_secs(1));
    }

    #[test]
    fn a_probe_never_aims_outside_the_container() {
        for url in [
            "http://example.com/",
            "http://10.0.0.1:80/",
            "http://169.254.169.254/latest/meta-data",
            "http://user@:8080/",
            "http://localhost@evil:8080/",
            "http://127.0.0.2:80/",
            "http://0.0.0.0:80/",
            "tcp://[fe80::1]:22",
            "http://localhost.evil.com:80/",
            "https://[::1]x:443/",
        ] {
            let err = probe(&[("hemostat.probe", url)]).unwrap_err();
            assert!(err.starts_with("hemostat.probe="), "{url}: {err}");
        }
    }

    #[test]
    fn bad_labels_are_named_never_a_panic() {
        let bad = [
            ("hemostat.probe", "8080"),
            ("hemostat.probe", "ftp://:21"),
            ("hemostat.probe", "tcp://:"),
            ("hemostat.probe", "tcp://localhost"),
            ("hemostat.probe", "tcp://:5432/db"),
            ("hemostat.probe", "http://:0/"),
            ("hemostat.probe", "http://:70000/"),
            ("hemostat.probe", "http://:80/a b"),
            ("hemostat.probe", "http://:80/a\r\nX-Injected: 1"),
            ("hemostat.probe", "http://:80/é"),
            ("hemostat.probe", "http://[::1/"),
            ("hemostat.probe", ""),
        ];
        for (label, value) in bad {
            let err = probe(&[(label, value)]).unwrap_err();
            assert!(err.starts_with("hemostat.probe="), "{value:?}: {err}");
        }
        let long = format!("http://:80/{}", "a".repeat(600));
        assert!(probe(&[("hemostat.probe", &long)]).is_err());
        let with = |label: &str, value: &str| probe(&[("hemostat.probe", "tcp://:1"), (label, value)]);
        for (label, value) in [
            ("hemostat.probe.interval", "soon"),
            ("hemostat.probe.interval", "100ms"),
            ("hemostat.probe.interval", "2h"),
            ("hemostat.probe.timeout", "10ms"),
            ("hemostat.probe.timeout", "11s"),
            ("hemostat.probe.retries", "0"),
            ("hemostat.probe.retries", "-1"),
            ("hemostat.probe.retries", "101"),
            ("hemostat.probe.retries", "x"),
        ] {
            let err = with(label, value).unwrap_err();
            assert!(err.starts_with(label), "{label}={value}: {err}");
        }
    }
}
