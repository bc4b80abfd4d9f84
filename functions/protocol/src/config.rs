//! Typed environment variables. A bad value is a startup error that names
//! the variable, never a silent fallback to the default.
//!
//! Every setting is a [`Setting`] constant (name, default, meaning) that both
//! reads the value and writes the setting's `--help` line, and every duration
//! goes through [`parse_duration_in`].

use std::{
    fmt::{Display, Write as _},
    str::FromStr,
    time::Duration,
};

use crate::{error::ProtocolError, secret::Secret};

/// Booleans as operators write them: true/false, 1/0, yes/no, on/off.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The longest duration any setting takes: a year. Generous so that a TTL
/// or cooldown configured as a bare number of seconds before durations took
/// units keeps working; bounded so that no setting can overflow a deadline.
const MAX_DURATION_SECS: u128 = 366 * 86_400;

/// What a bare number (no unit) means. Each setting keeps the unit its name
/// (`_MS`, `_SECONDS`) or its history promised, so configurations written
/// before durations took units keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `*_MS` settings.
    Millis,
    /// Every other duration.
    Seconds,
}

impl Unit {
    fn nanos(self) -> u128 {
        match self {
            Unit::Millis => 1_000_000,
            Unit::Seconds => 1_000_000_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
        }
    }
}

/// The one duration parser: `250ms`, `10s`, `2m`, `1h`, or a bare number in
/// `bare`'s unit; fractions allowed (`1.5s`). Decimal, not floating point,
/// so `0.1s` is exactly 100 ms. The error says what was expected.
pub fn parse_duration_in(s: &str, bare: Unit) -> Result<Duration, String> {
    let s = s.trim();
    let expected = || format!("expected a duration such as 250ms, 10s, 2m or 1h (a bare number is {})", bare.name());
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // `.5` and `5.` stay accepted: the float parser this replaced took them.
    if (whole.is_empty() && fraction.is_empty()) || whole.len() > 20 || fraction.contains('.') {
        return Err(expected());
    }
    let unit_nanos = match unit.trim() {
        "" => bare.nanos(),
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| expected())? };
    // Nanoseconds are the finest a Duration holds; finer digits are dropped.
    let digits = &fraction[..fraction.len().min(9)];
    let scaled: u128 = format!("{digits:0<9}").parse().map_err(|_| expected())?;
    let nanos = whole * unit_nanos + scaled * unit_nanos / 1_000_000_000;
    if nanos > MAX_DURATION_SECS * 1_000_000_000 {
        return Err("out of range (at most a year)".to_owned());
    }
    Ok(Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32))
}

/// A duration whose bare number is seconds (clap's `value_parser`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, Unit::Seconds)
}

/// A duration whose bare number is milliseconds (`*_MS` settings).
pub fn parse_duration_ms(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, Unit::Millis)
}

/// A duration as a whole number of `unit`, for settings kept as an integer
/// (Redis TTLs and scripts count whole seconds). A finer value is refused
/// rather than rounded, so what runs is what was written.
pub fn whole(d: Duration, unit: Unit) -> Result<u64, String> {
    let n = d.as_nanos();
    if !n.is_multiple_of(unit.nanos()) {
        return Err(format!("must be a whole number of {}", unit.name()));
    }
    u64::try_from(n / unit.nanos()).map_err(|_| "out of range".to_owned())
}

/// A duration in whole seconds, bare number seconds (`*_SECONDS` flags).
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    whole(parse_duration(s)?, Unit::Seconds)
}

/// A duration in whole milliseconds, bare number milliseconds (`*_MS` flags).
pub fn parse_millis(s: &str) -> Result<u64, String> {
    whole(parse_duration_ms(s)?, Unit::Millis)
}

/// Where settings are read from: [`process_env`] in a binary, a closure over
/// a map in tests (no `set_var`, so tests can run side by side).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as an [`Env`]: a setting that names a secret
/// (`aws-secretsmanager:...`) reads as the secret once
/// [`install_resolved`] has it (a function's start-up).
pub fn process_env(name: &str) -> Option<String> {
    if let Some(value) = RESOLVED.get().and_then(|resolved| resolved.get(name)) {
        return Some(value.clone());
    }
    std::env::var(name).ok()
}

