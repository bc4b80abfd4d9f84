//! The analyzer's settings, from environment variables. A bad value is a
//! start-up error naming the variable.

use std::time::Duration;

use hemostat_protocol::{
    Action,
    config::{Env, Setting, Usage, empty_env, process_env},
    gate::{ESCALATION, Ladder, fleet_ladder},
    policy::{ActionPolicy, Policy},
    secret::Secret,
};

use crate::error::AnalyzerError;

/// Which API an LLM speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions, also spoken by Ollama, vLLM, LiteLLM, ...
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// The LLM to consult, when one is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub provider: Provider,
    /// [`MODEL`].
    pub model: String,
    /// [`OPENAI_BASE_URL`] or [`ANTHROPIC_BASE_URL`], without a trailing slash.
    pub base_url: String,
    /// [`OPENAI_API_KEY`] or [`ANTHROPIC_API_KEY`].
    pub api_key: Secret,
}

/// The OpenAI model when `AI_MODEL` is unset: one that accepts JSON mode
/// (`response_format`), cheap enough to ask once per alert.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
// A macro, not only a const, so `MODEL`'s help line can `concat!` it.
macro_rules! default_anthropic_model {
    () => {
        "claude-sonnet-4-5"
    };
}
/// Used when only `ANTHROPIC_API_KEY` is set and `AI_MODEL` is not.
pub const DEFAULT_ANTHROPIC_MODEL: &str = default_anthropic_model!();
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

pub const CONFIDENCE_THRESHOLD: Setting =
    Setting::new("ANALYZER_CONFIDENCE_THRESHOLD", "0.7", "0 to 1: below it, a verdict to act becomes a false alarm");
pub const HISTORY_SIZE: Setting =
    Setting::new("ANALYZER_HISTORY_SIZE", "10", "alerts remembered per container, for the pattern rules");
pub const HISTORY_TTL: Setting =
    Setting::new("ANALYZER_HISTORY_TTL", "3600", "a container's history is forgotten this long after its last alert")
        .seconds();
pub const ALLOWED_ACTIONS: Setting = Setting::new(
    "AI_ALLOWED_ACTIONS",
    Action::LLM_DEFAULT_TEXT,
    "the only actions an LLM verdict may carry: of restart, none, stop, scale_up and cleanup (cleanup, host-wide, only if listed; none is always allowed)",
);
pub const MODEL: Setting = Setting::new(
    "AI_MODEL",
    DEFAULT_MODEL,
    concat!(
        "LLM model; claude* with ANTHROPIC_API_KEY selects Anthropic (only that key set: ",
        default_anthropic_model!(),
        ")"
    ),
);
pub const OPENAI_API_KEY: Setting =
    Setting::unset("OPENAI_API_KEY", "OpenAI Chat Completions, or any server speaking it (Ollama, vLLM)").secret();
