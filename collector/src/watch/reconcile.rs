//! Reconciliation from state: exits that no event reported.
//!
//! After the event stream is lost, or when the collector starts again from
//! its cursor, the watcher first replays the engine's event log from the
//! last event it handled. That covers a dropped connection or a short
//! absence, but not a dockerd restart nor a long absence: the log lives in
//! the daemon's memory and holds only the last 256 events, so the old
//! process's events are gone (or overrun by newer ones), and a container
//! that exited while dockerd was down (its shim kept it running) gets no
//! `die` event at all. So the watcher then lists the containers and
//! reports every non-zero exit that finished after the last event it had
//! handled and that no event handled (replayed now, or before) covers.
//!
//! A daemon restart is not an application crash. When dockerd stops or
//! restores containers itself, it sends them `kill` events first (seen
//! live, or in the new daemon's replay), so the detector already treats
//! those exits as requested stops. What reaches this module without any
//! event and with a kill code (137 SIGKILL, 143 SIGTERM) or 255 (the
//! runtime lost the task) and no OOM is therefore attributed to the daemon
//! or runtime going away, and is not alerted unless configured
//! (`--alert-daemon-restart-exits`). Any other non-zero exit code is the
//! application's own doing and is alerted as the crash it was.

use std::collections::HashMap;

use bollard::{Docker, models::ContainerInspectResponse, query_parameters::ListContainersOptions};

use crate::{
    detect::{Facts, Suspect, Trouble},
    docker,
    error::CollectorError,
};

/// Exit codes of a process killed by a signal the daemon or runtime sends
/// when it goes away (SIGKILL, SIGTERM), or set when the task was lost.
pub const DAEMON_EXIT_CODES: [i64; 3] = [137, 143, 255];

/// A stopped container's last exit, from inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub id: String,
    pub name: String,
    pub code: i64,
    /// `State.FinishedAt`, in nanoseconds since the epoch.
    pub finished_nano: i64,
    pub facts: Facts,
}

/// What to do with an exit found in state.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Report it as the crash it was.
    Report,
    /// Already seen through events: nothing to say.
    Seen,
    /// Not reported, and why.
    Skip(&'static str),
}

impl Exit {
    /// None for a running container or one that never ran.
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Option<Exit> {
        let state = inspect.state.as_ref()?;
        if state.running == Some(true) || state.restarting == Some(true) {
            return None;
        }
        let finished = state.finished_at.as_deref()?;
        let finished_nano =
            chrono::DateTime::parse_from_rfc3339(finished).ok()?.timestamp_nanos_opt().filter(|n| *n > 0)?;
        Some(Exit {
            id: inspect.id.clone()?,
            name: docker::name(inspect)?,
            code: state.exit_code?,
            finished_nano,
            facts: Facts::of(inspect),
        })
    }

    /// `cutoff`: time of the last event handled before the stream was lost
    /// or the collector stopped (every exit before it was seen). `covered`:
    /// time of the latest event of this container handled (its `die`, or a
    /// later one). `reported`: `FinishedAt` of the exit of this container
    /// an earlier catch-up reported from state.
    pub fn decide(
        &self,
        cutoff: i64,
        covered: Option<i64>,
        reported: Option<i64>,
        alert_daemon_exits: bool,
    ) -> Decision {
        if self.finished_nano <= cutoff {
            return Decision::Seen;
        }
        // A die event is stamped when dockerd processes the exit, after it.
        if covered.is_some_and(|t| t >= self.finished_nano) {
            return Decision::Seen;
        }
        if reported == Some(self.finished_nano) {
            return Decision::Seen;
        }
        if self.code == 0 {
            return Decision::Skip("exit code 0");
        }
        if !alert_daemon_exits && !self.facts.oom_killed && DAEMON_EXIT_CODES.contains(&self.code) {
            return Decision::Skip("killed while the Docker daemon was away (daemon restart, not a crash)");
        }
        Decision::Report
    }

