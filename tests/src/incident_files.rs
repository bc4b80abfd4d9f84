//! Incidents written as data (`tests/incidents/`, format in its README):
//! loaded, checked against the contract, and turned into the suite's
//! [`Incident`]s, so the same runner judges them.
//!
//! Two sets: `tuning` (what the failure signatures may be tuned on) and
//! `evaluation` (written apart, from the programs' documentation and source
//! only, never tuned on). A file that breaks the contract is an error that
//! names it: a cause spelled wrong must not quietly become `unknown`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hemostat_protocol::{Action, diagnosis::Cause};
use serde::Deserialize;

use crate::{
    container::ContainerSpec,
    incidents::{Expect, Incident, Judge, Provoke, Spec, Step},
    paths::workspace_root,
};

/// Whether a file may name this runtime (tests/incidents/README.md): one
/// the analyzer's signatures name but `generic` (words many programs print),
/// or `other`.
fn known_runtime(runtime: &str) -> bool {
    (runtime != "generic" && hemostat_analyzer::RUNTIMES.contains(&runtime)) || runtime == "other"
}
/// The longest a written incident runs before it fails.
const MAX_UPTIME_SECONDS: u64 = 10;
/// The most failures in a row a file may ask for.
const MAX_REPEATS: usize = 3;

/// The two sets, by folder name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Tuning,
    Evaluation,
}

impl Set {
    pub fn folder(self) -> &'static str {
        match self {
            Set::Tuning => "tuning",
            Set::Evaluation => "evaluation",
        }
    }

    pub fn dir(self) -> PathBuf {
        workspace_root().join("tests/incidents").join(self.folder())
    }
}

/// One file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentFile {
    pub name: String,
    pub runtime: String,
    pub source: String,
    pub what: String,
    pub uptime_seconds: u64,
    pub exit_code: i64,
    pub log: String,
    #[serde(default = "one")]
    pub repeats: usize,
    /// The kernel kills it for its memory limit: after its log it outgrows
    /// a 16 MiB limit instead of exiting by itself (`exit_code` 137), so
    /// Docker reports what it reports for a real OOM kill.
    #[serde(default)]
    pub exceeds_memory_limit: bool,
    pub expect: Expected,
}

fn one() -> usize {
    1
}

/// What an engineer would settle on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Checked against [`Cause::ALL`] by [`IncidentFile::check`].
    pub cause: String,
    pub restart_helps: bool,
}

impl IncidentFile {
    /// The contract beyond the fields' types.
    fn check(&self, file_stem: &str) -> Result<(), String> {
        if self.name != file_stem {
            return Err(format!("name {:?} is not the file's name {file_stem:?}", self.name));
        }
        if !known_runtime(&self.runtime) {
            let known: Vec<&str> = hemostat_analyzer::RUNTIMES.iter().copied().filter(|r| *r != "generic").collect();
            return Err(format!("runtime {:?} is not one of {}, other", self.runtime, known.join(", ")));
        }
        if self.cause().is_none() {
            let known: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
            return Err(format!("cause {:?} is not one of {}", self.expect.cause, known.join(", ")));
        }
        if self.uptime_seconds > MAX_UPTIME_SECONDS {
            return Err(format!("uptime_seconds {} is over {MAX_UPTIME_SECONDS}", self.uptime_seconds));
        }
        if !(0..=255).contains(&self.exit_code) {
            return Err(format!("exit_code {} is not 0..255", self.exit_code));
        }
        if self.exceeds_memory_limit && self.exit_code != 137 {
            return Err(format!("exceeds_memory_limit with exit_code {}: the kernel's kill is 137", self.exit_code));
        }
        if !(1..=MAX_REPEATS).contains(&self.repeats) {
            return Err(format!("repeats {} is not 1..{MAX_REPEATS}", self.repeats));
        }
        for (field, text) in [("source", &self.source), ("what", &self.what), ("log", &self.log)] {
            if text.trim().is_empty() {
                return Err(format!("{field} is empty"));
            }
        }
        Ok(())
    }

    /// The expected cause (`None` when the file's is not a known one).
    pub fn cause(&self) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == self.expect.cause)
    }

    /// The container: runs `uptime_seconds`, prints the log (a line that
    /// starts with `!` to stderr, without it), exits with `exit_code`. The
    /// log travels in the environment, so no line is ever shell-quoted.
    pub(crate) fn spec(&self) -> ContainerSpec {
        let spec = ContainerSpec::shell(
            r#"sleep "$INCIDENT_UPTIME"
printf '%s\n' "$INCIDENT_LOG" | while IFS= read -r line; do
  case "$line" in
    '!'*) printf '%s\n' "${line#!}" >&2 ;;
    *) printf '%s\n' "$line" ;;
  esac