pub const OPENAI_BASE_URL: Setting = Setting::new("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL, "its base URL");
pub const ANTHROPIC_API_KEY: Setting = Setting::unset("ANTHROPIC_API_KEY", "Anthropic Messages").secret();
pub const ANTHROPIC_BASE_URL: Setting = Setting::new("ANTHROPIC_BASE_URL", DEFAULT_ANTHROPIC_BASE_URL, "its base URL");
pub const TIMEOUT: Setting = Setting::new(
    "AI_TIMEOUT_SECONDS",
    "10",
    "an LLM slower than this is abandoned and the rules decide (rule_fallback)",
)
.seconds();
pub const CACHE_TTL: Setting = Setting::new(
    "AI_CACHE_TTL_SECONDS",
    "900",
    "an LLM verdict is reused this long for the same failure signature; 0 disables",
)
.seconds();
pub const MAX_CALLS_PER_HOUR: Setting = Setting::new(
    "AI_MAX_CALLS_PER_HOUR",
    "60",
    "LLM calls per clock hour across every analyzer instance; beyond, the rules decide; 0 disables the LLM",
);

/// What `analyzer --help` prints.
pub const REQUIRE_ATTESTED_ALERTS: Setting = Setting::new(
    "ANALYZER_REQUIRE_ATTESTED_ALERTS",
    "true",
    "diagnose only alerts their host's collector attested (false: also alerts a custom monitor publishes by hand)",
);
pub const USAGE: Usage = Usage {
    name: "analyzer",
    about: "\
analyzer: HemoStat's analyzer function (AWS Lambda, or the local emulator).

Consumes health_alert batches from the bridge; decides with its rules, or an
LLM when a key is configured, whether an alert calls for remediation, and
publishes remediation_needed or false_alarm.",
    settings: &[
        CONFIDENCE_THRESHOLD,
        HISTORY_SIZE,
        HISTORY_TTL,
        ALLOWED_ACTIONS,
        MODEL,
        OPENAI_API_KEY,
        OPENAI_BASE_URL,
        ANTHROPIC_API_KEY,
        ANTHROPIC_BASE_URL,
        TIMEOUT,
        CACHE_TTL,
        MAX_CALLS_PER_HOUR,
        REQUIRE_ATTESTED_ALERTS,
        ESCALATION,
    ],
};

/// The settings, each read by the [`Setting`] named in its comment (which
/// holds the variable and its default).
#[derive(Debug, Clone)]
pub struct Config {
    /// [`CONFIDENCE_THRESHOLD`]: below it, a verdict to act becomes a false
    /// alarm.
    pub confidence_threshold: f64,
    /// [`HISTORY_SIZE`]: alerts remembered per container.
    pub history_size: usize,
    /// [`HISTORY_TTL`]: a container's history is forgotten this long after
    /// its last alert; at least 1 s (Redis expires whole seconds).
    pub history_ttl: Duration,
    /// [`ALLOWED_ACTIONS`]: the only actions an LLM verdict may carry;
    /// `none` is always allowed.
    pub allowed_actions: Vec<Action>,
    /// The LLM, from [`MODEL`] and the provider keys; `None`: rules only.
    pub llm: Option<LlmConfig>,
    /// [`TIMEOUT`]: a slower answer is abandoned for the rules.
    pub ai_timeout: Duration,
    /// [`CACHE_TTL`]: how long an LLM verdict is reused for the same failure
    /// signature (image, anomaly kinds, pattern).
    pub cache_ttl: Duration,
    /// [`MAX_CALLS_PER_HOUR`]: LLM calls per clock hour across every analyzer
    /// instance; beyond, the rules decide. 0 disables the LLM.
    pub max_calls_per_hour: u64,
    /// [`REQUIRE_ATTESTED_ALERTS`]: an alert its host's collector did not
    /// attest ([`hemostat_protocol::attestation`]) is refused, not
    /// diagnosed: any collector may put an alert on the stream, only the
    /// named host's may vouch for it.
    pub require_attested_alerts: bool,
    /// `RESPONDER_ESCALATION`, the responder's own setting, read here too:
    /// a container that climbs the fleet's ladder is left to the ladder,
    /// as one with its own `hemostat.escalation` is, not stopped by the
    /// repeat guards ([`crate::rules`]).
    pub escalation: Ladder,
}

impl Default for Config {
    /// Every setting at its default: what an empty environment gives.
    fn default() -> Self {
        Config::from_source(&empty_env).expect("the analyzer defaults are valid")
    }
}

fn bad(name: &'static str, reason: impl Into<String>) -> AnalyzerError {
    AnalyzerError::Config { name, reason: reason.into() }
}

impl Config {
    pub fn from_env() -> Result<Self, AnalyzerError> {
        Config::from_source(&process_env)
    }

    pub fn from_source(env: Env<'_>) -> Result<Self, AnalyzerError> {
        let confidence_threshold: f64 = CONFIDENCE_THRESHOLD.parse(env)?;
        if !(0.0..=1.0).contains(&confidence_threshold) {
            return Err(bad(CONFIDENCE_THRESHOLD.name, "must be between 0 and 1"));
        }
        let history_size: usize = HISTORY_SIZE.parse(env)?;
        if history_size == 0 {
            return Err(bad(HISTORY_SIZE.name, "must be at least 1"));
        }
        let ai_timeout = TIMEOUT.duration(env)?;
        if ai_timeout.is_zero() {
            return Err(bad(TIMEOUT.name, "must be above 0"));
        }
        let llm = select_llm(
            MODEL.configured(env).as_deref(),
            OPENAI_API_KEY.configured_secret(env),
            ANTHROPIC_API_KEY.configured_secret(env),
            OPENAI_BASE_URL.configured(env).as_deref(),
            ANTHROPIC_BASE_URL.configured(env).as_deref(),
        )?;
        Ok(Config {
            confidence_threshold,
            history_size,
            history_ttl: HISTORY_TTL.duration(env)?.max(Duration::from_secs(1)),
            allowed_actions: parse_actions(&ALLOWED_ACTIONS.text(env).unwrap_or_default())?,
            llm,
            ai_timeout,
            cache_ttl: CACHE_TTL.duration(env)?,
            max_calls_per_hour: MAX_CALLS_PER_HOUR.parse(env)?,
            require_attested_alerts: REQUIRE_ATTESTED_ALERTS.flag(env)?,
            escalation: fleet_ladder(env)?,
        })
    }

    /// Whether an LLM verdict may carry `action`.
    pub fn allows(&self, action: Action) -> bool {
        action == Action::None || self.allowed_actions.contains(&action)
    }

    /// The actions an LLM verdict may carry for a container with `policy`
    /// (its labels): the operator's list, of what the policy allows (only
    /// a stop, or nothing, for `hemostat.action=stop`; nothing for notify
    /// and none), with `none`, always allowed.
    pub fn allowed_for(&self, policy: Option<&Policy>) -> Vec<Action> {
        let permits = |a: Action| match policy.map(|p| p.action).unwrap_or_default() {
            _ if a == Action::None => true,
            ActionPolicy::Restart => true,
            ActionPolicy::Stop => a == Action::Stop,
            ActionPolicy::Notify | ActionPolicy::None => false,
        };
        let mut allowed: Vec<Action> = self.allowed_actions.iter().copied().filter(|a| permits(*a)).collect();
        if !allowed.contains(&Action::None) {
            allowed.push(Action::None);
        }
        allowed
    }
}

/// `restart,none,...`, in the order given (the prompt lists them so);
/// `none` is added first when missing. An action no LLM verdict may carry
/// ([`Action::llm_may_choose`]) is refused.
pub fn parse_actions(list: &str) -> Result<Vec<Action>, AnalyzerError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let action: Action = serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| bad(ALLOWED_ACTIONS.name, format!("unknown action {name:?}")))?;
        if !action.llm_may_choose() {
            return Err(bad(ALLOWED_ACTIONS.name, format!("{name} cannot be chosen by the analyzer")));
        }
        if !out.contains(&action) {
            out.push(action);
        }
    }
    if !out.contains(&Action::None) {
        out.insert(0, Action::None);
    }
    Ok(out)
}

