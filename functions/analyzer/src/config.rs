//! The analyzer's settings, from environment variables. A bad value is a
//! start-up error naming the variable.

use std::{fmt, time::Duration};

use hemostat_protocol::{
    Action,
    config::{env_or, env_secret},
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

/// An API key. Its `Debug` and `Display` never show the value, so a key
/// cannot reach a log line through a `{:?}` of the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that needs it: a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The LLM to consult, when one is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub provider: Provider,
    /// `AI_MODEL`.
    pub model: String,
    /// `OPENAI_BASE_URL` or `ANTHROPIC_BASE_URL`, without a trailing slash.
    pub base_url: String,
    /// `OPENAI_API_KEY` or `ANTHROPIC_API_KEY`.
    pub api_key: ApiKey,
}

pub const DEFAULT_MODEL: &str = "gpt-4";
/// Used when only `ANTHROPIC_API_KEY` is set and `AI_MODEL` is not.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// What the LLM may choose from unless `AI_ALLOWED_ACTIONS` says otherwise.
pub const DEFAULT_ALLOWED_ACTIONS: [Action; 5] =
    [Action::Restart, Action::None, Action::Stop, Action::ScaleUp, Action::Cleanup];

#[derive(Debug, Clone)]
pub struct Config {
    /// `ANALYZER_CONFIDENCE_THRESHOLD` (0.7): below it, a verdict to act
    /// becomes a false alarm.
    pub confidence_threshold: f64,
    /// `ANALYZER_HISTORY_SIZE` (10): alerts remembered per container.
    pub history_size: usize,
    /// `ANALYZER_HISTORY_TTL` (3600 s): a container's history is forgotten
    /// this long after its last alert.
    pub history_ttl: Duration,
    /// `AI_ALLOWED_ACTIONS` (`restart,none,stop,scale_up,cleanup`): the only
    /// actions an LLM verdict may carry; `none` is always allowed.
    pub allowed_actions: Vec<Action>,
    /// The LLM, from `AI_MODEL` and the provider keys; `None`: rules only.
    pub llm: Option<LlmConfig>,
    /// `AI_TIMEOUT_SECONDS` (10): a slower answer is abandoned for the rules.
    pub ai_timeout: Duration,
    /// `AI_CACHE_TTL_SECONDS` (900): how long an LLM verdict is reused for
    /// the same failure signature (image, anomaly kinds, pattern).
    pub cache_ttl: Duration,
    /// `AI_MAX_CALLS_PER_HOUR` (60): LLM calls per clock hour across every
    /// analyzer instance; beyond, the rules decide. 0 disables the LLM.
    pub max_calls_per_hour: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            confidence_threshold: 0.7,
            history_size: 10,
            history_ttl: Duration::from_secs(3600),
            allowed_actions: DEFAULT_ALLOWED_ACTIONS.to_vec(),
            llm: None,
            ai_timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(900),
            max_calls_per_hour: 60,
        }
    }
}

fn bad(name: &'static str, reason: impl Into<String>) -> AnalyzerError {
    AnalyzerError::Config { name, reason: reason.into() }
}

impl Config {
    pub fn from_env() -> Result<Self, AnalyzerError> {
        let d = Config::default();
        let confidence_threshold: f64 = env_or("ANALYZER_CONFIDENCE_THRESHOLD", d.confidence_threshold)?;
        if !(0.0..=1.0).contains(&confidence_threshold) {
            return Err(bad("ANALYZER_CONFIDENCE_THRESHOLD", "must be between 0 and 1"));
        }
        let history_size: usize = env_or("ANALYZER_HISTORY_SIZE", d.history_size)?;
        if history_size == 0 {
            return Err(bad("ANALYZER_HISTORY_SIZE", "must be at least 1"));
        }
        let history_ttl = Duration::from_secs(env_or("ANALYZER_HISTORY_TTL", 3600u64)?.max(1));
        let allowed = std::env::var("AI_ALLOWED_ACTIONS").unwrap_or_default();
        let allowed_actions = if allowed.trim().is_empty() { d.allowed_actions } else { parse_actions(&allowed)? };
        let ai_timeout: f64 = env_or("AI_TIMEOUT_SECONDS", 10.0)?;
        if !(ai_timeout.is_finite() && ai_timeout > 0.0) {
            return Err(bad("AI_TIMEOUT_SECONDS", "must be a positive number"));
        }
        let llm = select_llm(
            env_secret("AI_MODEL").as_deref(),
            env_secret("OPENAI_API_KEY").map(ApiKey),
            env_secret("ANTHROPIC_API_KEY").map(ApiKey),
            env_secret("OPENAI_BASE_URL").as_deref(),
            env_secret("ANTHROPIC_BASE_URL").as_deref(),
        )?;
        Ok(Config {
            confidence_threshold,
            history_size,
            history_ttl,
            allowed_actions,
            llm,
            ai_timeout: Duration::from_secs_f64(ai_timeout),
            cache_ttl: Duration::from_secs(env_or("AI_CACHE_TTL_SECONDS", 900u64)?),
            max_calls_per_hour: env_or("AI_MAX_CALLS_PER_HOUR", 60u64)?,
        })
    }

    /// Whether an LLM verdict may carry `action`.
    pub fn allows(&self, action: Action) -> bool {
        action == Action::None || self.allowed_actions.contains(&action)
    }
}

/// `restart,none,...`. `start` and `exec` are refused: an alert never
/// calls for starting a running container, and `exec` needs a command line
/// no verdict carries.
pub fn parse_actions(list: &str) -> Result<Vec<Action>, AnalyzerError> {
    let mut out = vec![Action::None];
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let action: Action = serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| bad("AI_ALLOWED_ACTIONS", format!("unknown action {name:?}")))?;
        if matches!(action, Action::Start | Action::Exec) {
            return Err(bad("AI_ALLOWED_ACTIONS", format!("{name} cannot be chosen by the analyzer")));
        }
        if !out.contains(&action) {
            out.push(action);
        }
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
    openai_key: Option<ApiKey>,
    anthropic_key: Option<ApiKey>,
    openai_base: Option<&str>,
    anthropic_base: Option<&str>,
) -> Result<Option<LlmConfig>, AnalyzerError> {
    let is_claude = model.is_some_and(|m| m.to_ascii_lowercase().starts_with("claude"));
    let anthropic = |api_key: ApiKey, model: &str| LlmConfig {
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
            return Err(bad("AI_MODEL", "only ANTHROPIC_API_KEY is set, so the model must be a Claude model"));
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

    fn key(k: &str) -> Option<ApiKey> {
        Some(ApiKey::new(k))
    }

    #[test]
    fn provider_selection_rule() {
        let none = select_llm(None, None, None, None, None).unwrap();
        assert_eq!(none, None);
        let openai = select_llm(None, key("sk-o"), None, None, None).unwrap().unwrap();
        assert_eq!((openai.provider, openai.model.as_str()), (Provider::OpenAi, "gpt-4"));
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

    #[test]
    fn allowed_actions_always_include_none_and_refuse_exec() {
        assert_eq!(parse_actions("restart").unwrap(), vec![Action::None, Action::Restart]);
        assert!(parse_actions("restart,exec").is_err());
        assert!(parse_actions("reboot").is_err());
    }
}
