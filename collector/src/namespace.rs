//! Shared network namespaces (`network_mode: container:<parent>`, which
//! compose writes for `service:<parent>`), as both the alerts (who went
//! down with whom) and the actions (who follows whom) read them.

use std::time::Duration;

use bollard::models::ContainerInspectResponse;

/// A dependent that exited this long before its parent went down, or any
/// time after, went down with it.
pub const WITH_PARENT: Duration = Duration::from_secs(5);

/// How far `container:` chains are followed: compose never nests them, and
/// a deeper chain is more likely a mistake than a design.
pub const MAX_DEPTH: usize = 5;

/// The container whose namespace this one joins, as its `NetworkMode`
/// names it (`container:<id or name>`); None for a network of its own.
pub fn parent_reference(inspect: &ContainerInspectResponse) -> Option<String> {
    let mode = inspect.host_config.as_ref()?.network_mode.as_deref()?;
    Some(mode.strip_prefix("container:")?.trim().to_owned()).filter(|r| !r.is_empty())
}

/// Whether `network_mode` joins the namespace of the container with this
/// full id and name (`container:<id>`, `container:<name>`, or an id prefix
/// of at least Docker's short 12 digits).
pub fn joins(network_mode: &str, parent_id: &str, parent_name: &str) -> bool {
    let Some(target) = network_mode.strip_prefix("container:") else {
        return false;
    };
    let target = target.trim();
    !target.is_empty()
        && (target == parent_id
            || target.trim_start_matches('/') == parent_name.trim_start_matches('/')
            || (target.len() >= 12 && parent_id.starts_with(target)))
}

#[cfg(test)]
mod tests {
    use bollard::models::HostConfig;

    use super::*;

    const ID: &str = "64290c8cfd9c00e0d6cfc9e5e5b5c3f5f2f4a3b9fdbc0e3e0e3b4a2c1d0e9f8a";

    #[test]
    fn joins_by_full_id_name_or_long_prefix() {
        assert!(joins(&format!("container:{ID}"), ID, "web"));
        assert!(joins("container:web", ID, "web"));
        assert!(joins("container:/web", ID, "/web"));
        assert!(joins("container:64290c8cfd9c", ID, "web"));
        assert!(!joins("container:6429", ID, "web"), "too short a prefix to be sure");
        assert!(!joins("container:webx", ID, "web"));
        assert!(!joins("container:", ID, "web"));
        assert!(!joins("web", ID, "web"));
        assert!(!joins("none", ID, "web"));
        assert!(!joins("bridge", ID, "web"));
    }

    #[test]
    fn the_parent_is_read_from_the_network_mode() {
        let with = |mode: &str| ContainerInspectResponse {
            host_config: Some(HostConfig { network_mode: Some(mode.into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(parent_reference(&with("container:vpn")).as_deref(), Some("vpn"));
        assert_eq!(parent_reference(&with("container: 64290c8cfd9c ")).as_deref(), Some("64290c8cfd9c"));
        assert_eq!(parent_reference(&with("container:")), None);
        assert_eq!(parent_reference(&with("bridge")), None);
        assert_eq!(parent_reference(&ContainerInspectResponse::default()), None);
    }
}