/// The values of settings read from Secrets Manager at start-up
/// ([`crate::stored_secret`]), set once; the environment is never written
/// (`set_var` races any thread reading it).
static RESOLVED: std::sync::OnceLock<std::collections::HashMap<String, String>> = std::sync::OnceLock::new();

/// Makes [`process_env`] answer `resolved`'s values; only the first call counts.
pub fn install_resolved(resolved: std::collections::HashMap<String, String>) {
    let _ = RESOLVED.set(resolved);
}

/// No variable set: every setting takes its default.
pub fn empty_env(_: &str) -> Option<String> {
    None
}

/// One environment variable: its name, its default as an operator would
/// write it, and what it means. The same constant parses the value and
/// writes the `--help` line, so the help cannot state another default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    /// As an operator would write it; `None`: unset unless configured.
    pub default: Option<&'static str>,
    /// One line for `--help`.
    pub meaning: &'static str,
    /// Never shown: `--help` says whether it is set, errors say `<redacted>`.
    pub secret: bool,
    /// `Some`: a duration, and what its bare number means.
    pub unit: Option<Unit>,
}

impl Setting {
    pub const fn new(name: &'static str, default: &'static str, meaning: &'static str) -> Self {
        Setting { name, default: Some(default), meaning, secret: false, unit: None }
    }

    /// A setting with no default: unset means "not configured".
    pub const fn unset(name: &'static str, meaning: &'static str) -> Self {
        Setting { name, default: None, meaning, secret: false, unit: None }
    }

    /// A key, token or URL with credentials: never shown.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// A duration; a bare number is seconds.
    pub const fn seconds(mut self) -> Self {
        self.unit = Some(Unit::Seconds);
        self
    }

    /// A duration; a bare number is milliseconds.
    pub const fn millis(mut self) -> Self {
        self.unit = Some(Unit::Millis);
        self
    }

    /// The default as an operator would write it, empty when it has none
    /// (for a flag's `default_value`).
    pub const fn default_text(&self) -> &'static str {
        match self.default {
            Some(d) => d,
            None => "",
        }
    }

    /// The configured value; unset and empty both mean "not configured".
    /// Secrets are kept byte for byte (a key must match the collector's),
    /// everything else is trimmed.
    pub fn configured(&self, env: Env<'_>) -> Option<String> {
        let v = env(self.name)?;
        let v = if self.secret { v } else { v.trim().to_owned() };
        (!v.trim().is_empty()).then_some(v)
    }

    /// The configured value of a [`secret`](Setting::secret) setting, as a
    /// [`Secret`] so that it cannot reach a log through `{:?}`; kept byte for
    /// byte, like [`configured`](Setting::configured) keeps every secret.
    pub fn configured_secret(&self, env: Env<'_>) -> Option<Secret> {
        debug_assert!(self.secret, "{} is not a secret setting", self.name);
        self.configured(env).map(Secret::from)
    }

    /// The configured value, else the default.
    pub fn text(&self, env: Env<'_>) -> Option<String> {
        self.configured(env).or_else(|| self.default.map(str::to_owned))
    }

    /// The value (configured, else the default) parsed as `T`.
    pub fn parse<T>(&self, env: Env<'_>) -> Result<T, ProtocolError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.read(env, |v| v.parse::<T>().map_err(|e| e.to_string()))
    }

    /// Booleans as operators write them (see [`parse_bool`]).
    pub fn flag(&self, env: Env<'_>) -> Result<bool, ProtocolError> {
        self.read(env, |v| parse_bool(v).ok_or_else(|| "expected true or false".to_owned()))
    }

    /// A duration (see [`parse_duration_in`]).
    pub fn duration(&self, env: Env<'_>) -> Result<Duration, ProtocolError> {
        let unit = self.unit.unwrap_or(Unit::Seconds);
        self.read(env, |v| parse_duration_in(v, unit))
    }

    /// A duration kept as whole seconds (see [`whole`]).
    pub fn whole_seconds(&self, env: Env<'_>) -> Result<u64, ProtocolError> {
        let d = self.duration(env)?;
        whole(d, Unit::Seconds).map_err(|reason| self.invalid(&self.text(env).unwrap_or_default(), reason))
    }

    /// The error for a value that parsed but cannot work.
    pub fn invalid(&self, value: &str, reason: impl Into<String>) -> ProtocolError {
        let value = if self.secret { "<redacted>".to_owned() } else { value.to_owned() };
        ProtocolError::Config { name: self.name.into(), value, reason: reason.into() }
    }

    fn read<T>(&self, env: Env<'_>, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ProtocolError> {
        let value = self.text(env).ok_or_else(|| self.invalid("", "must be set"))?;
        parse(&value).map_err(|reason| self.invalid(&value, reason))
    }
}

