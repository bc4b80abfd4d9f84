use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
};

use super::*;

const PERIOD: Duration = Duration::from_secs(30);

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_stalled_task_is_restarted_once_then_reported_once_then_recovered() {
    let mut e = Episode { phase: Phase::Running };
    let start = Instant::now();
    // Progressing, or quiet within its period: left alone.
    assert_eq!(e.judge(Instant::now(), s(1), PERIOD), None);
    assert_eq!(e.judge(Instant::now(), PERIOD, PERIOD), None);
    tokio::time::advance(s(31)).await;
    assert_eq!(e.judge(Instant::now(), s(31), PERIOD), Some(Verdict::Restart));
    // The new instance gets a period of its own.
    for n in 1..=30 {
        tokio::time::advance(s(1)).await;
        assert_eq!(e.judge(Instant::now(), s(31 + n), PERIOD), None, "{n} s after the restart");
    }
    tokio::time::advance(s(1)).await;
    assert_eq!(e.judge(Instant::now(), s(62), PERIOD), Some(Verdict::Degraded));
    // Once per episode, however long it lasts.
    for n in 1..=600 {
        tokio::time::advance(s(1)).await;
        assert_eq!(e.judge(Instant::now(), s(62 + n), PERIOD), None);
    }
    // It progressed (a second ago): recovered, and a new episode may begin.
    assert_eq!(e.judge(Instant::now(), s(1), PERIOD), Some(Verdict::Recovered));
    assert_eq!(e.judge(Instant::now(), s(2), PERIOD), None);
    tokio::time::advance(s(31)).await;
    assert_eq!(e.judge(Instant::now(), s(31), PERIOD), Some(Verdict::Restart));
    assert!(start.elapsed() > s(600));
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_helps_ends_the_episode_without_a_report() {
    let mut e = Episode { phase: Phase::Running };
    tokio::time::advance(s(31)).await;
    assert_eq!(e.judge(Instant::now(), s(31), PERIOD), Some(Verdict::Restart));
    tokio::time::advance(s(5)).await;
    // Its last progress (2 s ago) came after the restart (5 s ago).
    assert_eq!(e.judge(Instant::now(), s(2), PERIOD), Some(Verdict::Settled));
    // Quiet again but within its period: nothing.
    tokio::time::advance(s(20)).await;
    assert_eq!(e.judge(Instant::now(), s(22), PERIOD), None);
    // A later stall is a new episode: restarted again.
    tokio::time::advance(s(10)).await;
    assert_eq!(e.judge(Instant::now(), s(32), PERIOD), Some(Verdict::Restart));
}

#[tokio::test(start_paused = true)]
async fn progress_just_before_the_restart_is_not_taken_for_progress_after_it() {
    let mut e = Episode { phase: Phase::Running };
    tokio::time::advance(s(31)).await;
    assert_eq!(e.judge(Instant::now(), s(31), PERIOD), Some(Verdict::Restart));
    tokio::time::advance(s(1)).await;
    // 32 s since its last progress, 1 s since the restart: no news.
    assert_eq!(e.judge(Instant::now(), s(32), PERIOD), None);
}

/// A task body that progresses while `on`, and counts how many instances
/// run at once.
fn body(progress: Arc<Progress>, on: Arc<AtomicBool>, live: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> Body {
    Box::pin(async move {
        let n = live.fetch_add(1, SeqCst) + 1;
        most.fetch_max(n, SeqCst);
        loop {
            if on.load(SeqCst) {
                progress.progressed(Task::Sampler);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Decrements `live` when the instance ends (returns, is aborted).
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_reports_once_and_reports_the_recovery() {
    let progress = Arc::new(Progress::default());
    progress.expect(Task::Sampler, Some(Duration::from_millis(1500)));
    // Not watched: never restarted.
    progress.expect(Task::Watcher, None);
    let on = Arc::new(AtomicBool::new(false));
    let (live, most, starts) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sent: Arc<Mutex<Vec<SystemAlert>>> = Arc::default();
    let cancel = CancellationToken::new();
    let sampler = {
        let (progress, on, live, most, starts) =
            (progress.clone(), on.clone(), live.clone(), most.clone(), starts.clone());
        Supervised::new(Task::Sampler, Stop::Cancel(Duration::from_millis(200)), move |_token| {
            starts.fetch_add(1, SeqCst);
            let guard = Live(live.clone());
            let inner = body(progress.clone(), on.clone(), live.clone(), most.clone());
            // Ignores its token: stopped only by the abort after the grace.
            Box::pin(async move {
                let _guard = guard;
                inner.await
            })
        })
    };
    let watcher = Supervised::new(Task::Watcher, Stop::Abort, |_| Box::pin(std::future::pending::<()>()));
    let report = {
        let sent = sent.clone();
        move |env: Envelope| sent.lock().unwrap().push(env.data_of::<SystemAlert>(EventKind::SystemAlert).unwrap())
    };
    let supervisor = Supervisor::new(progress.clone(), "h1".into(), report).supervise(sampler).supervise(watcher);
    let task = tokio::spawn(supervisor.run(cancel.clone()));

    // Stalled from the start: restarted after ~1.5 s, degraded ~1.5 s later.
    let kinds =
        |sent: &Mutex<Vec<SystemAlert>>| sent.lock().unwrap().iter().map(|a| a.kind.clone()).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while kinds(&sent).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kinds(&sent), [SystemAlert::COLLECTOR_DEGRADED]);
    assert_eq!(starts.load(SeqCst), 2, "started, then restarted once");
    assert_eq!(most.load(SeqCst), 1, "the old instance ended before the new one started");
    assert!(progress.degraded());
    let tasks = progress.tasks();
    let sampler = tasks.iter().find(|t| t.task == "sampler").unwrap();
    assert_eq!((sampler.restarts, sampler.degraded), (1, true));
    assert!(!tasks.iter().any(|t| t.task == "watcher"));
    let alert = sent.lock().unwrap()[0].clone();
    assert_eq!(alert.host, "h1");
    assert!(alert.message.contains("sampler"), "{}", alert.message);
    assert!(alert.missing_for_seconds.is_some_and(|s| s >= 2), "{alert:?}");

    // Still stalled: no second report, no second restart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(kinds(&sent), [SystemAlert::COLLECTOR_DEGRADED]);
    assert_eq!(starts.load(SeqCst), 2);

    on.store(true, SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while kinds(&sent).len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kinds(&sent), [SystemAlert::COLLECTOR_DEGRADED, SystemAlert::COLLECTOR_RECOVERED_TASKS]);
    assert!(!progress.degraded());

    cancel.cancel();
    // The sampler's instance ignores its token: the supervisor's shutdown
    // waits for what the tasks do on cancel, so end it here.
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_lets_the_old_instance_end_on_its_token_before_the_new_one_starts() {
    let progress = Arc::new(Progress::default());
    progress.expect(Task::Consumer, Some(Duration::from_millis(1200)));
    let (starts, ended, overlapped) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let consumer = {
        let (starts, ended, overlapped) = (starts.clone(), ended.clone(), overlapped.clone());
        Supervised::new(
            Task::Consumer,
            Stop::Cancel(Duration::from_secs(30)),
            move |token: CancellationToken| -> Body {
                let (starts, ended, overlapped) = (starts.clone(), ended.clone(), overlapped.clone());
                Box::pin(async move {
                    if starts.fetch_add(1, SeqCst) != ended.load(SeqCst) {
                        overlapped.store(true, SeqCst);
                    }
                    // Makes no progress, and ends as at shutdown.
                    token.cancelled().await;
                    ended.fetch_add(1, SeqCst);
                })
            },
        )
    };
    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new(progress.clone(), "h1".into(), |_| {}).supervise(consumer);
    let task = tokio::spawn(supervisor.run(cancel.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while starts.load(SeqCst) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(starts.load(SeqCst), 2);
    // Well within its 30 s grace: it ended on its token, not by an abort.
    assert_eq!(ended.load(SeqCst), 1);
    assert!(!overlapped.load(SeqCst));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("shutdown waits for the instance").unwrap();
    assert_eq!(ended.load(SeqCst), 2);
}
