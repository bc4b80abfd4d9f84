//! Lambda entry point: the Redis connection and the page are built once per
//! instance and shared by every request.

use hemostat_dashboard::{Config, Dashboard, RedisStore, USAGE};
use hemostat_protocol::function;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Before any connection, so `--help` works without Redis or a runtime.
    USAGE.exit_unless_run();
    let conn = function::init().await?;
    let config = Config::from_env()?;
    tracing::info!(?config, "dashboard starting");
    if config.auth_token.is_none() {
        tracing::info!(
            "DASHBOARD_AUTH_TOKEN is not set: only requests an AWS_IAM function URL authenticated are served"
        );
    }
    let dashboard = Dashboard::new(config, RedisStore::new(conn));
    let dashboard = &dashboard;
    lambda_http::run(service_fn(move |request: Request| async move { Ok::<_, Error>(dashboard.handle(request).await) }))
        .await
}
