//! Each notification service against a local server speaking its API's
//! shape: the paths, headers and JSON it checks, the answers it documents
//! (success codes, 400 bodies, 401/403/404, 429 with `Retry-After` or
//! Discord's `retry_after`). Then several sinks at once through the
//! handler, each with its own filter, against a real redis-server.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use hemostat_alert::{AlertError, Config, SINK_NAMES, try_sinks};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{EventKind, batch, secret::Secret};
use serde_json::{Value, json};
use support::{complete, envelope, record};

/// One request a fake service saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    path: String,
    query: String,
    headers: HeaderMap,
    raw: Bytes,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.raw).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// The service's own logic: what it answers a request.
type Api = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A fake service on a real socket: `script` overrides the first answers
/// (a 429, a 503), then `api` answers as the real service would.
struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start(api: Api, script: Vec<Answer>) -> Fake {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, raw: Bytes| {
            let (log, script, api) = (log.clone(), script.clone(), api.clone());
            async move {
                let s = Seen {
                    at: Instant::now(),
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or("").to_owned(),
                    headers,
                    raw,
                };
                log.lock().unwrap().push(s.clone());
                let scripted = {
                    let mut q = script.lock().unwrap();
                    if q.is_empty() { None } else { Some(q.remove(0)) }
                };
                let (status, headers, body) = scripted.unwrap_or_else(|| api(&s));
                let mut response: Response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (k, v) in headers {
                    response.headers_mut().insert(k, v.parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base: format!("http://{addr}"), seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn json_answer(status: u16, body: Value) -> Answer {
    (status, vec![("content-type", "application/json".into())], body.to_string())
}

/// Short bounds so failure paths take a second, not the production 15 s.
fn quick() -> Config {
    Config {
        http_timeout: Duration::from_millis(500),
        max_attempts: 3,
        retry_base: Duration::from_millis(50),
        notify_deadline: Duration::from_secs(3),
        ..Config::default()
    }
}

async fn one(config: &Config, sink: &str) -> Result<hemostat_alert::Delivered, AlertError> {
    let mut tried = try_sinks(config, "h1", Some(sink)).await.expect("configured");
    assert_eq!(tried.len(), 1);
    tried.remove(0).result
}

// ---- ntfy: POST /<topic>, text body, Title/Priority/Tags, Bearer token.

const NTFY_TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

fn ntfy_api() -> Api {
    Arc::new(|s: &Seen| {
        if s.header("authorization") != Some(&format!("Bearer {NTFY_TOKEN}")) {
            return json_answer(
                403,
                json!({"code": 40301, "http": 403, "error": "forbidden", "link": "https://ntfy.sh/docs/publish/#authentication"}),
            );
        }
        let message = String::from_utf8_lossy(&s.raw).to_string();
        json_answer(
            200,
            json!({"id": "sPs71M8A2T", "time": 1_643_135_124, "event": "message", "topic": s.path.trim_start_matches('/'),
                "title": s.header("title"), "message": message, "priority": s.header("priority").and_then(|p| p.parse::<u8>().ok())}),
        )
    })
}

#[tokio::test]
async fn ntfy_gets_title_priority_tags_and_the_token() {
    let fake = Fake::start(ntfy_api(), vec![]).await;
    let config = Config {
        ntfy_url: Some(Secret::new(format!("{}/hemostat-alerts", fake.base))),
        ntfy_token: Some(Secret::new(NTFY_TOKEN)),
        ..quick()
    };
    one(&config, "ntfy").await.expect("delivered");
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/hemostat-alerts");
    assert!(s.header("title").unwrap().starts_with("HemoStat: notification test"), "{:?}", s.headers);
    assert_eq!(s.header("priority"), Some("3"));
    assert_eq!(s.header("tags"), Some("information_source,system_alert,notification_test"));
    let text = String::from_utf8_lossy(&s.raw);
    assert!(text.contains("this sink works") && text.contains("Host: h1"), "{text}");
}

#[tokio::test]
async fn ntfy_refusal_says_forbidden_and_429_is_retried() {
    let fake = Fake::start(ntfy_api(), vec![]).await;
    let url = format!("{}/hemostat-alerts", fake.base);
    let wrong =
        Config { ntfy_url: Some(Secret::new(&url)), ntfy_token: Some(Secret::new("tk_wrongwrongwrong")), ..quick() };
    let err = one(&wrong, "ntfy").await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, AlertError::Refused { status: 403, .. }), "{shown}");
    assert!(
        shown.contains("forbidden") && !shown.contains("tk_wrong") && !shown.contains("hemostat-alerts"),
        "{shown}"
    );
    assert_eq!(fake.seen().len(), 1, "a 403 is final");

    let limited = Fake::start(
        ntfy_api(),
        vec![(
            429,
            vec![("retry-after", "1".into())],
            json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"}).to_string(),
        )],
    )
    .await;
    let config = Config {
        ntfy_url: Some(Secret::new(format!("{}/t", limited.base))),
        ntfy_token: Some(Secret::new(NTFY_TOKEN)),
        ..quick()
    };
    one(&config, "ntfy").await.expect("delivered after the wait");
    let seen = limited.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(950), "Retry-After: 1 honoured, waited {waited:?}");
}

// ---- Discord: webhook JSON with embeds; 204; 429 JSON retry_after.

fn discord_api() -> Api {
    Arc::new(|s: &Seen| {
        if !s.path.starts_with("/api/webhooks/1234/") || !s.path.ends_with("/goodtoken") {
            return json_answer(404, json!({"message": "Unknown Webhook", "code": 10015}));
        }
        let body = s.json();
        let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
        if embeds.is_empty() && body["content"].as_str().unwrap_or("").is_empty() {
            return json_answer(400, json!({"message": "Cannot send an empty message", "code": 50006}));
        }
        for e in &embeds {
            let too_long = e["title"].as_str().unwrap_or("").chars().count() > 256
                || e["description"].as_str().unwrap_or("").chars().count() > 4096
                || e["fields"].as_array().is_some_and(|f| {
                    f.len() > 25 || f.iter().any(|f| f["value"].as_str().unwrap_or("").chars().count() > 1024)
                });
            if too_long {
                return json_answer(
                    400,
                    json!({"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}}}),
                );
            }
        }
        (204, vec![], String::new())
    })
}

#[tokio::test]
async fn discord_gets_an_embed_without_mentions_and_waits_its_retry_after() {
    let limited = json!({"message": "You are being rate limited.", "retry_after": 0.4, "global": false}).to_string();
    // The header says 5 s; the body's finer 0.4 s is what Discord means.
    let fake = Fake::start(discord_api(), vec![(429, vec![("retry-after", "5".into())], limited)]).await;
    let config = Config {
        discord_webhook_url: Some(Secret::new(format!("{}/api/webhooks/1234/goodtoken", fake.base))),
        ..quick()
    };
    one(&config, "discord").await.expect("delivered");
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(380) && waited < Duration::from_secs(2), "{waited:?}");
    let body = seen[1].json();
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embed = &body["embeds"][0];
    assert!(embed["title"].as_str().unwrap().contains("notification test"), "{embed}");
    assert_eq!(embed["color"], 0xcccccc, "a low system alert: grey");
    assert!(embed["fields"].as_array().unwrap().iter().any(|f| f["name"] == "Host" && f["value"] == "h1"));
}

#[tokio::test]
async fn discord_unknown_webhook_is_final_and_long_text_is_cut_to_its_limits() {
    let fake = Fake::start(discord_api(), vec![]).await;
    let config = Config {
        discord_webhook_url: Some(Secret::new(format!("{}/api/webhooks/1234/revoked", fake.base))),
        ..quick()
    };
    let err = one(&config, "discord").await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, AlertError::Refused { status: 404, .. }) && shown.contains("Unknown Webhook"), "{shown}");
    assert!(!shown.contains("revoked"), "{shown}");

    // A failure whose error is 10 kB: every part fits Discord's limits.
    let redis = RedisServer::start().await;
    let config = Config {
        discord_webhook_url: Some(Secret::new(format!("{}/api/webhooks/1234/goodtoken", fake.base))),
        ..quick()
    };
    let a = support::alert(&redis, &config).await;
    let long = "x".repeat(10_000);
    let body = envelope(
        "remediation_complete",
        "2025-11-03T10:30:53.789012",
        json!({"container": "web", "host": "h1", "action": "restart", "reason": long,
            "result": {"status": "failed", "action": "restart", "container": "web", "error": long}}),
    );
    a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &body)])).await;
    let redis_failures: Option<i64> = {
        use redis::AsyncCommands;
        redis.connection().await.get(hemostat_alert::FAILURES).await.unwrap()
    };
    assert_eq!(redis_failures, None, "accepted, not refused with a 400");
    let last = fake.seen().pop().unwrap().json();
    assert_eq!(last["embeds"][0]["color"], 0xff0000);
}

