//! Settings naming a secret, read through a stand-in for the AWS Parameters
//! and Secrets Lambda Extension that answers as the extension does: `GET
//! /secretsmanager/get?secretId=<id>` with the session token in
//! `X-Aws-Parameters-Secrets-Token`, Secrets Manager's `GetSecretValue` JSON
//! on success, 401 for a wrong token, 400 with the service's error for an
//! unknown secret.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use hemostat_protocol::stored_secret::{Extension, resolve};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const TOKEN: &str = "session-token-of-the-function";
const URLS: &str = r#"{"analyzer":"rediss://analyzer:pw-a@redis.internal:6379","responder":"rediss://responder:pw-r@redis.internal:6379"}"#;

/// The stand-in: `secrets` by id; counts the requests it answers.
async fn extension(secrets: HashMap<&'static str, &'static str>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let secrets = secrets.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).into_owned();
                let target = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let id = target.strip_prefix("/secretsmanager/get?secretId=").unwrap_or("").replace("%2F", "/");
                let authorized = request.lines().any(|l| l == format!("X-Aws-Parameters-Secrets-Token: {TOKEN}"));
                let (status, body) = if !authorized {
                    ("401 Unauthorized", "Unauthorized".to_owned())
                } else if let Some(secret) = secrets.get(id.as_str()) {
                    let json = serde_json::json!({
                        "ARN": format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{id}-AbCdEf"),
                        "CreatedDate": "2026-12-07T03:00:00Z",
                        "Name": id,
                        "SecretString": secret,
                        "VersionId": "3f1c6e1a-8c8e-4f5b-9d7e-0a1b2c3d4e5f",
                        "VersionStages": ["AWSCURRENT"],
                    });
                    ("200 OK", json.to_string())
                } else {
                    let json = r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#;
                    ("400 Bad Request", json.to_owned())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, served)
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn settings_naming_a_secret_read_as_it_each_secret_once() {
    let (port, served) = extension(HashMap::from([
        ("hemostat/redis-urls", URLS),
        ("hemostat/slack", "https://hooks.slack.com/services/T/B/x"),
    ]))
    .await;
    let ext = || Ok(Extension { port, token: TOKEN.into() });
    let resolved = resolve(
        vars(&[
            ("REDIS_URL", "aws-secretsmanager:hemostat/redis-urls#analyzer"),
            ("BRIDGE_URL", "aws-secretsmanager:hemostat/redis-urls#responder"),
            ("SLACK_WEBHOOK_URL", "aws-secretsmanager:hemostat/slack"),
            ("RUST_LOG", "info"),
        ]),
        ext,
    )
    .await
    .unwrap();
    assert_eq!(resolved["REDIS_URL"], "rediss://analyzer:pw-a@redis.internal:6379");
    assert_eq!(resolved["BRIDGE_URL"], "rediss://responder:pw-r@redis.internal:6379");
    assert_eq!(resolved["SLACK_WEBHOOK_URL"], "https://hooks.slack.com/services/T/B/x");
    assert!(!resolved.contains_key("RUST_LOG"));
    assert_eq!(served.load(Ordering::SeqCst), 2, "one request per secret");

    // Nothing names a secret: the extension is not even looked for.
    let none = resolve(vars(&[("REDIS_URL", "redis://127.0.0.1:6379")]), || panic!("asked for the extension")).await;
    assert!(none.unwrap().is_empty());
}

#[tokio::test]
async fn refusals_name_the_setting_and_the_secret_never_a_value() {
    let (port, _) = extension(HashMap::from([("hemostat/redis-urls", URLS)])).await;
    let err = |r: Result<HashMap<String, String>, _>| -> String {
        let e: hemostat_protocol::error::ProtocolError = r.expect_err("refused");
        let text = e.to_string();
        assert!(!text.contains("pw-a") && !text.contains("pw-r") && !text.contains(TOKEN), "{text}");
        text
    };
    // A wrong token: the extension's 401.
    let e = err(resolve(vars(&[("REDIS_URL", "aws-secretsmanager:hemostat/redis-urls#analyzer")]), || {
        Ok(Extension { port, token: "someone-else".into() })
    })
    .await);
    assert!(e.contains("REDIS_URL") && e.contains("hemostat/redis-urls") && e.contains("HTTP 401"), "{e}");
    let ext = || Ok(Extension { port, token: TOKEN.into() });
    // An unknown secret: Secrets Manager's 400, not quoted.
    let e = err(resolve(vars(&[("REDIS_URL", "aws-secretsmanager:hemostat/nope")]), ext).await);
    assert!(e.contains("HTTP 400") && !e.contains("ResourceNotFound"), "{e}");
    // A key the JSON lacks.
    let e = err(resolve(vars(&[("REDIS_URL", "aws-secretsmanager:hemostat/redis-urls#exporter")]), ext).await);
    assert!(e.contains("\"exporter\""), "{e}");
    // A key asked of a secret that is no JSON object.
    let (port, _) = extension(HashMap::from([("plain", "rediss://u:pw-a@h:6379")])).await;
    let e = err(resolve(vars(&[("REDIS_URL", "aws-secretsmanager:plain#analyzer")]), || {
        Ok(Extension { port, token: TOKEN.into() })
    })
    .await);
    assert!(e.contains("not a JSON object"), "{e}");
    // Outside Lambda: no session token, a clear refusal.
    let e = err(resolve(vars(&[("REDIS_URL", "aws-secretsmanager:x")]), || Extension::from_env(&|_| None)).await);
    assert!(e.contains("AWS_SESSION_TOKEN"), "{e}");
}

#[tokio::test]
async fn an_extension_that_is_not_there_is_named_after_a_few_seconds() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let began = std::time::Instant::now();
    let e = resolve(vars(&[("REDIS_URL", "aws-secretsmanager:x")]), || Ok(Extension { port, token: TOKEN.into() }))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("add its layer"), "{e}");
    assert!(began.elapsed() >= std::time::Duration::from_secs(4), "gave up at once: {:?}", began.elapsed());
}
