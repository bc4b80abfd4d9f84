use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use hemostat_protocol::{Envelope, EventKind, ProtocolError, Publisher, envelope::agent};

use super::{DeadLetter, FILE, ROTATED, replay, write};
use crate::outbox::testing::TempDir;

fn envelope(kind: EventKind, n: u64) -> Vec<u8> {
    Envelope::new(agent::MONITOR, kind, &serde_json::json!({ "n": n, "container": format!("c{n}") }))
        .unwrap()
        .to_json()
        .into_bytes()
}

fn letter(dir: &Path, kind: EventKind, n: u64) {
    let record = envelope(kind, n);
    let kind = kind.as_str();
    let letter = DeadLetter { seq: n, kind: Some(kind), reason: "WRONGTYPE old", attempts: 3, record: &record };
    write(dir, &letter).unwrap();
}

/// The numbers of the dead letters in `dir/name`, in order, with reasons.
fn in_file(dir: &Path, name: &str) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["envelope"]["data"]["n"].as_u64().unwrap(), v["reason"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn ns(letters: &[(u64, String)]) -> Vec<u64> {
    letters.iter().map(|(n, _)| *n).collect()
}

/// What the collector does while a replay publishes.
type During = Box<dyn FnOnce() + Send>;

/// Redis refusing the numbers in `refuse` (WRONGTYPE), unreachable while
/// `down`; `during` runs at the first publish (a collector busy meanwhile).
#[derive(Clone, Default)]
struct Fake {
    refuse: Vec<u64>,
    down: bool,
    accepted: Arc<Mutex<Vec<u64>>>,
    during: Arc<Mutex<Option<During>>>,
}

impl Publisher for Fake {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        if let Some(during) = self.during.lock().unwrap().take() {
            during();
        }
        if self.down {
            return Err(ProtocolError::RedisUrl("connection refused".into()));
        }
        let n = env.data["n"].as_u64().unwrap();
        if self.refuse.contains(&n) {
            return Err(ProtocolError::Redis(redis::make_extension_error("WRONGTYPE".into(), Some("still".into()))));
        }
        let mut accepted = self.accepted.lock().unwrap();
        accepted.push(n);
        Ok(format!("{}-0", accepted.len()))
    }
}

