//! The collector's host name when HEMOSTAT_HOST is unset: the Docker
//! engine's (`docker info`'s Name), so that the fleet sees the machine, not
//! the container's id, which changes when the container is recreated.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use crate::settings::Settings;

pub fn name(settings: &Settings) -> String {
    if let Some(host) = &settings.host {
        return host.clone();
    }
    settings
        .docker_socket
        .as_deref()
        .and_then(engine_name)
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `GET /info` on the engine's socket (HTTP/1.0: one plain body, no chunks).
fn engine_name(socket: &Path) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    parse_info(&response)
}

fn parse_info(response: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let info: serde_json::Value = serde_json::from_str(body).ok()?;
    info["Name"].as_str().map(str::to_owned).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_name_comes_from_a_200_only() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Name\":\"node-7\",\"ID\":\"x\"}";
        assert_eq!(parse_info(ok).as_deref(), Some("node-7"));
        assert_eq!(parse_info(b"HTTP/1.0 403 Forbidden\r\n\r\n{\"Name\":\"x\"}"), None);
        assert_eq!(parse_info(b"HTTP/1.0 200 OK\r\n\r\nnot json"), None);
    }
}
