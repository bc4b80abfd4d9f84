//! The collector on Podman's Docker-compatible API (`podman system
//! service`), as far as it runs here: Podman's containers cannot start in
//! this sandbox (runc is refused setting rlimits), so this covers the read
//! paths: the API version negotiated, the container list and inspect
//! (`--once`), and the event stream (a container removed leaves the
//! collector's registry). Restarting a crashed container on Podman is not
//! tested.

use std::{process::Command, time::Duration};

use hemostat_e2e::{
    PodmanService, RedisServer, bin_dir, container::TEST_LABEL, current_test_name, start_collector, test_host,
    test_image,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_reads_podmans_api_version_containers_and_events() {
    let podman = PodmanService::start().await;
    let name = format!("hemostat-e2e-podman-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let label = format!("{TEST_LABEL}={}", current_test_name());
    podman.podman(&["create", "--name", &name, "--label", &label, &test_image(), "sleep", "600"]);

    // One snapshot: the version negotiated, the container listed and inspected.
    let out = Command::new(bin_dir().join("hemostat-collector"))
        .arg("--once")
        .env("DOCKER_HOST", podman.host())
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .output()
        .expect("run hemostat-collector --once (cargo build --workspace --bins first)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let snapshot: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON snapshot");
    assert!(snapshot["docker_api"].as_str().is_some_and(|v| v.starts_with("1.")), "{snapshot}");
    let listed = snapshot["containers"].as_array().expect("containers").iter().find(|c| c["name"] == name.as_str());
    let listed = listed.unwrap_or_else(|| panic!("{name} not in {snapshot}"));
    assert_eq!(listed["status"], "created", "{listed}");

    // The collector runs on it, and Podman's events reach it.
    let redis = RedisServer::start().await;
    let collector = start_collector(&redis.url(), &test_host(), |b| b.env("DOCKER_HOST", podman.host())).await;
    podman.podman(&["rm", &name]);
    collector.wait_for_line(&format!("Remove(\"{name}\")"), Duration::from_secs(30)).await;
}