// ---- Microsoft Teams: Workflows webhook, Adaptive Card message; 202.

fn teams_api() -> Api {
    Arc::new(|s: &Seen| {
        let body = s.json();
        let card = &body["attachments"][0];
        let ok = body["type"] == "message"
            && card["contentType"] == "application/vnd.microsoft.card.adaptive"
            && card["content"]["type"] == "AdaptiveCard"
            && card["content"]["body"].as_array().is_some_and(|b| !b.is_empty());
        if ok {
            (202, vec![], String::new())
        } else {
            json_answer(
                400,
                json!({"error": {"code": "InvalidRequestContent", "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}),
            )
        }
    })
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_and_503_is_retried() {
    let fake = Fake::start(teams_api(), vec![(503, vec![], "Service Unavailable".into())]).await;
    let config = Config {
        teams_webhook_url: Some(Secret::new(format!(
            "{}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIGSECRET",
            fake.base
        ))),
        ..quick()
    };
    let delivered = one(&config, "teams").await.expect("delivered");
    assert_eq!(delivered.attempts, 2);
    let seen = fake.seen();
    assert!(seen[1].query.contains("sig=SIGSECRET"));
    let card = &seen[1].json()["attachments"][0]["content"];
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["weight"], "Bolder");
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert!(facts.iter().any(|f| f["title"] == "Kind" && f["value"] == "notification_test"), "{facts:?}");
}

// ---- PagerDuty Events API v2: /v2/enqueue, routing_key, trigger/resolve.

const ROUTING_KEY: &str = "R0UT1NGK3Y0123456789abcdefABCDEF";

fn pagerduty_api() -> Api {
    Arc::new(|s: &Seen| {
        let invalid = |why: &str| {
            json_answer(400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": [why]}))
        };
        if s.path != "/v2/enqueue" {
            return (404, vec![], "Not Found".into());
        }
        let e = s.json();
        if e["routing_key"].as_str().map(str::len) != Some(32) {
            return invalid("Length of 'routing_key' is incorrect (should be 32 characters)");
        }
        match e["event_action"].as_str() {
            Some("trigger") => {
                let p = &e["payload"];
                if p["summary"].as_str().is_none_or(str::is_empty) || p["source"].as_str().is_none_or(str::is_empty) {
                    return invalid("'payload.summary' and 'payload.source' are required");
                }
                if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or("")) {
                    return invalid("'payload.severity' must be one of critical, error, warning, info");
                }
            }
            Some("acknowledge" | "resolve") if e["dedup_key"].as_str().is_some() => {}
            _ => return invalid("'event_action' is invalid or 'dedup_key' is missing"),
        }
        json_answer(202, json!({"status": "success", "message": "Event processed", "dedup_key": e["dedup_key"]}))
    })
}

#[tokio::test]
async fn pagerduty_test_triggers_then_resolves_and_a_bad_key_is_refused() {
    let fake = Fake::start(pagerduty_api(), vec![(429, vec![], String::new())]).await;
    let config = Config {
        pagerduty_routing_key: Some(Secret::new(ROUTING_KEY)),
        pagerduty_url: format!("{}/v2/enqueue", fake.base),
        ..quick()
    };
    one(&config, "pagerduty").await.expect("delivered");
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "a 429, the trigger, the resolve");
    let (trigger, resolve) = (seen[1].json(), seen[2].json());
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "info");
    assert_eq!(trigger["payload"]["source"], "h1");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(trigger["dedup_key"], "hemostat/system/notification_test/h1");

    let bad = Config { pagerduty_routing_key: Some(Secret::new("short-key-XYZ")), ..config.clone() };
    let err = one(&bad, "pagerduty").await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, AlertError::Refused { status: 400, .. }), "{shown}");
    assert!(shown.contains("Event object is invalid") && shown.contains("routing_key"), "{shown}");
    assert!(!shown.contains("short-key-XYZ"), "{shown}");
}

