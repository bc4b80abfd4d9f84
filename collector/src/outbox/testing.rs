//! An outbox in a folder of its own, for the collector's unit tests.

use std::sync::{Arc, Mutex};

use hemostat_protocol::{Envelope, ProtocolError, Publisher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Outbox, Settings};

pub use hemostat_e2e::TempDir;

pub fn settings(dir: &TempDir, max_bytes: u64) -> Settings {
    Settings {
        dir: dir.0.join("outbox"),
        max_bytes,
        refusal_patience: std::time::Duration::from_secs(600),
        host: "test-host".into(),
        progress: None,
        facts_current: None,
    }
}

/// An outbox in a folder of its own (removed with the returned TempDir).
pub fn outbox<P: hemostat_protocol::Publisher + 'static>(
    publisher: P,
    cancel: CancellationToken,
) -> (Outbox, JoinHandle<()>, TempDir) {
    let dir = TempDir::new();
    let (outbox, task) = Outbox::open(publisher, settings(&dir, 1 << 20), cancel).unwrap();
    (outbox, task, dir)
}

/// Redis that takes everything; records what it was given.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Envelope>>>);

impl Publisher for Recorder {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        let mut got = self.0.lock().unwrap();
        got.push(env.clone());
        Ok(format!("{}-0", got.len()))
    }
}