/// Default of [`REDIS_URL`]; the hosts' flags use it too.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

// A password may be part of the URL.
pub const REDIS_URL: Setting = Setting::new(
    "REDIS_URL",
    DEFAULT_REDIS_URL,
    "redis:// or rediss:// (TLS), credentials allowed; several comma-separated: a cluster's seed nodes",
)
.secret();
pub const REDIS_CLUSTER: Setting = Setting::new(
    "REDIS_CLUSTER",
    "auto",
    "true or false: whether REDIS_URL is a Redis Cluster; auto: several URLs are, one is asked",
);
pub const REDIS_CA_CERT: Setting = Setting::unset("REDIS_CA_CERT", "PEM file of a private CA for rediss://");
pub const RUST_LOG: Setting = Setting::new("RUST_LOG", "info", "log filter (tracing's EnvFilter)");
pub const HEMOSTAT_LOG_FORMAT: Setting = Setting::unset(
    "HEMOSTAT_LOG_FORMAT",
    "json: JSON logs (inside AWS Lambda JSON unless AWS_LAMBDA_LOG_FORMAT is Text)",
);
pub const NO_COLOR: Setting =
    Setting::unset("NO_COLOR", "any value: no colour codes in text logs (none unless stderr is a terminal)");

/// Read by this crate's connection and telemetry in every binary, with no
/// flag of their own; the hosts list them after their flags.
pub const LIBRARY: &[Setting] = &[REDIS_CLUSTER, REDIS_CA_CERT, RUST_LOG, HEMOSTAT_LOG_FORMAT, NO_COLOR];

/// Every function's shared settings: the Redis URL, then [`LIBRARY`].
pub const FUNCTION_SHARED: &[Setting] =
    &[REDIS_URL, REDIS_CLUSTER, REDIS_CA_CERT, RUST_LOG, HEMOSTAT_LOG_FORMAT, NO_COLOR];

/// Settings as `--help` lines: name, default, meaning. Secrets say whether
/// they are set in `env`, never their value.
pub fn settings_table(settings: &[Setting], env: Env<'_>) -> String {
    table(settings, env, settings.iter().map(|s| s.name.len()).max().unwrap_or(0))
}

fn table(settings: &[Setting], env: Env<'_>, name_width: usize) -> String {
    const DEFAULT_WIDTH: usize = 10;
    let mut out = String::new();
    for s in settings {
        let default = s.default.unwrap_or("unset");
        let mut meaning = s.meaning.to_owned();
        if s.unit == Some(Unit::Millis) {
            meaning.push_str(" (a bare number is milliseconds)");
        }
        if s.secret {
            let state = if s.configured(env).is_some() { "set" } else { "not set" };
            meaning.push_str(&format!(" [secret: {state}]"));
        }
        // A long default gets its own line rather than pushing every
        // meaning far to the right.
        if default.len() > DEFAULT_WIDTH {
            let _ = writeln!(out, "  {:name_width$}  {default}", s.name);
            let _ = writeln!(out, "  {:name_width$}  {:DEFAULT_WIDTH$}  {meaning}", "", "");
        } else {
            let _ = writeln!(out, "  {:name_width$}  {default:DEFAULT_WIDTH$}  {meaning}", s.name);
        }
    }
    out
}

/// What a host lists after its flags: the [`LIBRARY`] settings.
pub fn library_help() -> String {
    format!("Also read from the environment:\n{}", settings_table(LIBRARY, &process_env))
}

/// A function binary's command line. Lambda (and the emulator) start it
/// without arguments; the only ones it takes are for a human at a shell.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The binary's name.
    pub name: &'static str,
    /// What it is and does, a paragraph.
    pub about: &'static str,
    /// Its own settings; [`FUNCTION_SHARED`] follow them in the help.
    pub settings: &'static [Setting],
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No arguments: serve.
    Run,
    /// `--help` or `-h`.
    Help,
    /// `--version` or `-V`.
    Version,
    /// Anything else: refused, since nothing reads it.
    Unknown(String),
}

