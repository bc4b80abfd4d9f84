//! Podman's Docker-compatible API (`podman system service`), on a socket
//! and storage of its own under one temporary folder, for the collector's
//! read paths. Its containers cannot start in this sandbox (runc is
//! refused setting rlimits), so tests create them and read them back.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use crate::{
    docker::test_image,
    paths::log_dir,
    polling::wait_until,
    process::{file_tail, spawn_logged, terminate},
};

/// A running `podman system service`; stopped and its folder deleted when
/// dropped.
pub struct PodmanService {
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl PodmanService {
    /// Starts the service, waits for its socket to answer, and imports the
    /// busybox test image ([`test_image`]) from the host's static busybox.
    pub async fn start() -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let dir = PathBuf::from("/tmp").join(format!("hsp-{id}"));
        std::fs::create_dir_all(&dir).expect("create the podman folder");
        let mut service = PodmanService {
            log_path: log_dir().join(format!("{}-podman-{id}.log", crate::current_test_name())),
            dir,
            child: None,
        };
        let mut cmd = service.command();
        cmd.args(["system", "service", "--time=0"]).arg(service.host());
        let child = spawn_logged(&mut cmd, &service.log_path)
            .unwrap_or_else(|e| panic!("spawning podman failed: {e} (run scripts/test-env.sh install)"));
        service.child = Some(child);
        let socket = service.dir.join("p.sock");
        let up = wait_until(Duration::from_secs(30), || {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(&socket).await.is_ok() }
        })
        .await;
        assert!(up, "podman system service did not come up:\n{}", file_tail(&service.log_path, 30));
        service.import_image();
        service
    }

    /// `podman` on this service's storage.
    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    /// `unix://…`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("p.sock").display())
    }

    /// Runs `podman args` on this service's storage; its standard output.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run podman");
        assert!(out.status.success(), "podman {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn import_image(&self) {
        let rootfs = self.dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).expect("create the image's rootfs");
        let out = Command::new("sh").args(["-c", "command -v busybox"]).output().expect("run sh");
        let busybox = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        std::fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox (install busybox-static)");
        let tar = self.dir.join("image.tar");
        let out = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").output().expect("run tar");
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        let tar = tar.to_string_lossy().into_owned();
        self.podman(&["import", "-q", "-c", "ENV PATH=/bin", &tar, &test_image()]);
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGTERM, Duration::from_secs(10));
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: removing {} failed: {e}", self.dir.display());
        }
    }
}