    /// The suspect its missing `die` event would have produced.
    pub fn suspect(&self) -> Suspect {
        let mut attributes = self.facts.labels.clone();
        attributes.insert("name".into(), self.name.clone());
        if let Some(image) = &self.facts.image {
            attributes.insert("image".into(), image.clone());
        }
        Suspect {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.facts.image.clone(),
            attributes,
            time_nano: self.finished_nano,
            trouble: Trouble::Exit { code: self.code, oom_event: false, requested_stop: None },
        }
    }
}

/// Stopped containers whose last exit finished after `cutoff`, oldest first.
pub async fn exits_since(docker: &Docker, cutoff: i64) -> Result<Vec<Exit>, CollectorError> {
    let filters = HashMap::from([("status".to_owned(), vec!["exited".to_owned(), "dead".to_owned()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await?;
    let mut exits = Vec::new();
    for c in containers {
        let Some(id) = c.id else { continue };
        match docker::inspect(docker, &id).await {
            Ok(inspect) => exits.extend(Exit::from_inspect(&inspect).filter(|e| e.finished_nano > cutoff)),
            // Removed between list and inspect: nothing left to report on.
            Err(e) if docker::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    exits.sort_by_key(|e| e.finished_nano);
    Ok(exits)
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerState;

    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn exit(code: i64, finished_nano: i64) -> Exit {
        Exit { id: "c1".into(), name: "web".into(), code, finished_nano, facts: Facts::default() }
    }

    #[test]
    fn an_unseen_crash_after_the_cutoff_is_reported() {
        assert_eq!(exit(3, 10 * SEC).decide(5 * SEC, None, None, false), Decision::Report);
        let s = exit(3, 10 * SEC).suspect();
        assert_eq!(s.time_nano, 10 * SEC);
        assert_eq!(s.trouble, Trouble::Exit { code: 3, oom_event: false, requested_stop: None });
    }

    #[test]
    fn seen_old_or_clean_exits_are_not() {
        assert_eq!(exit(3, 4 * SEC).decide(5 * SEC, None, None, false), Decision::Seen);
        assert_eq!(exit(3, 10 * SEC).decide(5 * SEC, Some(10 * SEC + 1), None, false), Decision::Seen);
        assert!(matches!(exit(0, 10 * SEC).decide(5 * SEC, None, None, false), Decision::Skip(_)));
        // A die seen before this exit belongs to an earlier run.
        assert_eq!(exit(3, 10 * SEC).decide(5 * SEC, Some(7 * SEC), None, false), Decision::Report);
        // Reported from state by an earlier catch-up (before a restart):
        // once; a later exit of the same container is news.
        assert_eq!(exit(3, 10 * SEC).decide(5 * SEC, None, Some(10 * SEC), false), Decision::Seen);
        assert_eq!(exit(3, 12 * SEC).decide(5 * SEC, None, Some(10 * SEC), false), Decision::Report);
    }

    #[test]
    fn kills_while_the_daemon_was_away_are_not_crashes_unless_configured() {
        for code in DAEMON_EXIT_CODES {
            assert!(matches!(exit(code, 10 * SEC).decide(5 * SEC, None, None, false), Decision::Skip(_)));
            assert_eq!(exit(code, 10 * SEC).decide(5 * SEC, None, None, true), Decision::Report);
        }
        let mut oom = exit(137, 10 * SEC);
        oom.facts.oom_killed = true;
        assert_eq!(oom.decide(5 * SEC, None, None, false), Decision::Report);
    }

    #[test]
    fn reads_inspect() {
        let inspect = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web".into()),
            state: Some(ContainerState {
                running: Some(false),
                exit_code: Some(3),
                finished_at: Some("2026-11-22T06:28:38.281123384Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = Exit::from_inspect(&inspect).unwrap();
        assert_eq!((e.name.as_str(), e.code), ("web", 3));
        assert_eq!(e.finished_nano % SEC, 281_123_384);
        let never = ContainerInspectResponse {
            state: Some(ContainerState {
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                exit_code: Some(0),
                ..Default::default()
            }),
            ..inspect
        };
        assert!(Exit::from_inspect(&never).is_none());
    }
}