impl Usage {
    pub fn help(&self, env: Env<'_>) -> String {
        let width = self.settings.iter().chain(FUNCTION_SHARED).map(|s| s.name.len()).max().unwrap_or(0);
        let mut out = format!("{}\n\nUsage: {} [--help | --version]\n\n", self.about.trim_end(), self.name);
        let _ = writeln!(out, "Settings, from the environment (variable, default, meaning):");
        out.push_str(&table(self.settings, env, width));
        let _ = writeln!(out, "\nShared by every HemoStat component:");
        out.push_str(&table(FUNCTION_SHARED, env, width));
        if self.settings.iter().any(|s| s.unit.is_some()) {
            let _ = writeln!(out, "\nDurations take 250ms, 10s, 2m, 1h; a bare number is seconds.");
        }
        out
    }

    pub fn invocation(args: impl IntoIterator<Item = String>) -> Invocation {
        let mut args = args.into_iter();
        match args.next() {
            None => Invocation::Run,
            Some(a) if a == "--help" || a == "-h" => Invocation::Help,
            Some(a) if a == "--version" || a == "-V" => Invocation::Version,
            Some(a) => Invocation::Unknown(a),
        }
    }

    /// Prints the help and exits 0 for `--help`, exits 2 for anything else
    /// given, returns when there are no arguments (how Lambda starts it).
    pub fn exit_unless_run(&self) {
        match Self::invocation(std::env::args().skip(1)) {
            Invocation::Run => {}
            Invocation::Help => {
                print!("{}", self.help(&process_env));
                std::process::exit(0);
            }
            Invocation::Version => {
                // Every crate takes the workspace's version, this one too.
                println!("{} {}", self.name, env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            Invocation::Unknown(arg) => {
                eprintln!(
                    "{}: unexpected argument {arg:?}: settings come from the environment; see {} --help",
                    self.name, self.name
                );
                std::process::exit(2);
            }
        }
    }
}

/// The Redis URL every component uses.
pub fn redis_url() -> String {
    REDIS_URL.text(&process_env).unwrap_or_else(|| DEFAULT_REDIS_URL.into())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn each_suffix() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration(" 10s ").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("10 s").unwrap(), Duration::from_secs(10));
        // The suffix wins over the setting's bare unit.
        assert_eq!(parse_duration_ms("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration_ms("1m").unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn bare_numbers_keep_their_historical_unit() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration_ms("1000").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration_ms("60000").unwrap(), Duration::from_secs(60));
        // A month of seconds, as a cooldown or TTL may have been set.
        assert_eq!(parse_seconds("2592000").unwrap(), 2_592_000);
        assert_eq!(parse_millis("1000").unwrap(), 1000);
        assert_eq!(parse_millis("1.5s").unwrap(), 1500);
        assert_eq!(parse_seconds("2m").unwrap(), 120);
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.1").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("0.001ms").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration_ms("0.5").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("1.0000000001s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5.").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        for bad in
            ["", " ", ".", "ten", "-1", "+1", "5 parsecs", "1e400", "8d", "10S", "1.2.3", "s", ".s", "1h30m", "9000h"]
        {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("ten").unwrap_err().contains("bare number is seconds"));
        assert!(parse_duration_ms("ten").unwrap_err().contains("bare number is milliseconds"));
        assert!(parse_duration("8d").unwrap_err().contains("use ms, s, m or h"));
        assert!(parse_duration("99999999999999999999999h").is_err());
        // Whole-unit settings refuse what they would have to round.
        assert!(parse_seconds("1500ms").unwrap_err().contains("whole number of seconds"));
        assert!(parse_millis("0.5").unwrap_err().contains("whole number of milliseconds"));
    }

    const TIMEOUT: Setting = Setting::new("HEMOSTAT_T_TIMEOUT", "5s", "a timeout").seconds();
    const KEY: Setting = Setting::unset("HEMOSTAT_T_KEY", "a key").secret();

    #[test]
    fn settings_take_the_default_or_name_the_variable() {
        assert_eq!(TIMEOUT.duration(&empty_env).unwrap(), Duration::from_secs(5));
        assert_eq!(TIMEOUT.duration(&env_of(&[("HEMOSTAT_T_TIMEOUT", "")])).unwrap(), Duration::from_secs(5));
        assert_eq!(TIMEOUT.duration(&env_of(&[("HEMOSTAT_T_TIMEOUT", "250ms")])).unwrap(), Duration::from_millis(250));
        assert_eq!(TIMEOUT.whole_seconds(&env_of(&[("HEMOSTAT_T_TIMEOUT", "2m")])).unwrap(), 120);
        let err = TIMEOUT.duration(&env_of(&[("HEMOSTAT_T_TIMEOUT", "5 minutes")])).unwrap_err().to_string();
        assert!(err.contains("HEMOSTAT_T_TIMEOUT") && err.contains("5 minutes"), "{err}");
        let err = TIMEOUT.whole_seconds(&env_of(&[("HEMOSTAT_T_TIMEOUT", "10ms")])).unwrap_err().to_string();
        assert!(err.contains("HEMOSTAT_T_TIMEOUT") && err.contains("whole number"), "{err}");
        let n = Setting::new("HEMOSTAT_T_N", "3", "a count");
        assert_eq!(n.parse::<u32>(&empty_env).unwrap(), 3);
        assert!(n.parse::<u32>(&env_of(&[("HEMOSTAT_T_N", "x")])).unwrap_err().to_string().contains("HEMOSTAT_T_N"));
        let f = Setting::new("HEMOSTAT_T_F", "false", "a flag");
        assert!(f.flag(&env_of(&[("HEMOSTAT_T_F", "on")])).unwrap());
        assert!(f.flag(&env_of(&[("HEMOSTAT_T_F", "maybe")])).is_err());
    }

    #[test]
    fn secrets_are_kept_as_given_and_never_shown() {
        assert_eq!(KEY.configured(&empty_env), None);
        assert_eq!(KEY.configured(&env_of(&[("HEMOSTAT_T_KEY", " k ")])).as_deref(), Some(" k "));
        assert_eq!(KEY.configured_secret(&env_of(&[("HEMOSTAT_T_KEY", " k ")])), Some(Secret::new(" k ")));
        assert_eq!(KEY.configured_secret(&env_of(&[("HEMOSTAT_T_KEY", "  ")])), None);
        let read = KEY.configured_secret(&env_of(&[("HEMOSTAT_T_KEY", "hunter2")]));
        assert!(!format!("{read:?}").contains("hunter2"));
        let err = KEY.invalid("hunter2", "too short").to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let set = env_of(&[("HEMOSTAT_T_KEY", "hunter2")]);
        let table = settings_table(&[KEY, TIMEOUT], &set);
        assert!(!table.contains("hunter2") && table.contains("[secret: set]"), "{table}");
        assert!(settings_table(&[KEY], &empty_env).contains("[secret: not set]"));
    }

    #[test]
    fn help_lists_every_setting_with_its_default() {
        let usage = Usage { name: "f", about: "f: a function.", settings: &[TIMEOUT, KEY] };
        let help = usage.help(&empty_env);
        for s in [TIMEOUT, KEY].iter().chain(FUNCTION_SHARED) {
            let line = help.lines().find(|l| l.trim_start().starts_with(s.name)).unwrap_or_else(|| panic!("{help}"));
            assert!(line.starts_with("  ") && !line.starts_with("   "), "{line}");
        }
        assert!(help.contains("5s") && help.contains(DEFAULT_REDIS_URL), "{help}");
        assert!(help.contains("a bare number is seconds"), "{help}");
    }

    #[test]
    fn functions_share_the_redis_url_and_the_library_settings() {
        assert_eq!(FUNCTION_SHARED[0], REDIS_URL);
        assert_eq!(&FUNCTION_SHARED[1..], LIBRARY);
        assert_eq!(REDIS_URL.text(&empty_env).as_deref(), Some(DEFAULT_REDIS_URL));
    }

    #[test]
    fn only_no_arguments_runs() {
        let args = |a: &[&str]| Usage::invocation(a.iter().map(|s| s.to_string()));
        assert_eq!(args(&[]), Invocation::Run);
        assert_eq!(args(&["--help"]), Invocation::Help);
        assert_eq!(args(&["-h"]), Invocation::Help);
        assert_eq!(args(&["--version"]), Invocation::Version);
        assert_eq!(args(&["-V"]), Invocation::Version);
        assert_eq!(args(&["--bogus"]), Invocation::Unknown("--bogus".into()));
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool(" off "), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