#[tokio::test]
async fn pagerduty_opens_one_incident_per_container_and_a_fix_resolves_it() {
    let redis = RedisServer::start().await;
    let fake = Fake::start(pagerduty_api(), vec![]).await;
    let config = Config {
        pagerduty_routing_key: Some(Secret::new(ROUTING_KEY)),
        pagerduty_url: format!("{}/v2/enqueue", fake.base),
        ..quick()
    };
    let a = support::alert(&redis, &config).await;
    let ts = ["2025-11-03T10:30:51.000001", "2025-11-03T10:30:52.000001", "2025-11-03T10:30:53.000001"];
    // Failed (error: triggers), dry run (info: below the default warning),
    // success (info, but resolves: passes).
    for (i, (status, at)) in [("failed", ts[0]), ("dry_run", ts[1]), ("success", ts[2])].iter().enumerate() {
        let r = record(&format!("{i}-0"), EventKind::RemediationComplete, &complete("web", status, at));
        a.handle(batch::event(vec![r])).await;
    }
    let events: Vec<Value> = fake.seen().iter().map(Seen::json).collect();
    let actions: Vec<&str> = events.iter().map(|e| e["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "resolve"], "{events:#?}");
    assert_eq!(events[0]["payload"]["severity"], "error");
    assert_eq!(events[0]["payload"]["component"], "web");
    assert_eq!(events[0]["dedup_key"], "hemostat/container/h1/web");
    assert_eq!(events[1]["dedup_key"], events[0]["dedup_key"]);
}

// ---- Gotify: POST /message, X-Gotify-Key (or ?token=), priority.

const GOTIFY_TOKEN: &str = "AWl4Ww4kdNSQr1R";

fn gotify_api() -> Api {
    Arc::new(|s: &Seen| {
        let token = s
            .header("x-gotify-key")
            .map(str::to_owned)
            .or_else(|| s.query.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_owned));
        if s.path != "/message" {
            return json_answer(
                404,
                json!({"error": "Not Found", "errorCode": 404, "errorDescription": "page not found"}),
            );
        }
        if token.as_deref() != Some(GOTIFY_TOKEN) {
            return json_answer(
                401,
                json!({"error": "Unauthorized", "errorCode": 401, "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
            );
        }
        let m = s.json();
        if m["message"].as_str().is_none_or(str::is_empty) {
            return json_answer(
                400,
                json!({"error": "Bad Request", "errorCode": 400, "errorDescription": "Field 'message' is required"}),
            );
        }
        json_answer(
            200,
            json!({"id": 25, "appid": 5, "message": m["message"], "title": m["title"], "priority": m["priority"], "date": "2018-02-27T19:36:10.5045044+01:00"}),
        )
    })
}

#[tokio::test]
async fn gotify_gets_title_message_priority_with_the_key_in_a_header() {
    let fake = Fake::start(gotify_api(), vec![]).await;
    let config = Config {
        gotify_url: Some(Secret::new(format!("{}/", fake.base))),
        gotify_token: Some(Secret::new(GOTIFY_TOKEN)),
        ..quick()
    };
    one(&config, "gotify").await.expect("delivered");
    let s = &fake.seen()[0];
    assert!(s.query.is_empty(), "the token stays out of the URL: {}", s.query);
    let m = s.json();
    assert_eq!(m["priority"], 3);
    assert!(m["title"].as_str().unwrap().contains("notification test"));
    assert!(m["message"].as_str().unwrap().contains("Kind: notification_test"), "{m}");

    let wrong = Config { gotify_token: Some(Secret::new("Awrongtoken")), ..config };
    let err = one(&wrong, "gotify").await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, AlertError::Refused { status: 401, .. }) && shown.contains("valid access token"), "{shown}");
    assert!(!shown.contains("Awrongtoken"));
}

// ---- Several sinks at once, each with its own filter.

#[tokio::test]
async fn every_sink_at_once_each_through_its_own_filter() {
    let redis = RedisServer::start().await;
    let ok: Api = Arc::new(|_| (200, vec![], "ok".into()));
    let (slack, ntfy, gotify, discord) = (
        Fake::start(ok.clone(), vec![]).await,
        Fake::start(ntfy_api(), vec![]).await,
        Fake::start(gotify_api(), vec![]).await,
        Fake::start(discord_api(), vec![]).await,
    );
    let env: HashMap<&str, String> = HashMap::from([
        ("SLACK_WEBHOOK_URL", format!("{}/services/T0/B0/X", slack.base)),
        ("ALERT_NTFY_URL", format!("{}/ops", ntfy.base)),
        ("ALERT_NTFY_TOKEN", NTFY_TOKEN.to_owned()),
        // ntfy: only what needs a human, of any kind.
        ("ALERT_NTFY_MIN_SEVERITY", "error".to_owned()),
        ("ALERT_GOTIFY_URL", gotify.base.clone()),
        ("ALERT_GOTIFY_TOKEN", GOTIFY_TOKEN.to_owned()),
        // Gotify: HemoStat's own health only.
        ("ALERT_GOTIFY_EVENTS", "system_alert".to_owned()),
        ("ALERT_DISCORD_WEBHOOK_URL", format!("{}/api/webhooks/1234/goodtoken", discord.base)),
        ("ALERT_DISCORD_EVENTS", " remediation_complete , false_alarm ".to_owned()),
        ("ALERT_DISCORD_MIN_SEVERITY", "Warning".to_owned()),
    ]);
    let config = Config {
        http_timeout: Duration::from_millis(500),
        ..Config::from_source(&|name: &str| env.get(name).cloned()).unwrap()
    };
    let a = support::alert(&redis, &config).await;
    let names: Vec<&str> = a.sinks().iter().map(|s| s.name).collect();
    assert_eq!(names, ["slack", "ntfy", "discord", "gotify"]);

    let ts = "2025-11-03T10:30:53.789012";
    let system = envelope(
        "system_alert",
        ts,
        json!({"kind": "collector_missing", "severity": "critical", "host": "h9", "message": "no heartbeat"}),
    );
    let alarm = envelope("false_alarm", ts, json!({"container": "db", "host": "h1", "reason": "Transient spike"}));
    let records = vec![
        record("1-0", EventKind::RemediationComplete, &complete("ok", "success", ts)),
        record("2-0", EventKind::RemediationComplete, &complete("broken", "failed", ts)),
        record("3-0", EventKind::SystemAlert, &system),
        record("4-0", EventKind::FalseAlarm, &alarm),
    ];
    let response = a.handle(batch::event(records)).await;
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");

    assert_eq!(slack.seen().len(), 4, "no filter: everything");
    let ntfy_titles: Vec<String> = ntfy.seen().iter().map(|s| s.header("title").unwrap().to_owned()).collect();
    assert_eq!(ntfy_titles.len(), 2, "error and critical only: {ntfy_titles:?}");
    assert!(ntfy_titles.iter().any(|t| t.contains("broken")) && ntfy_titles.iter().any(|t| t.contains("collector")));
    let gotify_titles: Vec<String> =
        gotify.seen().iter().map(|s| s.json()["title"].as_str().unwrap().to_owned()).collect();
    assert_eq!(gotify_titles, ["HemoStat: collector missing (h9)"]);
    assert_eq!(gotify.seen()[0].json()["priority"], 9, "critical");
    let discord_titles: Vec<String> =
        discord.seen().iter().map(|s| s.json()["embeds"][0]["title"].as_str().unwrap().to_owned()).collect();
    assert_eq!(discord_titles.len(), 1, "remediation or false alarm, warning and up: {discord_titles:?}");
    assert!(discord_titles[0].contains("broken"));
}

#[test]
fn a_bad_filter_is_a_start_up_error_naming_the_variable() {
    let bad_kind = |name: &str| (name == "ALERT_NTFY_EVENTS").then(|| "remediation_complete,health_alert".to_owned());
    let err = Config::from_source(&bad_kind).unwrap_err().to_string();
    assert!(err.contains("ALERT_NTFY_EVENTS") && err.contains("health_alert"), "{err}");
    let bad_level = |name: &str| (name == "ALERT_SLACK_MIN_SEVERITY").then(|| "loud".to_owned());
    let err = Config::from_source(&bad_level).unwrap_err().to_string();
    assert!(err.contains("ALERT_SLACK_MIN_SEVERITY") && err.contains("warning"), "{err}");
    let half_gotify = |name: &str| (name == "ALERT_GOTIFY_URL").then(|| "https://gotify.example".to_owned());
    assert!(Config::from_source(&half_gotify).unwrap_err().to_string().contains("ALERT_GOTIFY_TOKEN"));
    assert_eq!(SINK_NAMES.len(), 8);
}

#[tokio::test]
async fn notify_test_names_an_unknown_or_unconfigured_sink() {
    let err = try_sinks(&quick(), "h1", Some("pager")).await.unwrap_err().to_string();
    assert!(err.contains("expected one of") && err.contains("pagerduty"), "{err}");
    let err = try_sinks(&quick(), "h1", Some("gotify")).await.unwrap_err().to_string();
    assert!(err.contains("not configured"), "{err}");
    assert!(try_sinks(&quick(), "h1", None).await.unwrap().is_empty());
}
