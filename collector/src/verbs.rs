//! The binary's verbs besides running: `dead-letters list` and
//! `dead-letters replay`, with the collector's own settings (its Redis URL
//! and credentials, its state folder), while the collector runs or not.

use std::path::Path;

use clap::Subcommand;
use hemostat_protocol::{EventKind, RedisPublisher, connection::Target, secret::RedisUrl};

use crate::{
    error::CollectorError,
    outbox::dead_letters::{self, Letter, Outcome},
};

#[derive(Debug, Clone, Subcommand)]
pub enum Verb {
    /// The records Redis refused for good, kept in the outbox folder
    /// (`dead-letters.jsonl`, then `.1`).
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetters),
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeadLetters {
    /// Every dead letter on this host, oldest first: time, type,
    /// container, attempts, Redis' reason.
    List {
        /// One JSON object a line, as in the file.
        #[arg(long)]
        json: bool,
    },
    /// Once the cause is fixed (key type, ACL, memory): publishes each dead
    /// letter again as the outbox does, oldest first, and removes it once
    /// Redis took it; one refused again stays, with the new reason. Safe
    /// while the collector runs. Exits 1 if any is refused again or Redis
    /// cannot be reached.
    Replay {
        /// Only dead letters of this event type (health_alert,
        /// remediation_complete, system_alert, ...).
        #[arg(long, value_name = "TYPE")]
        kind: Option<String>,
        /// Print what would be replayed; send and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `verb` on the collector's state folder and Redis (its settings:
/// the caller reads them); `Ok(false)`: it ran but not everything went
/// (exit 1).
pub async fn run(state_dir: &Path, redis_url: &RedisUrl, verb: &Verb) -> Result<bool, CollectorError> {
    let Verb::DeadLetters(verb) = verb;
    let dir = state_dir.join("outbox");
    match verb {
        DeadLetters::List { json } => {
            let letters = dead_letters::list(&dir).map_err(|e| io_error(&dir, e))?;
            if *json {
                letters.iter().for_each(|l| println!("{}", l.json()));
            } else {
                println!("DEAD LETTERS ({}) in {}", letters.len(), dir.display());
                letters.iter().for_each(|l| println!("  {}", describe(l)));
            }
            Ok(true)
        }
        DeadLetters::Replay { kind, dry_run } => {
            if let Some(kind) = kind
                && !EventKind::ALL.iter().any(|k| k.as_str() == kind)
            {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(CollectorError::Config(format!("--kind {kind:?}: expected one of {}", known.join(", "))));
            }
            let publisher = RedisPublisher::new(Target::from_env(redis_url)?.lazy()?);
            let (done, summary) = dead_letters::replay(&dir, &publisher, kind.as_deref(), *dry_run)
                .await
                .map_err(|e| io_error(&dir, e))?;
            for (letter, outcome) in &done {
                match outcome {
                    Outcome::Replayed(id) => println!("replayed {} as {id}", describe(letter)),
                    Outcome::Refused(reason) => println!("refused again {}; now: {reason}", describe(letter)),
                    Outcome::NotSent if *dry_run => println!("would replay {}", describe(letter)),
                    Outcome::NotSent => {}
                }
            }
            if let Some(why) = &summary.stopped {
                println!("stopped: Redis cannot be reached ({why}); the rest stay");
            }
            println!(
                "{}replayed {}, refused again {}, left {}",
                if *dry_run { "dry run: " } else { "" },
                summary.replayed,
                summary.refused_again,
                summary.left
            );
            Ok(summary.refused_again == 0 && summary.stopped.is_none())
        }
    }
}

fn describe(l: &Letter) -> String {
    format!("{}  {}  {}  ({} attempts): {}", l.time(), l.kind(), l.container().unwrap_or("-"), l.attempts(), l.reason())
}

fn io_error(dir: &std::path::Path, e: std::io::Error) -> CollectorError {
    CollectorError::DeadLetters(format!("{}: {e}", dir.display()))
}