/// The provider selection rule:
///
/// 1. `AI_MODEL` starting with `claude` and `ANTHROPIC_API_KEY` set:
///    Anthropic (even when `OPENAI_API_KEY` is set too).
/// 2. Otherwise `OPENAI_API_KEY` set: OpenAI Chat Completions at
///    `OPENAI_BASE_URL` (any model name; this is how Ollama, vLLM or a
///    gateway serving Claude behind the OpenAI API are used).
/// 3. Otherwise `ANTHROPIC_API_KEY` set: Anthropic, with `AI_MODEL` or,
///    when unset, [`DEFAULT_ANTHROPIC_MODEL`]; a non-Claude `AI_MODEL`
///    is a configuration error (it could never work).
/// 4. No key: no LLM, the rules decide (`analysis_method` = `rule_based`).
pub fn select_llm(
    model: Option<&str>,
    openai_key: Option<Secret>,
    anthropic_key: Option<Secret>,
    openai_base: Option<&str>,
    anthropic_base: Option<&str>,
) -> Result<Option<LlmConfig>, AnalyzerError> {
    let is_claude = model.is_some_and(|m| m.to_ascii_lowercase().starts_with("claude"));
    let anthropic = |api_key: Secret, model: &str| LlmConfig {
        provider: Provider::Anthropic,
        model: model.to_owned(),
        base_url: base(anthropic_base, DEFAULT_ANTHROPIC_BASE_URL),
        api_key,
    };
    Ok(match (openai_key, anthropic_key) {
        (_, Some(key)) if is_claude => Some(anthropic(key, model.unwrap_or(DEFAULT_ANTHROPIC_MODEL))),
        (Some(key), _) => Some(LlmConfig {
            provider: Provider::OpenAi,
            model: model.unwrap_or(DEFAULT_MODEL).to_owned(),
            base_url: base(openai_base, DEFAULT_OPENAI_BASE_URL),
            api_key: key,
        }),
        (None, Some(_)) if model.is_some() => {
            return Err(bad(MODEL.name, "only ANTHROPIC_API_KEY is set, so the model must be a Claude model"));
        }
        (None, Some(key)) => Some(anthropic(key, DEFAULT_ANTHROPIC_MODEL)),
        (None, None) => None,
    })
}

