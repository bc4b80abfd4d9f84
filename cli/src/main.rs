//! `hemostat`: the operator's command. What HemoStat sees and did, why it
//! did or did not act, and the few things an operator does by hand
//! (silences, resets, manual actions, dead letters), all through Redis with
//! the same `REDIS_URL` as every other component, on one node or a cluster.
//!
//! Module map:
//! - `error`: the one error type, its exit code (1: a failure, 2: bad
//!   input) and its one-line message.
//! - `context`: the Redis connection and the settings every verb shares.
//! - `state`: the stack's state folder (`.hemostat/`) and its secret files.
//! - `key`: the command signing key (`HEMOSTAT_COMMAND_SIGNING_KEY`, or the
//!   file `scripts/stack.sh` generates) that `status` checks commands with,
//!   and `keys generate`.
//! - `show`: how times, ages and events are written for people.
//! - `look`: the verbs that only read (`status`, `events`, `explain`, `audit`).
//! - `act`: the verbs that change something (`silence`, `reset`,
//!   `remediate`).
//! - `approvals`: `approvals`, `approve`, `deny`: actions waiting for a
//!   person's yes, and the answers.
//! - `dead_letters`: `dead-letters` (`dlq`): list, replay (once), drop.
//! - `acl`: `hemostat acl`, the Redis ACL users of HemoStat's roles.
//! - `describe`: `completions` and `man`, generated from the clap definition.
//! - `notify`: `notify test`, through the alert function's own sinks.

mod acl;
mod act;
mod approvals;
mod context;
mod dead_letters;
mod describe;
mod error;
mod key;
mod look;
mod notify;
mod show;
mod state;

use clap::{Args, CommandFactory, Parser, Subcommand};
use hemostat_protocol::{
    acl::Role,
    config::{library_help, parse_duration, parse_seconds},
    gate::{self, GateSettings},
    secret::RedisUrl,
};

use crate::{context::Context, error::CliError};

#[derive(Debug, Parser)]
#[command(
    name = "hemostat",
    version,
    about = "HemoStat's operator command: status, live events, why it acted or not, silences, resets, manual actions, dead letters.",
    after_help = after_help()
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    verb: Verb,
}

/// The environment's settings: the library's, then the command key's.
fn after_help() -> String {
    format!(
        "{}\n  {:<20} unset       the command signing key (never shown); unset or empty: the file \
         $HEMOSTAT_STATE_DIR/{}, else the nearest {}/{} up from the current directory (`hemostat keys generate` and \
         scripts/stack.sh write it, mode 0600; a file open to group or others is refused)\n  {:<20} unset       the \
         stack's state folder, where scripts/stack.sh keeps the keys",
        library_help().trim_end(),
        key::KEY_VAR,
        key::KEY_FILE,
        state::STATE_DIR,
        key::KEY_FILE,
        state::STATE_DIR_VAR,
    )
}

/// Options every verb takes.
#[derive(Debug, Args)]
struct Global {
    /// Redis URL (redis:// or rediss://, credentials allowed; never shown); several comma-separated:
    /// a cluster's seed nodes. Unset: the operator's URL that scripts/stack.sh keeps in the state
    /// folder (redis.url, mode 0600, found as the signing key is), else redis://127.0.0.1:6379.
    // A `RedisUrl`: its `Debug` hides the credentials.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true, value_parser = clap::value_parser!(RedisUrl))]
    redis_url: Option<RedisUrl>,

    /// Print JSON instead of text (one document; `events` prints one envelope per line).
    #[arg(long, global = true)]
    json: bool,

