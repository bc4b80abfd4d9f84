//! Redis ACL users, one per role, each with the least keys, channels and
//! commands its part of HemoStat needs (Redis 7: `%R~` read-only keys).
//!
//! What they guarantee, whoever holds the password of one:
//! - a collector writes only its own host's keys (its stats, series, facts,
//!   heartbeat, command stream and command markers) and publishes only what
//!   a collector publishes (`health_alert`, `remediation_complete`,
//!   `system_alert`): it can neither command another host nor ask for a
//!   remediation;
//! - only the responder (and the operator) write command streams and the
//!   gate's state;
//! - a seed-protocol publisher (a custom analyzer) reads alerts and publishes
//!   `remediation_needed` and `false_alarm`, and writes nothing else but the
//!   attestations of its requests;
//! - the dashboard reads, and publishes one kind, `approval_answer` (a
//!   person's Approve or Deny, from its page or from Slack's buttons), with
//!   the attestations of its answers: it writes nothing else, so a stolen
//!   dashboard password can at most answer approvals that are pending (the
//!   responder applies an answer only as the person who gave it could).
//!
//! Every role loses the commands that reach past its keys (`KEYS`, `FLUSHALL`,
//! `CONFIG`, `ACL`, `DEBUG`, `MIGRATE`, ...: Redis's `@dangerous`), keeping
//! the few a cluster client needs to find its nodes.
//!
//! A collector may still put an alert naming another host's container on
//! the alert stream, but cannot attest it under that host's prefix, and the
//! analyzer diagnoses only attested alerts ([`crate::attestation`]). The
//! bridge writes every stream, `remediation_needed` too, but cannot attest a
//! request: the responder acts only on those an analyzer attested. Nor an
//! approval answer: the responder applies only those the dashboard attested
//! or whose Slack signature it verified itself.
//!
//! What they cannot prevent (see the book's Security chapter, docs/src/security.md): a
//! collector may write the fleet-wide container and collector sets.
//!
//! `hemostat acl` prints the `ACL SETUSER` lines, with hashed passwords, for
//! an operator to load (`redis-cli`, or an ACL file; on a cluster, on every
//! node), and keeps each password in a file of its own.

use ring::rand::{SecureRandom, SystemRandom};

use crate::{ProtocolError, container::check_host, event::EventKind, keys, publisher::ALL_CHANNEL};

/// A part of HemoStat that connects to Redis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The collector of one host.
    Collector(String),
    Bridge,
    Analyzer,
    Responder,
    Alert,
    Exporter,
    Dashboard,
    /// An operator's `hemostat`.
    Operator,
    /// A seed-protocol publisher: a custom analyzer.
    Publisher,
}

/// The roles without a host, by name.
const NAMED: [(&str, Role); 8] = [
    ("bridge", Role::Bridge),
    ("analyzer", Role::Analyzer),
    ("responder", Role::Responder),
    ("alert", Role::Alert),
    ("exporter", Role::Exporter),
    ("dashboard", Role::Dashboard),
    ("operator", Role::Operator),
    ("publisher", Role::Publisher),
];

/// How a collector's role is written: `collector:<host>`.
const COLLECTOR_PREFIX: &str = "collector:";

/// Commands every role may run, on its own keys and channels only: reads,
/// writes, streams, pub/sub, scripts, transactions; none of the dangerous
/// ones but the few a connection needs to tell a cluster and find its nodes.
const COMMANDS: &[&str] = &[
    "-@all",
    "+@connection",
    "+@read",
    "+@write",
    "+@stream",
    "+@pubsub",
    "+@scripting",
    "+@transaction",
    "-@dangerous",
    // The connection asks whether the server is a cluster node.
    "+info",
    // The gate's scripts use Redis's clock; publishing waits for a replica.
    "+time",
    "+wait",
    "+cluster|slots",
    "+cluster|shards",
    "+cluster|nodes",
    "+cluster|info",
    "+cluster|myid",
    "+readonly",
    "+readwrite",
    "+asking",
];

/// Bytes of randomness in a generated password (256 bits).
const PASSWORD_BYTES: usize = 32;