fn base(configured: Option<&str>, default: &str) -> String {
    configured.unwrap_or(default).trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Option<Secret> {
        Some(Secret::new(k))
    }

    #[test]
    fn provider_selection_rule() {
        let none = select_llm(None, None, None, None, None).unwrap();
        assert_eq!(none, None);
        let openai = select_llm(None, key("sk-o"), None, None, None).unwrap().unwrap();
        assert_eq!((openai.provider, openai.model.as_str()), (Provider::OpenAi, "gpt-4o-mini"));
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        let both = select_llm(Some("claude-sonnet-4-5"), key("sk-o"), key("sk-a"), None, None).unwrap().unwrap();
        assert_eq!((both.provider, both.api_key.expose()), (Provider::Anthropic, "sk-a"));
        assert_eq!(both.base_url, "https://api.anthropic.com");
        let gpt = select_llm(Some("gpt-4o"), key("sk-o"), key("sk-a"), None, None).unwrap().unwrap();
        assert_eq!(gpt.provider, Provider::OpenAi);
        // A Claude name with only an OpenAI key: an OpenAI-compatible gateway.
        let gw = select_llm(Some("claude-x"), key("k"), None, Some("http://gw:4000/v1/"), None).unwrap().unwrap();
        assert_eq!((gw.provider, gw.base_url.as_str()), (Provider::OpenAi, "http://gw:4000/v1"));
        let only_a = select_llm(None, None, key("sk-a"), None, None).unwrap().unwrap();
        assert_eq!((only_a.provider, only_a.model.as_str()), (Provider::Anthropic, DEFAULT_ANTHROPIC_MODEL));
        let err = select_llm(Some("gpt-4"), None, key("sk-a"), None, None).unwrap_err().to_string();
        assert!(err.contains("AI_MODEL") && !err.contains("sk-a"), "{err}");
    }

    #[test]
    fn keys_never_show_in_debug() {
        let cfg =
            Config { llm: select_llm(None, key("sk-secret-123"), None, None, None).unwrap(), ..Config::default() };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("sk-secret-123") && shown.contains("redacted"), "{shown}");
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults() {
        let d = Config::default();
        assert_eq!((d.confidence_threshold, d.history_size, d.max_calls_per_hour), (0.7, 10, 60));
        assert_eq!((d.history_ttl, d.ai_timeout, d.cache_ttl), (secs(3600), secs(10), secs(900)));
        assert_eq!(d.allowed_actions, Action::LLM_DEFAULT);
        assert!(d.llm.is_none());
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        let env =
            env_of(&[("AI_TIMEOUT_SECONDS", "2.5"), ("AI_CACHE_TTL_SECONDS", "15m"), ("ANALYZER_HISTORY_TTL", "2h")]);
        let c = Config::from_source(&env).unwrap();
        assert_eq!((c.ai_timeout, c.cache_ttl, c.history_ttl), (Duration::from_millis(2500), secs(900), secs(7200)));
        let c = Config::from_source(&env_of(&[("AI_TIMEOUT_SECONDS", "500ms"), ("ANALYZER_HISTORY_TTL", "0")]));
        let c = c.unwrap();
        assert_eq!((c.ai_timeout, c.history_ttl), (Duration::from_millis(500), secs(1)));
        for (name, value) in
            [("AI_TIMEOUT_SECONDS", "0"), ("AI_TIMEOUT_SECONDS", "10x"), ("AI_CACHE_TTL_SECONDS", "-1")]
        {
            let env = move |n: &str| (n == name).then(|| value.to_owned());
            let err = Config::from_source(&env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn help_names_every_setting_and_no_key() {
        let help = USAGE.help(&env_of(&[("OPENAI_API_KEY", "sk-secret-123")]));
        for s in USAGE.settings {
            assert!(help.contains(s.name), "{}", s.name);
        }
        assert!(!help.contains("sk-secret-123") && help.contains("[secret: set]"), "{help}");
    }

    #[test]
    fn a_models_choices_are_what_the_containers_policy_allows() {
        let c = Config { allowed_actions: Action::LLM_CHOICES.to_vec(), ..Config::default() };
        let all = c.allowed_for(None);
        assert!(all.contains(&Action::Cleanup) && all.contains(&Action::Restart) && all.contains(&Action::None));
        let with = |action| Policy { action, ..Policy::default() };
        assert_eq!(c.allowed_for(Some(&with(ActionPolicy::Stop))), [Action::None, Action::Stop]);
        assert_eq!(c.allowed_for(Some(&with(ActionPolicy::Notify))), [Action::None]);
        // By default, nothing host-wide.
        assert!(!Config::default().allowed_for(None).contains(&Action::Cleanup));
    }

    #[test]
    fn allowed_actions_always_include_none_and_refuse_exec() {
        assert_eq!(parse_actions("restart").unwrap(), vec![Action::None, Action::Restart]);
        assert!(parse_actions("restart,exec").is_err());
        assert!(parse_actions("start").is_err());
        assert!(parse_actions("reboot").is_err());
    }
}
