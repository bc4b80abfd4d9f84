//! `/healthz` and `/metrics`: for a supervisor (a container health check,
//! systemd, Kubernetes) and Prometheus. As the bridge's (`bridge/src/health/http.rs`).

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use hemostat_protocol::exposition::{CONTENT_TYPE, Kind, Page};
use tokio::net::TcpListener;

use super::Progress;
use crate::error::CollectorError;

/// The listener, bound before the collector says it is ready (so a bad
/// address is a start-up error, and the port is known).
pub(crate) struct Server {
    listener: TcpListener,
}

impl Server {
    pub(crate) async fn bind(addr: &str) -> Result<Self, CollectorError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| CollectorError::Config(format!("HEMOSTAT_COLLECTOR_LISTEN {addr:?}: {e}")))?;
        Ok(Server { listener })
    }

    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` completes.
    pub(crate) async fn serve(self, progress: Arc<Progress>, stop: impl Future<Output = ()> + Send + 'static) {
        let router = Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(progress);
        if let Err(e) = axum::serve(self.listener, router).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    }
}

/// 200 with each watched task's progress (JSON), or 503 with the same and
/// the stalled tasks named.
async fn healthz(State(progress): State<Arc<Progress>>) -> impl IntoResponse {
    let stalled: Vec<&str> = progress.stalled().into_iter().map(|t| t.name()).collect();
    let body = serde_json::json!({
        "healthy": stalled.is_empty(),
        "stalled": stalled,
        "degraded": progress.degraded(),
        "tasks": progress.tasks(),
    });
    let status = if stalled.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string() + "\n")
}

async fn metrics(State(progress): State<Arc<Progress>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], render(&progress))
}

fn render(progress: &Progress) -> String {
    let mut page = Page::default();
    let healthy = if progress.stalled().is_empty() { 1.0 } else { 0.0 };
    page.single("hemostat_collector_healthy", Kind::Gauge, "1 when every watched task progresses", healthy);
    let degraded = if progress.degraded() { 1.0 } else { 0.0 };
    page.single("hemostat_collector_degraded", Kind::Gauge, "1 while a task stays stalled after its restart", degraded);
    for (name, help, value) in progress.counters() {
        page.single(name, Kind::Counter, help, value as f64);
    }
    let ago = "hemostat_collector_task_progress_seconds_ago";
    page.family(ago, Kind::Gauge, "seconds since the task's last progress");
    for task in progress.tasks() {
        page.sample(ago, &[("task", &task.task)], task.progress_seconds_ago);
    }
    let restarts = "hemostat_collector_task_restarts_total";
    page.family(restarts, Kind::Counter, "restarts of a task that made no progress for its expected period");
    for task in progress.tasks() {
        page.sample(restarts, &[("task", &task.task)], task.restarts as f64);
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::liveness::Task;

    #[test]
    fn metrics_name_every_watched_task_and_counter() {
        let p = Progress::default();
        p.expect(Task::Watcher, Some(Duration::from_secs(60)));
        p.progressed(Task::Watcher);
        p.reopened(true);
        let page = render(&p);
        assert!(page.contains("hemostat_collector_healthy 1"), "{page}");
        assert!(page.contains("hemostat_collector_events_total 1"), "{page}");
        assert!(page.contains("hemostat_collector_event_stream_stalls_total 1"), "{page}");
        assert!(page.contains("hemostat_collector_probes_unavailable_total 0"), "{page}");
        assert!(page.contains(r#"hemostat_collector_task_progress_seconds_ago{task="watcher"}"#), "{page}");
        assert!(!page.contains(r#"task="sampler""#), "{page}");
    }
}