    /// The responder's cooldown (as it is configured there), for what `explain` and `status`
    /// preview of its gate; a container's own `hemostat.cooldown` replaces it.
    #[arg(long, global = true, env = gate::COOLDOWN.name, default_value = gate::COOLDOWN.default_text(),
          value_parser = parse_seconds)]
    cooldown: u64,

    /// The responder's actions per container and hour (circuit breaker), as configured there; a
    /// container's own `hemostat.max_actions_per_hour` replaces it.
    #[arg(long, global = true, env = gate::MAX_RETRIES_PER_HOUR.name,
          default_value = gate::MAX_RETRIES_PER_HOUR.default_text())]
    max_per_hour: u64,

    /// How long the responder keeps an opened circuit breaker open, as configured there.
    #[arg(long, global = true, env = gate::BREAKER.name, default_value = gate::BREAKER.default_text(),
          value_parser = parse_seconds)]
    breaker: u64,

    /// The responder's escalation ladder (`restart,recreate,stop`, or `off`), as configured
    /// there; a container's own `hemostat.escalation` replaces it.
    #[arg(long, global = true, env = gate::ESCALATION.name, default_value = gate::ESCALATION.default_text(),
          value_parser = gate::Ladder::parse)]
    escalation: gate::Ladder,

    /// How long after its cooldown a container must stay quiet for its ladder to start again, as
    /// configured at the responder.
    #[arg(long, global = true, env = gate::ESCALATION_QUIET.name,
          default_value = gate::ESCALATION_QUIET.default_text(), value_parser = parse_seconds)]
    escalation_quiet: u64,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Hosts with heartbeat age, containers with state, health, CPU and memory, active issues,
    /// open circuit breakers, silences.
    Status,
    /// Events, readable: the newest ones, or with --follow the live stream (what
    /// `redis-cli SUBSCRIBE "hemostat:*"` shows).
    Events {
        /// Keep printing events as they are published, until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Only this container (`name` or `host/name`).
        #[arg(long)]
        container: Option<String>,
        /// Only this event type (health_alert, remediation_needed, remediation_complete,
        /// false_alarm, system_alert).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Without --follow: how many of the newest events.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Why HemoStat did or did not act on a container: scope, policy, silences, cooldown
    /// remaining, actions this hour, circuit breaker, the last alerts, diagnoses and outcomes.
    Explain {
        /// The container, `host/name`.
        container: String,
    },
    /// Every gate decision on a container, newest first.
    Audit {
        /// The container, `host/name`.
        container: String,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Silences: while one holds, the gate refuses every action on what it names.
    #[command(subcommand)]
    Silence(SilenceVerb),
    /// Clears a container's cooldown and circuit breaker (recorded in its audit).
    Reset {
        /// The container, `host/name`.
        container: String,
        /// Who does it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// A manual action through the same safety gate: published as a remediation_needed
    /// (analysis_method manual), then the outcome is awaited and printed.
    Remediate {
        /// The container, `host/name`.
        container: String,
        #[arg(help = format!("One of {}", act::manual_actions()))]
        action: String,
        /// Who asks (default: $USER); the request's reason names them.
        #[arg(long)]
        by: Option<String>,
        /// How long to wait for the outcome (250ms, 10s, 2m; a bare number is seconds).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Actions waiting for a person's yes (hemostat.approve, RESPONDER_APPROVE), soonest deadline
    /// first.
    Approvals,
    /// Approves a waiting action: the responder runs it through the safety gate again (the world
    /// changed while it waited), then the outcome is awaited and printed.
    Approve {
        /// The approval's id, as the notification and `hemostat approvals` show it.
        id: String,
        /// Who approves (default: $USER); audited.
        #[arg(long)]
        by: Option<String>,
        /// How long to wait for the outcome (250ms, 10s, 2m; a bare number is seconds).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Denies a waiting action: it is dropped, and reported as refused.
    Deny {
        /// The approval's id.
        id: String,
        /// Why (the report and the audit say it).
        #[arg(long)]
        reason: Option<String>,
        /// Who denies (default: $USER); audited.
        #[arg(long)]
        by: Option<String>,
    },
    /// Dead letters: records the bridge gave up on, with their reasons; replayed once the cause
    /// is fixed. (A collector's own dead letters are on its host: `hemostat-collector dead-letters`.)
    #[command(subcommand, name = "dead-letters", visible_alias = "dlq")]
    Dlq(DlqVerb),
    /// Command signing keys (Ed25519): the responder signs with the private key, collectors
    /// verify with the public one.
    #[command(subcommand)]
    Keys(KeysVerb),
    /// Redis ACL users, one per role, with the least keys, channels and commands it needs: prints
    /// `ACL SETUSER` lines (passwords as SHA-256) to pipe to redis-cli (on a cluster, to every
    /// node), and keeps each password in a file of its own. Needs no Redis.
    #[command(after_help = acl_help())]
    Acl {
        /// The roles: collector:<host>, bridge, analyzer, responder, alert, exporter, dashboard,
        /// operator, publisher (a custom analyzer of the seed protocol).
        #[arg(required = true, value_name = "ROLE")]
        roles: Vec<String>,
        /// The state folder whose redis/ holds the passwords (default: $HEMOSTAT_STATE_DIR, else
        /// ./.hemostat).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// New passwords for these roles (the old ones stop working once the lines are loaded).
        #[arg(long)]
        rotate: bool,
        /// Print ACL file lines (`user ...`) instead of ACL SETUSER commands.
        #[arg(long)]
        acl_file: bool,
        /// Also write redis/urls.json (mode 0600) in the state folder: each role's URL on this
        /// Redis (`rediss://host:6379`, no credentials), keyed by role, the Secrets Manager
        /// secret of template.yaml's RedisUrlSecretPerFunction.
        #[arg(long, value_name = "BASE_URL")]
        urls: Option<String>,
    },
    /// Notifications: `notify test` sends a test notification through every sink the alert
    /// function's settings configure (SLACK_WEBHOOK_URL, ALERT_NTFY_URL, ...: `alert --help`) and
    /// prints each one's result. Needs no Redis.
    #[command(subcommand)]
    Notify(NotifyVerb),
    /// Prints the shell completion script: `hemostat completions bash > ...` (see `hemostat man`
    /// for the whole command). Needs no Redis.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints this command's man page (roff): `hemostat man > hemostat.1`, or `hemostat man | man
    /// -l -`. Needs no Redis.
    Man,
}

fn acl_help() -> String {
    format!(
        "Roles without a host: {}.\nExample: hemostat acl collector:web-1 responder | redis-cli -u \"$ADMIN_URL\"\n\
         then REDIS_URL=redis://hemostat-collector-web-1:$(cat .hemostat/redis/hemostat-collector-web-1.password)@redis:6379 \
         on web-1.",
        Role::names().collect::<Vec<_>>().join(", ")
    )
}

#[derive(Debug, Subcommand)]
enum NotifyVerb {
    /// Sends a test notification (a low system_alert, kind notification_test) through each
    /// configured sink, their filters aside; a sink that opens incidents (PagerDuty) gets the
    /// matching resolve right after. Exit 1 when a sink failed.
    Test {
        /// Only this sink (slack, webhook, ntfy, discord, teams, pagerduty, gotify, email).
        #[arg(long)]
        sink: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysVerb {
    /// Makes a key pair: the signing key (mode 0600) and its public key, in the state folder;
    /// prints the public key and where each goes. Needs no Redis.
    Generate {
        /// Where to write them (default: $HEMOSTAT_STATE_DIR, else ./.hemostat).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Replace a key pair that is there (commands signed with the old key are then refused
        /// by collectors that do not hold the new public key).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SilenceVerb {
    /// Silences a target for a while: `host/name` (a container), `host:H`, `image:I` (with a tag,
    /// or every tag of a repository), `project:P` (compose), `label:key=value`. With `--every`,
    /// a maintenance window that recurs: `--every day --at 02:00 --for 45m --tz Europe/Berlin`.
    Add {
        /// What to silence.
        target: String,
        /// For how long (30m, 2h; a bare number is seconds); with `--every`, each window's length.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why: the gate's refusals say it.
        #[arg(long)]
        reason: String,
        /// Who sets it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// A recurring window: on which days it opens (`day`, `weekdays`, `weekends`, or days
        /// such as `mon,thu`).
        #[arg(long, value_name = "DAYS", requires = "at")]
        every: Option<String>,
        /// The local time a recurring window opens (HH:MM, in `--tz`).
        #[arg(long, value_name = "HH:MM", requires = "every")]
        at: Option<String>,
        /// The recurring window's time zone (an IANA name such as Europe/Berlin; default UTC).
        #[arg(long, value_name = "ZONE", requires = "every")]
        tz: Option<String>,
        /// No recurring window opens after this (RFC 3339, or a date YYYY-MM-DD: its end, in
        /// `--tz`); default: until removed.
        #[arg(long, value_name = "WHEN", requires = "every")]
        until: Option<String>,
    },
    /// Every silence still holding, and every maintenance window with its next opening.
    Ls,
    /// Ends a silence now, or removes a maintenance window.
    Rm {
        /// Its id, as `silence ls` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DlqVerb {
    /// Every dead letter with its reason, oldest first.
    #[command(visible_alias = "ls")]
    List {
        /// Only those that came from this stream.
        #[arg(long)]
        stream: Option<String>,
    },
    /// Once the cause is fixed: appends dead letters back to the stream they came from, for the
    /// consumer group that gave up on each only, and removes them here. Run twice, each record is
    /// appended once.
    Replay {
        /// The dead letter's id, as `dead-letters list` shows it.
        #[arg(conflicts_with_all = ["id_flag", "all", "stream"])]
        id: Option<String>,
        /// The same, as an option.
        #[arg(long = "id", value_name = "ID", conflicts_with_all = ["all", "stream"])]
        id_flag: Option<String>,
        /// Every dead letter that came from this stream (e.g. hemostat:stream:health_alert).
        #[arg(long, conflicts_with = "all")]
        stream: Option<String>,
        /// Every dead letter.
        #[arg(long, required_unless_present_any = ["id", "id_flag", "stream"])]
        all: bool,
        /// Print what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deletes a dead letter.
    Drop {
        /// The dead letter's id.
        id: String,
    },
}

/// Who the operator is: `--by`, else `$USER`, else "operator".
fn operator(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "operator".to_owned())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    // The verbs that need no Redis.
    match &cli.verb {
        Verb::Keys(KeysVerb::Generate { dir, force }) => return key::generate(dir.as_deref(), *force, cli.global.json),
        Verb::Acl { roles, dir, rotate, acl_file, urls } => {
            let options = acl::Options { rotate: *rotate, acl_file: *acl_file, urls: urls.as_deref() };
            return acl::users(roles, dir.as_deref(), &options, cli.global.json);
        }
        Verb::Completions { shell } => return describe::completions(Cli::command(), *shell),
        Verb::Man => return describe::man(Cli::command()),
        Verb::Notify(NotifyVerb::Test { sink }) => return notify::test(sink.as_deref(), cli.global.json).await,
        _ => {}
    }
    // Before Redis: a key file open to others is refused whatever the verb.
    let command_key = key::from_process()?;
    let redis_url = match cli.global.redis_url {
        Some(url) => url,
        None => state::redis_url()?,
    };
    let ctx = Context::connect(
        redis_url.expose(),
        cli.global.json,
        GateSettings {
            cooldown_seconds: cli.global.cooldown,
            max_per_hour: cli.global.max_per_hour,
            breaker_seconds: cli.global.breaker,
            escalation: cli.global.escalation,
            escalation_quiet_seconds: cli.global.escalation_quiet,
        },
        command_key,
    )
    .await?;
    match cli.verb {
        Verb::Status => look::status(&ctx).await,
        Verb::Events { follow, container, kind, last } => {
            let filter = look::EventFilter::new(container, kind)?;
            if follow { look::follow(&ctx, &filter).await } else { look::recent(&ctx, &filter, last).await }
        }
        Verb::Explain { container } => look::explain(&ctx, &context::container(&container)?).await,
        Verb::Audit { container, limit } => look::audit(&ctx, &context::container(&container)?, limit).await,
        Verb::Silence(SilenceVerb::Add { target, duration, reason, by, every: None, .. }) => {
            let duration =
                parse_duration(&duration).map_err(|e| CliError::Usage(format!("--for {duration:?}: {e}")))?;
            act::silence_add(&ctx, &target, duration, &reason, &operator(by)).await
        }
        Verb::Silence(SilenceVerb::Add { target, duration, reason, by, every: Some(every), at, tz, until }) => {
            let window = act::WindowFlags { every, at: at.unwrap_or_default(), length: duration, tz, until };
            act::window_add(&ctx, &target, &window, &reason, &operator(by)).await
        }
        Verb::Silence(SilenceVerb::Ls) => act::silence_ls(&ctx).await,
        Verb::Silence(SilenceVerb::Rm { id }) => act::silence_rm(&ctx, &id).await,
        Verb::Reset { container, by } => act::reset(&ctx, &context::container(&container)?, &operator(by)).await,
        Verb::Remediate { container, action, by, timeout } => {
            let action = act::manual_action(&action)?;
            act::remediate(&ctx, &context::container(&container)?, action, &operator(by), timeout).await
        }
        Verb::Approvals => approvals::list(&ctx).await,
        Verb::Approve { id, by, timeout } => approvals::approve(&ctx, &id, &operator(by), timeout).await,
        Verb::Deny { id, reason, by } => approvals::deny(&ctx, &id, &operator(by), reason.as_deref()).await,
        Verb::Dlq(DlqVerb::List { stream }) => dead_letters::list(&ctx, stream.as_deref()).await,
        Verb::Dlq(DlqVerb::Replay { id, id_flag, stream, all: _, dry_run }) => {
            dead_letters::replay(&ctx, &dead_letters::Choice { id: id.or(id_flag), stream }, dry_run).await
        }
        Verb::Dlq(DlqVerb::Drop { id }) => dead_letters::drop(&ctx, &id).await,
        Verb::Keys(_) | Verb::Acl { .. } | Verb::Completions { .. } | Verb::Man | Verb::Notify(_) => {
            unreachable!("handled before connecting")
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    // Logs only when asked for: an operator's terminal gets answers, not
    // the library's info lines.
    if std::env::var_os("RUST_LOG").is_some() {
        hemostat_protocol::telemetry::init();
    }
    if let Err(e) = run(cli).await {
        eprintln!("hemostat: {e}");
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, DlqVerb, Verb};

    fn replay(args: &[&str]) -> Result<DlqVerb, clap::Error> {
        let cli = Cli::try_parse_from(["hemostat", "dead-letters", "replay"].iter().chain(args))?;
        match cli.verb {
            Verb::Dlq(verb) => Ok(verb),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dead_letter_replays_say_which_and_dlq_is_the_same_verb() {
        Cli::command().debug_assert();
        assert!(replay(&[]).is_err(), "which ones must be said");
        assert!(replay(&["1-0", "--all"]).is_err());
        assert!(replay(&["--id", "1-0", "--stream", "s"]).is_err());
        let DlqVerb::Replay { id_flag, dry_run, .. } = replay(&["--id", "1-0", "--dry-run"]).unwrap() else { panic!() };
        assert_eq!((id_flag.as_deref(), dry_run), (Some("1-0"), true));
        let DlqVerb::Replay { stream, all, .. } = replay(&["--stream", "s"]).unwrap() else { panic!() };
        assert_eq!((stream.as_deref(), all), (Some("s"), false));
        let old = Cli::try_parse_from(["hemostat", "dlq", "ls"]).unwrap();
        assert!(matches!(old.verb, Verb::Dlq(DlqVerb::List { stream: None })));
    }
}
