//! Diagnosis: why a container failed, in a category, a sentence and the
//! evidence lines it rests on. Written by the analyzer (rules or LLM) from
//! a `health_alert`'s evidence, carried in the [`IncidentContext`] of
//! `remediation_needed`, `false_alarm`, the responder's command and the
//! collector's `remediation_complete` (as the field `diagnosis`).
//!
//! Shape:
//!
//! ```json
//! {
//!   "cause": "port_in_use",
//!   "summary": "The process could not bind its port: another process already holds it.",
//!   "evidence": ["Error: listen EADDRINUSE: address already in use :::8080"],
//!   "restart_helps": false,
//!   "recommendation": "Free the port or change the container's port mapping."
//! }
//! ```
//!
//! Unknown causes (a newer analyzer's) read as `unknown`; every field but
//! `cause` has a default, so a partial diagnosis never makes an event
//! unreadable.
//!
//! [`IncidentContext`]: crate::event::IncidentContext

use serde::{Deserialize, Serialize};

/// The cause categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The kernel's OOM killer ended the container (137 with `OOMKilled`).
    OomKilled,
    /// SIGKILL without OOM (137): `docker kill`, a stop that timed out.
    Killed,
    /// SIGSEGV (139).
    Segfault,
    /// SIGTERM (143): asked to stop.
    Terminated,
    /// The application exited with an error code (1, 2, ...).
    AppError,
    /// Exit code 0: the process finished.
    CleanExit,
    /// The port it binds is taken.
    PortInUse,
    /// No space left on a device.
    DiskFull,
    /// A service it needs refused or could not be resolved.
    DependencyUnreachable,
    PermissionDenied,
    MissingFileOrConfig,
    /// A panic, traceback or unhandled exception.
    PanicOrException,
    /// The runtime's own out-of-memory error (JVM, Node, Python, Go).
    OutOfMemoryInApp,
    HealthCheckFailing,
    CpuBurn,
    MemoryLeak,
    CrashLoop,
    /// Nothing recognisable, or a category this version does not know.
    #[serde(other)]
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 18] = [
        Cause::OomKilled,
        Cause::Killed,
        Cause::Segfault,
        Cause::Terminated,
        Cause::AppError,
        Cause::CleanExit,
        Cause::PortInUse,
        Cause::DiskFull,
        Cause::DependencyUnreachable,
        Cause::PermissionDenied,
        Cause::MissingFileOrConfig,
        Cause::PanicOrException,
        Cause::OutOfMemoryInApp,
        Cause::HealthCheckFailing,
        Cause::CpuBurn,
        Cause::MemoryLeak,
        Cause::CrashLoop,
        Cause::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::OomKilled => "oom_killed",
            Cause::Killed => "killed",
            Cause::Segfault => "segfault",
            Cause::Terminated => "terminated",
            Cause::AppError => "app_error",
            Cause::CleanExit => "clean_exit",
            Cause::PortInUse => "port_in_use",
            Cause::DiskFull => "disk_full",
            Cause::DependencyUnreachable => "dependency_unreachable",
            Cause::PermissionDenied => "permission_denied",
            Cause::MissingFileOrConfig => "missing_file_or_config",
            Cause::PanicOrException => "panic_or_exception",
            Cause::OutOfMemoryInApp => "out_of_memory_in_app",
            Cause::HealthCheckFailing => "health_check_failing",
            Cause::CpuBurn => "cpu_burn",
            Cause::MemoryLeak => "memory_leak",
            Cause::CrashLoop => "crash_loop",
            Cause::Unknown => "unknown",
        }
    }

    /// The category named `s`; anything else is [`Cause::Unknown`].
    pub fn parse(s: &str) -> Cause {
        let s = s.trim();
        Cause::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s)).unwrap_or(Cause::Unknown)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a container failed, and whether a restart would help.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub cause: Cause,
    /// One sentence for a human.
    #[serde(default)]
    pub summary: String,
    /// The evidence lines the diagnosis rests on, copied verbatim from the
    /// alert's evidence (log lines, health output, Docker's error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Whether restarting the container can be expected to fix it.
    #[serde(default)]
    pub restart_helps: bool,
    /// What a human should do, when the fix is outside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_snake_case_and_unknown_ones_read_as_unknown() {
        for c in Cause::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(Cause::parse(c.as_str()), c);
            assert_eq!(serde_json::from_value::<Cause>(c.as_str().into()).unwrap(), c);
        }
        assert_eq!(serde_json::from_value::<Cause>("gremlins".into()).unwrap(), Cause::Unknown);
        assert_eq!(Cause::parse("Disk_Full "), Cause::DiskFull);
        assert_eq!(Cause::parse("gremlins"), Cause::Unknown);
    }

    #[test]
    fn shape_round_trips_and_defaults() {
        let d = Diagnosis {
            cause: Cause::PortInUse,
            summary: "Port taken.".into(),
            evidence: vec!["bind: address already in use".into()],
            restart_helps: false,
            recommendation: Some("Free the port.".into()),
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["cause"], "port_in_use");
        assert_eq!(json["evidence"][0], "bind: address already in use");
        assert_eq!(serde_json::from_value::<Diagnosis>(json).unwrap(), d);
        let bare: Diagnosis = serde_json::from_value(serde_json::json!({"cause": "segfault"})).unwrap();
        assert_eq!((bare.cause, bare.restart_helps, bare.recommendation.as_deref()), (Cause::Segfault, false, None));
        let json = serde_json::to_string(&bare).unwrap();
        assert!(!json.contains("evidence") && !json.contains("recommendation"), "{json}");
    }

    #[test]
    fn travels_in_the_incident_context_of_every_payload() {
        use crate::event::{IncidentContext, RemediationComplete};
        let context = IncidentContext {
            diagnosis: Some(Diagnosis {
                cause: Cause::DiskFull,
                summary: "Disk full.".into(),
                evidence: vec!["No space left on device".into()],
                restart_helps: false,
                recommendation: None,
            }),
            ..Default::default()
        };
        let complete: RemediationComplete = serde_json::from_value(serde_json::json!({
            "container": "web", "action": "cleanup", "host": "h1",
            "result": {"status": "success", "action": "cleanup", "container": "web"},
            "diagnosis": {"cause": "disk_full", "summary": "Disk full.", "evidence": ["No space left on device"]}}))
        .unwrap();
        assert_eq!(complete.context, context);
        let json = serde_json::to_value(&complete).unwrap();
        assert_eq!(json["diagnosis"]["cause"], "disk_full");
        assert!(json.get("context").is_none());
        let command = crate::command::Command {
            id: "c1".into(),
            host: "h1".into(),
            container: "web".into(),
            container_id: None,
            action: crate::Action::Cleanup,
            reason: String::new(),
            confidence: 0.85,
            issued_at: "2026-12-02T07:00:00Z".into(),
            expires_at: None,
            dry_run: false,
            args: Vec::new(),
            context,
        };
        assert!(command.seal(None).json.contains(r#""diagnosis":{"cause":"disk_full""#));
    }
}
