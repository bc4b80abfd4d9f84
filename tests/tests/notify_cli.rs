//! `hemostat notify test`, the built binary, against local receivers: a
//! Slack that accepts and an ntfy that refuses the token, each sink's
//! result printed, exit 1 when one failed, no URL or token in the output;
//! `--sink`, `--json`, and the usage errors. Needs no Redis.

use std::{
    process::Output,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, http::HeaderMap, response::IntoResponse};
use hemostat_e2e::bin_dir;
use serde_json::{Value, json};

/// A receiver on a real socket answering `status` and `body`; records
/// each request's body and `Authorization` header.
async fn receiver(status: u16, body: Value) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, raw: Bytes| {
        let (log, body) = (log.clone(), body.clone());
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            log.lock().unwrap().push((String::from_utf8_lossy(&raw).into_owned(), auth));
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// `hemostat` with only `env` (no inherited sink settings, no Redis).
async fn hemostat(env: &[(&str, String)], args: &[&str]) -> Output {
    let path = bin_dir().join("hemostat");
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    let mut cmd = tokio::process::Command::new(&path);
    cmd.env_clear().env("HOSTNAME", "web-1").env("ALERT_HTTP_TIMEOUT", "1s").env("ALERT_RETRY_BASE", "50ms");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn notify_test_prints_each_sinks_result_and_fails_when_one_failed() {
    let (slack, slack_seen) = receiver(200, json!("ok")).await;
    let forbidden = json!({"code": 40301, "http": 403, "error": "forbidden", "link": "https://ntfy.sh/docs/publish/#authentication"});
    let (ntfy, ntfy_seen) = receiver(403, forbidden).await;
    let env = [
        ("SLACK_WEBHOOK_URL", format!("{slack}/services/T0/B0/SLACKSECRET")),
        ("ALERT_NTFY_URL", format!("{ntfy}/secret-topic")),
        ("ALERT_NTFY_TOKEN", "tk_NTFYSECRET".to_owned()),
    ];

    let out = hemostat(&env, &["notify", "test"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("slack") && l.contains("delivered (1 attempt(s)")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("ntfy") && l.contains("FAILED: HTTP 403, not retried: forbidden")),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 2 sink(s) failed"), "{stderr}");
    for secret in ["SLACKSECRET", "secret-topic", "NTFYSECRET", "127.0.0.1"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} shown: {stdout}{stderr}");
    }
    let slack_body: Value = serde_json::from_str(&slack_seen.lock().unwrap()[0].0).unwrap();
    assert_eq!(slack_body["text"], "HemoStat: notification test (web-1)");
    assert_eq!(ntfy_seen.lock().unwrap()[0].1, "Bearer tk_NTFYSECRET", "the token is sent, never shown");

    // One sink, as JSON.
    let out = hemostat(&env, &["--json", "notify", "test", "--sink", "slack"]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(
        (rows[0]["sink"].as_str(), rows[0]["ok"].as_bool(), rows[0]["attempts"].as_u64()),
        (Some("slack"), Some(true), Some(1))
    );
    assert_eq!(slack_seen.lock().unwrap().len(), 2);
    assert_eq!(ntfy_seen.lock().unwrap().len(), 1, "--sink slack sends nothing to ntfy");
}

#[tokio::test]
async fn notify_test_usage_errors_are_exit_2_with_one_clear_line() {
    let out = hemostat(&[], &["notify", "test"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no sink configured"), "{}", text(&out.stderr));

    let env = [("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/x".to_owned())];
    let out = hemostat(&env, &["notify", "test", "--sink", "pager"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("expected one of") && err.contains("pagerduty") && !err.contains("panicked"), "{err}");

    let out = hemostat(&[("ALERT_NTFY_MIN_SEVERITY", "loud".to_owned())], &["notify", "test"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ALERT_NTFY_MIN_SEVERITY"), "{}", text(&out.stderr));
}
