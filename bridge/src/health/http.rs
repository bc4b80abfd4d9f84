//! `/healthz` and `/metrics`: for a supervisor (a container health check,
//! systemd, Kubernetes) and Prometheus.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use hemostat_protocol::exposition::{CONTENT_TYPE, Kind, Page};
use tokio::net::TcpListener;

use super::Health;
use crate::error::BridgeError;

/// The listener, bound before the bridge says it is ready (so a bad
/// address is a start-up error, and the port is known).
pub(crate) struct Server {
    listener: TcpListener,
}

impl Server {
    pub(crate) async fn bind(addr: &str) -> Result<Self, BridgeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| BridgeError::Config(format!("HEMOSTAT_BRIDGE_LISTEN {addr:?}: {e}")))?;
        Ok(Server { listener })
    }

    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` completes.
    pub(crate) async fn serve(self, health: Arc<Health>, stop: impl Future<Output = ()> + Send + 'static) {
        let router = Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(health);
        if let Err(e) = axum::serve(self.listener, router).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    }
}

/// 200 `ok`, or 503 with one problem per line.
async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let problems = health.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n")
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], render(&health))
}

fn render(health: &Health) -> String {
    let mut page = Page::default();
    let healthy = if health.problems().is_empty() { 1.0 } else { 0.0 };
    page.single("hemostat_bridge_healthy", Kind::Gauge, "1 when every route reads and the relay hears", healthy);
    let t = health.stats.heartbeat_totals();
    for (name, help, value) in [
        ("hemostat_bridge_invocations_total", "function invocations", t.invocations),
        ("hemostat_bridge_acked_total", "records handled and acknowledged", t.acked),
        ("hemostat_bridge_failed_total", "records whose delivery failed (retried)", t.failed),
        ("hemostat_bridge_dead_lettered_total", "records given up on", t.dead_lettered),
        ("hemostat_bridge_stale_total", "records given up on as stale", t.stale),
        ("hemostat_bridge_taken_over_total", "records taken over from a dead replica", t.taken_over),
        ("hemostat_bridge_relayed_total", "seed-channel messages relayed into their stream", t.relayed),
    ] {
        page.single(name, Kind::Counter, help, value as f64);
    }
    let read = "hemostat_bridge_route_read_seconds_ago";
    page.family(read, Kind::Gauge, "seconds since the route's last read");
    for (binding, beat) in &health.routes {
        page.sample(read, &[("stream", &binding.stream), ("group", &binding.group)], beat.ago().as_secs_f64());
    }
    if let Some(heartbeat) = health.latest() {
        let families = [
            ("hemostat_bridge_route_lag", "records not yet read by the group (at the last heartbeat)"),
            ("hemostat_bridge_route_pending", "records read and not yet acknowledged (at the last heartbeat)"),
            ("hemostat_bridge_route_oldest_waiting_seconds", "age of the oldest unread record (at the last heartbeat)"),
        ];
        for (i, (name, help)) in families.into_iter().enumerate() {
            page.family(name, Kind::Gauge, help);
            for r in &heartbeat.routes {
                let value = match i {
                    0 => r.lag,
                    1 => Some(r.pending),
                    _ => Some(r.oldest_waiting_seconds.unwrap_or(0)),
                };
                if let Some(v) = value {
                    page.sample(name, &[("stream", &r.stream), ("group", &r.group)], v as f64);
                }
            }
        }
    }
    if let Some(relay) = &health.relay {
        let name = "hemostat_bridge_relay_heard_seconds_ago";
        page.single(name, Kind::Gauge, "seconds since the relay heard its own keepalive", relay.ago().as_secs_f64());
    }
    page.finish()
}
