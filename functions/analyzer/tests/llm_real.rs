//! The LLM path against a real OpenAI-compatible server and a real model:
//! llama.cpp's `llama-server` with Gemma 3 270M, started by
//! `scripts/llm.sh start`, which writes `HEMOSTAT_TEST_LLM_URL` (and
//! `HEMOSTAT_TEST_LLM_MODEL`) into its env file. Without the URL the test
//! says so and passes, except in CI (`CI=true`), where that is a failure
//! unless `HEMOSTAT_TEST_LLM_LATER=1` says the test command runs it again
//! at its end, once the server is built and started (`scripts/test.sh`).
//!
//! A 270M model is often wrong; what must hold whatever it says
//! (`hemostat_e2e::llm_incidents::evaluate` checks it per incident): the
//! server's structured output is used (every answer is a bare JSON object
//! of exactly the schema's keys, its action and cause from their lists),
//! a verdict that decides cites only lines the container printed, an
//! answer that is refused leaves the rules' decision, and the model never
//! makes an incident worse where the rules alone would not have.

use std::time::Duration;

use hemostat_e2e::{RedisServer, llm_incidents};

/// A loaded two-core machine answers in a few seconds; the limit only
/// catches a server that stopped answering.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The server's URL and model name, or `None` (with the reason printed)
/// when the test may be skipped.
fn server() -> Option<(String, String)> {
    let model = std::env::var("HEMOSTAT_TEST_LLM_MODEL").unwrap_or_else(|_| "gemma-3-270m".into());
    match std::env::var("HEMOSTAT_TEST_LLM_URL") {
        Ok(url) if !url.is_empty() => Some((url, model)),
        _ if std::env::var("HEMOSTAT_TEST_LLM_LATER").is_ok_and(|v| v == "1") => {
            eprintln!("LATER: the test command runs this once the real model's server is up");
            None
        }
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("HEMOSTAT_TEST_LLM_URL is not set in CI: scripts/test.sh starts the model with scripts/llm.sh")
        }
        _ => {
            eprintln!("SKIPPED: HEMOSTAT_TEST_LLM_URL is not set (scripts/llm.sh start; source /tmp/hemostat-llm/env)");
            None
        }
    }
}

#[tokio::test]
async fn a_real_model_decides_and_nothing_it_says_makes_things_worse() {
    let Some((url, model)) = server() else { return };
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let rows = llm_incidents::evaluate(&conn, &url, &model, TIMEOUT).await;
    println!("{}", llm_incidents::table(&rows));
    let problems: Vec<String> =
        rows.iter().flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.incident.name))).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(rows.len(), llm_incidents::all().len());
    // Every answer was timed, and the path carried the model's own verdict
    // at least once: otherwise this shows only the fallback.
    assert!(rows.iter().all(|r| r.latency.is_some_and(|l| !l.is_zero() && l < TIMEOUT)));
    assert!(rows.iter().any(|r| r.together.method == "llm"), "no verdict of the model was accepted");
}
