//! Client for the private Docker engine started by `scripts/test-env.sh`.

use bollard::Docker;

/// Image every test container runs: a static busybox imported locally, so
/// tests never need a registry.
pub const DEFAULT_TEST_IMAGE: &str = "hemostat/busybox:test";

/// A client connected to `DOCKER_HOST` (a `unix://` socket), API version
/// negotiated with the engine.
///
/// Panics when `DOCKER_HOST` is unset: falling back to the host's default
/// socket could make tests kill containers that are not theirs.
pub async fn docker() -> Docker {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if host.is_empty() {
        panic!("DOCKER_HOST is not set: run the tests through scripts/test.sh, which starts a private dockerd");
    }
    let Some(path) = host.strip_prefix("unix://") else {
        panic!("DOCKER_HOST={host} is not supported: the harness only talks to a unix:// socket");
    };
    let client = Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION).unwrap_or_else(|e| {
        panic!("cannot connect to DOCKER_HOST={host}: {e} (is scripts/test-env.sh start running?)")
    });
    client
        .negotiate_version()
        .await
        .unwrap_or_else(|e| panic!("Docker at {host} does not answer: {e} (is scripts/test-env.sh start running?)"))
}

/// Image for test containers: `HEMOSTAT_TEST_IMAGE`, default
/// [`DEFAULT_TEST_IMAGE`].
pub fn test_image() -> String {
    std::env::var("HEMOSTAT_TEST_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_IMAGE.to_string())
}