done
# tail holds /dev/zero's one endless line in memory until the kernel kills it.
[ "$INCIDENT_OOM" = true ] && exec tail /dev/zero
exit "$INCIDENT_EXIT""#,
        )
        .env("INCIDENT_UPTIME", &self.uptime_seconds.to_string())
        .env("INCIDENT_LOG", self.log.trim_end())
        .env("INCIDENT_EXIT", &self.exit_code.to_string())
        .env("INCIDENT_OOM", if self.exceeds_memory_limit { "true" } else { "false" });
        if self.exceeds_memory_limit { spec.memory_without_swap(16 * 1024 * 1024) } else { spec }
    }

    /// As one of the suite's incidents: judged on its last exit.
    pub fn incident(&self) -> Incident {
        let cause = self.cause().unwrap_or(Cause::Unknown);
        let restart = self.expect.restart_helps;
        // Restarting what a restart cannot fix repeats the failure; stopping
        // or removing what a restart fixes keeps the service down.
        let worse: &'static [Action] =
            if restart { &[Action::Stop, Action::Cleanup] } else { &[Action::Restart, Action::ScaleUp] };
        Incident {
            name: self.name.clone(),
            what: self.what.clone(),
            spec: Spec::Written(self.clone()),
            provoke: Provoke::Repeat(self.repeats),
            steps: vec![Step {
                expect: Expect::Verdict { judge: Judge::NthExit(self.repeats), cause, restart },
                worse,
            }],
            deadline: Duration::from_secs(25 + (self.uptime_seconds + 10) * self.repeats as u64),
        }
    }
}

/// Every file of `set`, in name order; an error names each bad file.
pub fn load(set: Set) -> Result<Vec<IncidentFile>, String> {
    load_dir(&set.dir())
}

/// Every file of a folder written to the same contract (an operator's own
/// incidents, or a batch measured before it joins a set), in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<IncidentFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    let mut errors = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_yaml_ng::from_str::<IncidentFile>(&text).map_err(|e| e.to_string()))
            .and_then(|file| file.check(&stem).map(|()| file));
        match parsed {
            Ok(file) => {
                files.insert(stem, file);
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if errors.is_empty() { Ok(files.into_values().collect()) } else { Err(errors.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }

    const GOOD: &str = "name: go-x\nruntime: go\nsource: src/x.go\nwhat: it fails\nuptime_seconds: 1\nexit_code: 2\n\
                        log: |\n  panic: x\nexpect:\n  cause: panic_or_exception\n  restart_helps: false\n";

    #[test]
    fn a_good_file_loads_and_a_misspelt_cause_is_an_error_not_unknown() {
        let dir = crate::temp_dir::TempDir::new();
        write(&dir.0, "go-x", GOOD);
        let files = load_dir(&dir.0).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].cause(), Some(Cause::PanicOrException));
        assert_eq!(files[0].repeats, 1);

        write(&dir.0, "go-y", &GOOD.replace("go-x", "go-y").replace("panic_or_exception", "panic"));
        write(&dir.0, "go-z", &GOOD.replace("go-x", "go-q"));
        write(&dir.0, "go-w", &GOOD.replace("go-x", "go-w").replace("exit_code: 2", "exit_code: 300"));
        let err = load_dir(&dir.0).unwrap_err();
        assert!(err.contains("go-y.yaml: cause \"panic\""), "{err}");
        assert!(err.contains("go-z.yaml: name \"go-q\""), "{err}");
        assert!(err.contains("go-w.yaml: exit_code 300"), "{err}");
    }

    #[test]
    fn the_sets_in_the_repository_keep_the_contract() {
        let evaluation = load(Set::Evaluation).unwrap_or_else(|e| panic!("{e}"));
        assert!(evaluation.len() >= 20, "{} evaluation incidents", evaluation.len());
        let mut per_runtime: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &evaluation {
            *per_runtime.entry(f.runtime.as_str()).or_default() += 1;
        }
        assert!(per_runtime.len() >= 8, "runtimes: {per_runtime:?}");
        let index = std::fs::read_to_string(Set::Evaluation.dir().join("INDEX.md")).expect("evaluation/INDEX.md");
        for f in &evaluation {
            assert!(index.contains(&format!("| {} | {} |", f.name, f.runtime)), "INDEX.md lacks {}", f.name);
        }
        if Set::Tuning.dir().exists() {
            load(Set::Tuning).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
