//! Lambda entry point: clients (Redis, HTTP) are built once per instance
//! and shared by every invocation.

use hemostat_analyzer::{Analyzer, Config, LlmClient, USAGE, http_client, load_signatures};
use hemostat_protocol::{RedisPublisher, function};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Before any connection, so `--help` works without Redis or a runtime.
    USAGE.exit_unless_run();
    let conn = function::init().await?;
    // Parsing and compiling the catalogue is the analyzer's one start-up
    // cost that grows with it: logged so a slow cold start can be traced.
    let started = std::time::Instant::now();
    let signatures = load_signatures()?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let config = Config::from_env()?;
    let llm = match &config.llm {
        Some(llm) => Some(LlmClient::new(http_client(config.ai_timeout)?, llm, config.ai_timeout)),
        None => None,
    };
    tracing::info!(llm = ?config.llm, signatures, load_ms, "analyzer configured");
    let analyzer = Analyzer::new(config, RedisPublisher::new(conn.clone()), conn, llm);
    function::serve(|batch| analyzer.handle(batch)).await
}
