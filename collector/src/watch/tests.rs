//! The watcher against a fake engine whose inspects of some containers
//! answer only when the test says: a burst of exits is judged concurrently,
//! one container's in order, and the cursor stays short of them meanwhile.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, http::Uri};
use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::outbox::testing::Recorder;

const SEC: i64 = 1_000_000_000;

impl Recorder {
    /// (container, detected_at) of the alerts published so far.
    fn alerts(&self) -> Vec<(String, String)> {
        let field = |d: &Value, k: &str| d[k].as_str().unwrap_or_default().to_owned();
        self.0.lock().unwrap().iter().map(|e| (field(&e.data, "container"), field(&e.data, "detected_at"))).collect()
    }
}

/// A fake engine: inspects of containers named `slow-*` wait until
/// released; every inspect begun is recorded, and how many were under way
/// at once at most.
struct Engine {
    docker: Docker,
    release: watch::Sender<bool>,
    inspects: Arc<Mutex<Vec<String>>>,
    most_at_once: Arc<Mutex<(usize, usize)>>,
}

impl Engine {
    async fn start() -> Engine {
        let (release, released) = watch::channel(false);
        let inspects = Arc::new(Mutex::new(Vec::new()));
        let most_at_once = Arc::new(Mutex::new((0, 0)));
        let (seen, counts) = (inspects.clone(), most_at_once.clone());
        let app = Router::new().fallback(move |uri: Uri| {
            let (seen, counts, mut released) = (seen.clone(), counts.clone(), released.clone());
            async move {
                // /v1.xx/containers/<id>/json
                let id = uri.path().split('/').rev().nth(1).unwrap_or_default().to_owned();
                seen.lock().unwrap().push(id.clone());
                {
                    let mut c = counts.lock().unwrap();
                    c.0 += 1;
                    c.1 = c.1.max(c.0);
                }
                if id.starts_with("slow") {
                    let _ = released.wait_for(|r| *r).await;
                }
                counts.lock().unwrap().0 -= 1;
                Json(json!({
                    "Id": id,
                    "Name": format!("/{id}"),
                    "State": { "Status": "exited", "Running": false, "ExitCode": 1, "OOMKilled": false },
                    "Config": { "Image": "busybox", "Labels": {} }
                }))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let docker = Docker::connect_with_host(&format!("tcp://127.0.0.1:{port}")).unwrap();
        Engine { docker, release, inspects, most_at_once }
    }

    fn inspected(&self, id: &str) -> usize {
        self.inspects.lock().unwrap().iter().filter(|i| *i == id).count()
    }
}

fn event(action: &str, id: &str, time_nano: i64) -> EventMessage {
    let attributes = HashMap::from([("name".to_owned(), id.to_owned()), ("exitCode".to_owned(), "1".to_owned())]);
    EventMessage {
        typ: Some(EventMessageTypeEnum::CONTAINER),
        action: Some(action.to_owned()),
        actor: Some(EventActor { id: Some(id.to_owned()), attributes: Some(attributes) }),
        time_nano: Some(time_nano),
        time: Some(time_nano / SEC),
        ..Default::default()
    }
}

/// A watcher on `engine` publishing to a recorder (the folder is the outbox's).
fn watcher(engine: &Engine) -> (Watcher, Recorder, crate::outbox::testing::TempDir) {
    let recorder = Recorder::default();
    let (outbox, _task, dir) = crate::outbox::testing::outbox(recorder.clone(), CancellationToken::new());
    let alerts = Alerts::new("h1".into(), outbox);
    let w = Watcher::new(engine.docker.clone(), alerts, InFlight::new(), Registry::detached(), Scope::default());
    (w, recorder, dir)
}

/// Handles `msg` as the event loop does: it must not wait for judging.
async fn handle(w: &mut Watcher, msg: EventMessage) {
    tokio::time::timeout(Duration::from_secs(5), w.handle(&msg))
        .await
        .expect("the event loop waited for an inspect (exits judged one after another)");
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn exits_are_judged_concurrently_and_in_order_per_container() {
    let engine = Engine::start().await;
    let (mut w, recorder, _dir) = watcher(&engine);
    let t0 = now_nanos();
    // A container whose inspect hangs dies, starts again and dies again;
    // meanwhile another container dies.
    handle(&mut w, event("die", "slow-a", t0)).await;
    handle(&mut w, event("start", "slow-a", t0 + SEC)).await;
    handle(&mut w, event("die", "slow-a", t0 + 2 * SEC)).await;
    handle(&mut w, event("die", "fast-b", t0 + 3 * SEC)).await;

    until("the other container's alert", || !recorder.alerts().is_empty()).await;
    assert_eq!(recorder.alerts().iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["fast-b"]);
    assert_eq!(engine.inspected("slow-a"), 1, "a container's second exit is judged after its first");
    // The cursor stays short of the exits still being judged, and forgets
    // their container so that a restart replays them.
    let cursor = Cursor::of(&w.memory());
    assert!(cursor.time_nano < t0, "cursor {} not short of the pending exit {t0}", cursor.time_nano);
    assert!(cursor.seen.iter().all(|s| s.id != "slow-a"));

    engine.release.send_replace(true);
    until("both exits of the slow container", || recorder.alerts().len() == 3).await;
    let slow: Vec<String> = recorder.alerts().into_iter().filter(|a| a.0 == "slow-a").map(|a| a.1).collect();
    assert_eq!(slow.len(), 2);
    assert!(slow[0] < slow[1], "its alerts left out of order: {slow:?}");
    assert_eq!(engine.inspected("slow-a"), 2);
    until("the judgings to end", || w.judging.is_idle()).await;
    assert_eq!(Cursor::of(&w.memory()).time_nano, t0 + 3 * SEC, "the cursor moves on once they are out");
}

#[tokio::test]
async fn no_more_suspects_than_the_setting_are_judged_at_once() {
    let engine = Engine::start().await;
    let (w, recorder, _dir) = watcher(&engine);
    let mut w = w.alert_concurrency(2);
    let t0 = now_nanos();
    for i in 0..5 {
        handle(&mut w, event("die", &format!("slow-{i}"), t0 + i * SEC)).await;
    }
    handle(&mut w, event("die", "fast", t0 + 10 * SEC)).await;
    until("two inspects under way", || engine.most_at_once.lock().unwrap().0 == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.most_at_once.lock().unwrap().1, 2, "more inspects at once than the setting");
    assert!(recorder.alerts().is_empty(), "the later exit waits for a free slot");
    engine.release.send_replace(true);
    until("every alert", || recorder.alerts().len() == 6).await;
    assert_eq!(engine.most_at_once.lock().unwrap().1, 2);
}