impl Role {
    /// Every role but the collectors', by name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMED.iter().map(|(name, _)| *name)
    }

    /// The roles a stack on one machine runs: the host's collector and every
    /// function, the bridge and an operator.
    pub fn stack(host: &str) -> Vec<Role> {
        std::iter::once(Role::Collector(host.to_owned()))
            .chain(NAMED.iter().map(|(_, r)| r.clone()).filter(|r| *r != Role::Publisher))
            .collect()
    }

    /// `bridge`, `responder`, ..., or `collector:<host>`.
    pub fn parse(text: &str) -> Result<Role, ProtocolError> {
        if let Some((_, role)) = NAMED.iter().find(|(name, _)| *name == text) {
            return Ok(role.clone());
        }
        let unknown = |reason: String| ProtocolError::Config { name: "role".into(), value: text.into(), reason };
        match text.strip_prefix(COLLECTOR_PREFIX) {
            Some(host) => check_host(host).map(|()| Role::Collector(host.to_owned())).map_err(unknown),
            None => Err(unknown(format!(
                "one of {COLLECTOR_PREFIX}<host>, {}",
                Role::names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The Redis user's name: `hemostat-<role>`, `hemostat-collector-<host>`.
    pub fn user(&self) -> String {
        match self {
            Role::Collector(host) => format!("hemostat-collector-{host}"),
            other => {
                let name = NAMED.iter().find(|(_, r)| r == other).map_or("unknown", |(n, _)| n);
                format!("hemostat-{name}")
            }
        }
    }

    /// The rules of `ACL SETUSER <user>` (or an ACL file's `user <user>`
    /// line): from nothing, on, the password's SHA-256, then keys, channels
    /// and commands.
    pub fn rules(&self, password_sha256: &str) -> Vec<String> {
        let grants = self.grants();
        let mut rules = vec!["reset".to_owned(), "on".to_owned(), format!("#{password_sha256}")];
        rules.extend(grants.write.iter().map(|k| format!("~{k}")));
        rules.extend(grants.read.iter().map(|k| format!("%R~{k}")));
        rules.extend(grants.channels.iter().map(|c| format!("&{c}")));
        rules.extend(COMMANDS.iter().map(|c| (*c).to_owned()));
        rules
    }

    /// The role's keys and channels, as glob patterns (spelled here as
    /// [`keys`] spells the keys; the tests check each against them).
    fn grants(&self) -> Grants {
        let all = "hemostat:*".to_owned();
        let owned = |patterns: &[&str]| patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        match self {
            Role::Collector(host) => {
                let mut g = Grants::publishing(&[
                    EventKind::HealthAlert,
                    EventKind::RemediationComplete,
                    EventKind::SystemAlert,
                ]);
                let h = glob(host);
                g.write.extend([
                    format!("hemostat:stats:{h}/*"),
                    format!("hemostat:series:{h}/*"),
                    // The facts' hash tag `{host/name}`: its brace comes first.
                    format!("hemostat:facts:{{{h}/*"),
                    format!("hemostat:command_seen:{h}/*"),
                    // Its alerts' attestations: only it vouches for its host.
                    format!("{}*", glob(&keys::attestation(host, ""))),
                    glob(&keys::heartbeat(host)),
                    glob(&keys::commands(host)),
                    glob(keys::CONTAINERS),
                    glob(keys::COLLECTORS),
                ]);
                g.read.extend([glob(keys::SILENCES), glob(keys::MAINTENANCE)]);
                g
            }
            Role::Bridge => Grants {
                // Every stream (delivering, dead-lettering, relaying seed
                // publishes into them), the relay's marks, its takeovers.
                write: owned(&["hemostat:stream:*", "hemostat:published:*", "hemostat:bridge:*"]),
                read: Vec::new(),
                channels: EventKind::ALL
                    .iter()
                    .map(|k| glob(&k.channel()))
                    // Its relay's keepalive pings.
                    .chain(std::iter::once("hemostat:bridge:keepalive:*".to_owned()))
                    .collect(),
            },
            Role::Analyzer => {
                let mut g = Grants::publishing(&[EventKind::RemediationNeeded, EventKind::FalseAlarm]);
                g.write.extend(owned(&[
                    "hemostat:history:*",
                    "hemostat:ai_verdict:*",
                    "hemostat:ai_calls:*",
                    // It vouches for its requests.
                    "hemostat:requested:*",
                ]));
                // Which host vouched for each alert.
                g.read.push("hemostat:attested:*".to_owned());
                g
            }
            Role::Responder => {
                let mut g = Grants::publishing(&[EventKind::RemediationComplete, EventKind::SystemAlert]);
                g.write.extend(owned(&[
                    "hemostat:remediation:*",
                    "hemostat:actions:*",
                    "hemostat:audit:*",
                    "hemostat:gate_pending:*",
                    "hemostat:breaker:*",
                    "hemostat:ladder:*",
                    "hemostat:fleet:*",
                    "hemostat:fleet_brake:*",
                    "hemostat:commands:*",
                    "hemostat:dispatched:*",
                    // Approvals: parked, taken, expired ([`crate::approval`]).
                    "hemostat:approval:*",
                    "hemostat:approval_waiting:*",
                    "hemostat:approval_where:*",
                ]));
                g.write.push(glob(keys::APPROVALS));
                // Restarts asked again when the cooldown ends ([`crate::deferred`]).
                g.write.extend(["hemostat:deferred:*".to_owned(), glob(keys::DEFERRED)]);
                // Silences: the gate prunes the ended ones as it reads.
                g.write.push(glob(keys::SILENCES));
                // Maintenance windows: read only (`hemostat silence ls` prunes).
                // Command markers: the escalation ladder waits for the
                // outcome of its last step.
                g.read.extend([
                    "hemostat:facts:*".to_owned(),
                    "hemostat:command_seen:*".to_owned(),
                    glob(keys::CONTAINERS),
                    glob(keys::MAINTENANCE),
                ]);
                // Which analyzer vouched for each request; which answers
                // the dashboard vouched for.
                g.read.extend(["hemostat:requested:*".to_owned(), "hemostat:answered:*".to_owned()]);
                g
            }
            Role::Alert => Grants { write: owned(&["hemostat:events:*", "hemostat:alert:*"]), ..Grants::default() },
            Role::Exporter => {
                let mut g = Grants::publishing(&[EventKind::SystemAlert]);
                g.write.push("hemostat:exporter:*".to_owned());
                g.read.push(all);
                g
            }
            Role::Dashboard => {
                // Answers to approvals (its page's, Slack's buttons'),
                // attested as its own.
                let mut g = Grants::publishing(&[EventKind::ApprovalAnswer]);
                g.write.push("hemostat:answered:*".to_owned());
                g.read.push(all);
                g
            }
            Role::Operator => Grants { write: vec![all.clone()], read: Vec::new(), channels: vec![all] },
            Role::Publisher => {
                let mut g = Grants::publishing(&[EventKind::RemediationNeeded, EventKind::FalseAlarm]);
                // A custom analyzer reads the alerts it answers, and vouches
                // for its requests.
                g.channels.push(glob(&EventKind::HealthAlert.channel()));
                g.write.push("hemostat:requested:*".to_owned());
                g
            }
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Collector(host) => write!(f, "{COLLECTOR_PREFIX}{host}"),
            other => f.write_str(other.user().trim_start_matches("hemostat-")),
        }
    }
}

/// Keys a role writes (and reads), keys it only reads, channels it
/// publishes and subscribes to: glob patterns.
#[derive(Debug, Default)]
struct Grants {
    write: Vec<String>,
    read: Vec<String>,
    channels: Vec<String>,
}

impl Grants {
    /// What publishing `kinds` takes ([`crate::publisher`]): each kind's
    /// stream and its published marks, its channel, and the literal channel
    /// `hemostat:*` that seed subscribers read.
    fn publishing(kinds: &[EventKind]) -> Grants {
        let mut g = Grants { channels: vec![glob(ALL_CHANNEL)], ..Grants::default() };
        for kind in kinds {
            let stream = kind.stream();
            g.write.push(glob(&stream));
            g.write.push(format!("{}*", glob(&keys::published_mark(&stream, ""))));
            g.channels.push(glob(&kind.channel()));
        }
        g
    }
}

/// `text` as a glob pattern that matches only itself.
fn glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A new password: 256 random bits, base64url (safe inside a URL).
pub fn generate_password() -> Result<String, ProtocolError> {
    use base64::Engine;
    let mut bytes = [0u8; PASSWORD_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ProtocolError::BadKey("the system's random number generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 of a password, hex: what an ACL rule `#<hash>` holds, so the
/// password itself never reaches Redis's configuration or a terminal.
pub fn password_sha256(password: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, password.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerRef;

    #[test]
    fn a_collector_is_given_its_own_host_only() {
        let rules = Role::Collector("web-1".into()).rules("ab");
        for expected in [
            "~hemostat:commands:web-1",
            "~hemostat:facts:{web-1/*",
            "~hemostat:stats:web-1/*",
            "~hemostat:command_seen:web-1/*",
            "~hemostat:heartbeat:web-1",
            "%R~hemostat:silences",
            "~hemostat:stream:health_alert",
            "~hemostat:published:{hemostat:stream:health_alert}:*",
            "&hemostat:\\*",
        ] {
            assert!(rules.contains(&expected.to_owned()), "{expected} missing: {rules:?}");
        }
        assert!(!rules.iter().any(|r| r.contains("remediation_needed") || r.contains("commands:*")), "{rules:?}");
        assert_eq!(&rules[..3], ["reset", "on", "#ab"]);
    }

    /// Redis's glob, for the patterns [`glob`] and the grants write: `*`
    /// and `\\`-escapes.
    fn matches(pattern: &str, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        fn go(p: &[char], t: &[char]) -> bool {
            match p.first() {
                None => t.is_empty(),
                Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
                Some('\\') => t.first() == p.get(1) && go(&p[2..], &t[1..]),
                Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
            }
        }
        go(&p, &t)
    }

    fn writes(role: &Role, key: &str) -> bool {
        role.grants().write.iter().any(|p| matches(p, key))
    }

    fn reads(role: &Role, key: &str) -> bool {
        let g = role.grants();
        g.write.iter().chain(&g.read).any(|p| matches(p, key))
    }

    #[test]
    fn each_role_writes_the_keys_it_uses_and_no_other_hosts() {
        let web = Role::Collector("web".into());
        let (mine, theirs) = (ContainerRef::new("web", "db"), ContainerRef::new("web2", "db"));
        for key in [
            keys::stats(&mine),
            keys::series(&mine),
            keys::facts(&mine),
            keys::heartbeat("web"),
            keys::commands("web"),
            keys::command_seen("web", "id-1"),
            keys::attestation("web", "d"),
            keys::published_mark(&EventKind::HealthAlert.stream(), "d"),
            EventKind::SystemAlert.stream(),
        ] {
            assert!(writes(&web, &key), "{key}");
        }
        for key in [
            keys::stats(&theirs),
            keys::facts(&theirs),
            keys::heartbeat("web2"),
            keys::commands("web2"),
            keys::commands("web-1"),
            keys::command_seen("web2", "id-1"),
            keys::attestation("web2", "d"),
            keys::attestation("web-1", "d"),
            EventKind::RemediationNeeded.stream(),
            keys::published_mark(&EventKind::RemediationNeeded.stream(), "d"),
            keys::remediation(&mine),
            keys::SILENCES.to_owned(),
        ] {
            assert!(!writes(&web, &key), "{key}");
        }
        assert!(reads(&web, keys::SILENCES) && reads(&web, keys::MAINTENANCE));
        assert!(!writes(&web, keys::MAINTENANCE) && !writes(&Role::Responder, keys::MAINTENANCE));
        assert!(reads(&Role::Responder, keys::MAINTENANCE));

        let any = ContainerRef::new("h", "c");
        let mut gate = keys::safety_state(&any).to_vec();
        gate.extend([keys::audit(&any), keys::fleet("img"), keys::fleet_brake("img"), keys::dispatched("x")]);
        gate.extend([keys::commands("h"), keys::SILENCES.to_owned()]);
        gate.extend([
            keys::approval(&any, "ab"),
            keys::approval_waiting(&any),
            keys::approval_where("ab"),
            keys::APPROVALS.to_owned(),
            keys::deferred(&any),
            keys::DEFERRED.to_owned(),
        ]);
        for key in &gate {
            assert!(writes(&Role::Responder, key), "{key}");
        }
        assert!(reads(&Role::Responder, &keys::facts(&any)) && !writes(&Role::Responder, &keys::facts(&any)));
        let marker = keys::command_seen("h", "id-1");
        assert!(reads(&Role::Responder, &marker) && !writes(&Role::Responder, &marker), "{marker}");
        for key in [keys::history(&any), keys::ai_verdict("s"), keys::ai_calls("2026120100")] {
            assert!(writes(&Role::Analyzer, &key), "{key}");
        }
        let attested = keys::attestation("h", "d");
        assert!(reads(&Role::Analyzer, &attested) && !writes(&Role::Analyzer, &attested));
        for role in [Role::Publisher, Role::Bridge, Role::Responder, Role::Dashboard, Role::Collector("h2".into())] {
            assert!(!writes(&role, &attested), "{role}");
        }
        let requested = keys::request_attestation("d");
        assert!(reads(&Role::Responder, &requested) && !writes(&Role::Responder, &requested));
        assert!(writes(&Role::Analyzer, &requested) && writes(&Role::Publisher, &requested));
        for role in [Role::Bridge, Role::Alert, Role::Exporter, Role::Dashboard, Role::Collector("h".into())] {
            assert!(!writes(&role, &requested), "{role}");
        }
        for key in [
            keys::events("all"),
            keys::alert_stored("hemostat:events:all", "d"),
            keys::alert_dedupe("slack", "f"),
            keys::ALERT_FAILURES.to_owned(),
        ] {
            assert!(writes(&Role::Alert, &key), "{key}");
        }
        for key in [keys::exporter_metrics(), keys::exporter_seen("s", "1-0"), keys::collector_missing("h")] {
            assert!(writes(&Role::Exporter, &key), "{key}");
        }
        for key in [
            keys::DEAD_LETTER_STREAM.to_owned(),
            keys::bridge_takeovers("s", "g"),
            keys::published_mark("s", "d"),
            keys::bridge_heartbeat("b-1"),
            keys::BRIDGES.to_owned(),
            keys::bridge_alerted("s"),
            EventKind::SystemAlert.stream(),
        ] {
            assert!(writes(&Role::Bridge, &key), "{key}");
        }
        for role in [Role::Dashboard, Role::Publisher, Role::Alert, Role::Analyzer, Role::Bridge] {
            assert!(!writes(&role, &keys::commands("h")), "{role}");
            // Only who answers (the operator) and the responder move approvals.
            assert!(!writes(&role, &keys::approval(&any, "ab")), "{role}");
            assert!(!writes(&role, &keys::remediation(&any)), "{role}");
            // Nor can they have a restart asked again later.
            assert!(!writes(&role, &keys::deferred(&any)) && !writes(&role, keys::DEFERRED), "{role}");
        }
        assert!(!writes(&Role::Dashboard, &keys::stats(&any)) && reads(&Role::Dashboard, &keys::stats(&any)));

        // Answers: the dashboard publishes them and vouches for its own; the
        // responder reads who vouched; nobody else may vouch.
        let answered = keys::answer_attestation("d");
        assert!(writes(&Role::Dashboard, &answered) && writes(&Role::Dashboard, &EventKind::ApprovalAnswer.stream()));
        assert!(reads(&Role::Responder, &answered) && !writes(&Role::Responder, &answered));
        for role in
            [Role::Bridge, Role::Analyzer, Role::Publisher, Role::Alert, Role::Exporter, Role::Collector("h".into())]
        {
            assert!(!writes(&role, &answered), "{role}");
        }
        // The dashboard publishes nothing else and writes no other key.
        let d = Role::Dashboard.grants();
        for kind in EventKind::ALL.into_iter().filter(|k| *k != EventKind::ApprovalAnswer) {
            assert!(!d.channels.iter().any(|p| matches(p, &kind.channel())), "{kind}");
            assert!(!writes(&Role::Dashboard, &kind.stream()), "{kind}");
        }
        for key in [keys::request_attestation("d"), keys::approval_where("ab"), keys::APPROVALS.to_owned()] {
            assert!(!writes(&Role::Dashboard, &key), "{key}");
        }
    }

    #[test]
    fn only_the_analyzers_and_publishers_may_ask_for_a_remediation() {
        let needed = EventKind::RemediationNeeded.channel();
        let mut roles = Role::stack("h");
        roles.push(Role::Publisher);
        for role in roles {
            let g = role.grants();
            let asks = g.channels.iter().any(|p| matches(p, &needed))
                || g.write.iter().any(|p| matches(p, &EventKind::RemediationNeeded.stream()));
            let may = matches!(role, Role::Analyzer | Role::Publisher | Role::Operator | Role::Bridge);
            assert_eq!(asks, may, "{role}: {g:?}");
            for pattern in g.write.iter().chain(&g.read).chain(&g.channels) {
                assert!(pattern.starts_with("hemostat:"), "{role}: {pattern}");
            }
        }
        // The literal channel `hemostat:*`, not every channel.
        assert!(matches(&glob(ALL_CHANNEL), "hemostat:*") && !matches(&glob(ALL_CHANNEL), &needed));
    }

    #[test]
    fn roles_parse_name_their_users_and_hosts_are_plain() {
        assert_eq!(Role::parse("collector:web-1").unwrap(), Role::Collector("web-1".into()));
        assert_eq!(Role::parse("responder").unwrap(), Role::Responder);
        for bad in ["collector:", "collector:a*", "collector:a/b", "root", "collector"] {
            assert!(Role::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Role::Collector("web-1".into()).user(), "hemostat-collector-web-1");
        assert_eq!(Role::Dashboard.user(), "hemostat-dashboard");
        assert_eq!(Role::Dashboard.to_string(), "dashboard");
        assert_eq!(Role::Collector("h".into()).to_string(), "collector:h");
        assert_eq!(glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn passwords_are_long_random_and_url_safe_and_only_their_hash_is_a_rule() {
        let (a, b) = (generate_password().unwrap(), generate_password().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
        let hash = password_sha256("foobar");
        assert_eq!(hash, "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2");
        assert!(!Role::Operator.rules(&hash).iter().any(|r| r.contains("foobar")));
    }
}