fn outbox_dir(tmp: &TempDir) -> PathBuf {
    let dir = tmp.0.join("outbox");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn replayed_letters_leave_the_file_and_one_refused_again_stays_with_its_new_reason() {
    let tmp = TempDir::new();
    let dir = outbox_dir(&tmp);
    for n in 1..=3 {
        letter(&dir, EventKind::HealthAlert, n);
    }
    // The older file goes first.
    std::fs::rename(dir.join(FILE), dir.join(ROTATED)).unwrap();
    letter(&dir, EventKind::RemediationComplete, 4);
    let fake = Fake { refuse: vec![2], ..Fake::default() };

    let (done, summary) = replay(&dir, &fake, None, false).await.unwrap();
    assert_eq!(*fake.accepted.lock().unwrap(), [1, 3, 4]);
    assert_eq!((summary.replayed, summary.refused_again, summary.left, summary.stopped), (3, 1, 1, None));
    assert_eq!(done.len(), 4);
    assert!(!dir.join(FILE).exists(), "emptied, removed");
    let left = in_file(&dir, ROTATED);
    assert_eq!(ns(&left), [2]);
    assert!(left[0].1.contains("still"), "{left:?}");
    let mode = std::fs::metadata(dir.join(ROTATED)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = &super::list(&dir).unwrap()[0];
    assert_eq!((again.attempts(), again.kind(), again.container()), (4, "health_alert", Some("c2")));

    // Twice: only the one refused is tried, and now Redis takes it.
    let fixed = Fake::default();
    let (_, summary) = replay(&dir, &fixed, None, false).await.unwrap();
    assert_eq!((summary.replayed, summary.left), (1, 0));
    assert_eq!(*fixed.accepted.lock().unwrap(), [2]);
    assert!(super::list(&dir).unwrap().is_empty());
}

#[tokio::test]
async fn letters_the_collector_adds_or_rotates_during_a_replay_are_kept() {
    let tmp = TempDir::new();
    let dir = outbox_dir(&tmp);
    for n in 1..=3 {
        letter(&dir, EventKind::HealthAlert, n);
    }
    let fake = Fake { refuse: vec![2], ..Fake::default() };
    let during_dir = dir.clone();
    // While the first one is being sent: an append, a rotation, an append.
    *fake.during.lock().unwrap() = Some(Box::new(move || {
        letter(&during_dir, EventKind::HealthAlert, 4);
        std::fs::rename(during_dir.join(FILE), during_dir.join(ROTATED)).unwrap();
        letter(&during_dir, EventKind::HealthAlert, 5);
    }));

    let (_, summary) = replay(&dir, &fake, None, false).await.unwrap();
    assert_eq!(*fake.accepted.lock().unwrap(), [1, 3]);
    assert_eq!((summary.replayed, summary.refused_again, summary.left), (2, 1, 3));
    let rotated = in_file(&dir, ROTATED);
    assert_eq!(ns(&rotated), [2, 4]);
    assert!(rotated[0].1.contains("still") && rotated[1].1 == "WRONGTYPE old", "{rotated:?}");
    assert_eq!(ns(&in_file(&dir, FILE)), [5]);
}

#[tokio::test]
async fn redis_unreachable_stops_the_replay_and_a_dry_run_or_a_kind_changes_only_what_it_says() {
    let tmp = TempDir::new();
    let dir = outbox_dir(&tmp);
    letter(&dir, EventKind::HealthAlert, 1);
    letter(&dir, EventKind::SystemAlert, 2);
    letter(&dir, EventKind::HealthAlert, 3);
    let before = std::fs::read(dir.join(FILE)).unwrap();

    let down = Fake { down: true, ..Fake::default() };
    let (_, summary) = replay(&dir, &down, None, false).await.unwrap();
    assert_eq!((summary.replayed, summary.refused_again, summary.left), (0, 0, 3));
    assert!(summary.stopped.is_some_and(|why| why.contains("connection refused")));
    assert_eq!(std::fs::read(dir.join(FILE)).unwrap(), before, "untouched");

    let fake = Fake::default();
    let (done, summary) = replay(&dir, &fake, None, true).await.unwrap();
    assert_eq!((done.len(), summary.replayed, summary.left), (3, 0, 3));
    assert!(fake.accepted.lock().unwrap().is_empty());
    assert_eq!(std::fs::read(dir.join(FILE)).unwrap(), before, "a dry run changes nothing");

    let (done, summary) = replay(&dir, &fake, Some("system_alert"), false).await.unwrap();
    assert_eq!((done.len(), summary.replayed, summary.left), (1, 1, 2));
    assert_eq!(*fake.accepted.lock().unwrap(), [2]);
    assert_eq!(ns(&in_file(&dir, FILE)), [1, 3]);
}

#[tokio::test]
async fn a_missing_outbox_folder_has_no_dead_letters_and_one_replay_runs_at_a_time() {
    let tmp = TempDir::new();
    assert!(super::list(&tmp.0.join("nowhere")).unwrap().is_empty());
    let (done, _) = replay(&tmp.0.join("nowhere"), &Fake::default(), None, false).await.unwrap();
    assert!(done.is_empty());

    let dir = outbox_dir(&tmp);
    letter(&dir, EventKind::HealthAlert, 1);
    let held = super::Lock::replaying(&dir).unwrap();
    let busy = replay(&dir, &Fake::default(), None, false).await.unwrap_err();
    assert!(busy.to_string().contains("another replay is running"), "{busy}");
    drop(held);
    let (_, summary) = replay(&dir, &Fake::default(), None, false).await.unwrap();
    assert_eq!((summary.replayed, summary.left), (1, 0));
}
