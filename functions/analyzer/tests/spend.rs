//! Spend control against a real redis-server: the verdict cache by failure
//! signature and the hourly call budget shared by every instance.

mod support;

use std::time::Duration;

use hemostat_analyzer::{Analyzer, Config, LlmClient, LlmConfig, Provider, hour_bucket, http_client, take_llm_call};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{EventKind, keys, secret::Secret};
use redis::AsyncCommands;
use support::{fake_llm::*, *};

const TIMEOUT: Duration = Duration::from_secs(2);

async fn analyzer(redis: &RedisServer, fake: &FakeLlm, config: Config) -> Analyzer<Recorder, LlmClient> {
    let llm = LlmConfig {
        provider: Provider::OpenAi,
        model: "gpt-4".into(),
        base_url: fake.openai_base(),
        api_key: Secret::new("k"),
    };
    let client = LlmClient::new(http_client(TIMEOUT).unwrap(), &llm, TIMEOUT);
    Analyzer::new(
        Config { llm: Some(llm), ai_timeout: TIMEOUT, ..config },
        Recorder::default(),
        manager(redis).await,
        Some(client),
    )
}

/// Panics: a cause a restart can fix, each another failure line.
const PANICS: [&str; 4] = [
    "panic: runtime error: slice bounds out of range",
    "panic: runtime error: index out of range [3] with length 3",
    "panic: runtime error: integer divide by zero",
    "panic: assignment to entry in nil map",
];

/// A crash of a cause a restart can fix, the `n`th panic of [`PANICS`]: a
/// container's second within minutes is still asked about when it fails
/// another way (a second exit nothing explains is not, nor the same
/// failure again: see rules_path.rs). The failure signature the cache
/// keys on is the same for all (image, anomaly, pattern, cause).
fn crash(name: &'static str, n: usize) -> AlertSpec {
    AlertSpec::new(name, "non_zero_exit").logs(&[PANICS[n]])
}

#[tokio::test]
async fn same_failure_signature_is_answered_from_the_cache_until_it_expires() {
    let (redis, fake) = (RedisServer::start().await, FakeLlm::start().await);
    let a = analyzer(&redis, &fake, Config { cache_ttl: Duration::from_secs(2), ..config() }).await;
    // One container crashing the same way again: one call, then the cache.
    // Another container of the same image asks for itself: one container's
    // logs (which may steer a model) never decide for another's.
    for (name, n, cached) in [("api-1", 0, false), ("api-2", 0, false), ("api-1", 1, true)] {
        let d = decide(&a, crash(name, n).envelope(0.0)).await;
        assert_eq!(
            (d.method.as_deref(), d.model.as_deref(), d.confidence, d.cached),
            (Some("llm"), Some("gpt-4"), 0.88, cached),
            "{name}"
        );
        assert_eq!(d.json.contains("llm_cached"), cached, "only a cached verdict says so: {}", d.json);
    }
    assert_eq!(fake.requests(), 2);
    // Another image, or other anomalies: a new call.
    decide(&a, crash("api-2", 1).image("acme/web:2").envelope(0.0)).await;
    assert_eq!(fake.requests(), 3);
    decide(&a, AlertSpec::new("api-5", "oom_killed").envelope(0.0)).await;
    assert_eq!(fake.requests(), 4);
    // Its third within minutes is a crash loop: neither the lone crash's
    // cached verdict nor a new call applies, the rules' verdict is final.
    let third = decide(&a, crash("api-1", 2).envelope(0.0)).await;
    assert_eq!((third.method.as_deref(), third.confidence), (Some("rule_based"), 0.6), "{third:?}");
    assert_eq!(fake.requests(), 4);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    decide(&a, AlertSpec::new("api-5", "oom_killed").envelope(0.0)).await;
    assert_eq!(fake.requests(), 5, "expired entries are asked again");
}

#[tokio::test]
async fn failed_answers_are_not_cached() {
    let (redis, fake) = (RedisServer::start().await, FakeLlm::start().await);
    let a = analyzer(&redis, &fake, config()).await;
    fake.set(Mode::ServerError);
    assert_eq!(decide(&a, crash("api-1", 0).envelope(0.0)).await.method.as_deref(), Some("rule_fallback"));
    fake.set(Mode::Good);
    assert_eq!(decide(&a, crash("api-2", 0).envelope(0.0)).await.method.as_deref(), Some("llm"));
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn beyond_the_hourly_budget_the_rules_decide() {
    let (redis, fake) = (RedisServer::start().await, FakeLlm::start().await);
    let a = analyzer(&redis, &fake, Config { max_calls_per_hour: 2, ..config() }).await;
    let mut methods = Vec::new();
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        // Distinct images: every alert would need a call.
        let d = decide(&a, crash(name, 0).image(format!("img-{i}")).envelope(0.0)).await;
        methods.push((d.method.unwrap(), d.fallback_reason, d.kind, d.confidence));
    }
    assert_eq!(fake.requests(), 2);
    let llm = ("llm".to_owned(), None, EventKind::RemediationNeeded, 0.88);
    let fallback = ("rule_fallback".to_owned(), Some("budget_exhausted".to_owned()), EventKind::RemediationNeeded, 0.9);
    assert_eq!(methods, [llm.clone(), llm, fallback.clone(), fallback]);
    // The counter is this hour's, and expires.
    let key = keys::ai_calls(&hour_bucket(chrono::Utc::now().timestamp_millis()));
    let mut c = redis.connection().await;
    let (count, ttl): (u64, i64) = (c.get(&key).await.unwrap(), c.ttl(&key).await.unwrap());
    assert_eq!(count, 4);
    assert!(ttl > 3600 && ttl <= 7200, "ttl {ttl}");
    // A cached verdict needs no budget.
    let d = decide(&a, crash("a", 1).image("img-0").envelope(0.0)).await;
    assert_eq!(d.method.as_deref(), Some("llm"));
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn the_budget_holds_under_concurrent_instances() {
    let redis = RedisServer::start().await;
    let conn = manager(&redis).await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut conn = conn.clone();
        tasks.spawn(async move { take_llm_call(&mut conn, 7, now).await.unwrap() });
    }
    let granted = tasks.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(granted, 7);
    let mut conn = conn.clone();
    assert!(!take_llm_call(&mut conn, 0, now).await.unwrap(), "0 disables the LLM");
}
