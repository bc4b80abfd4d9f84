//! Lambda entry point: clients are built once per instance and shared by
//! every invocation.

use hemostat_analyzer::{Analyzer, Config};
use hemostat_protocol::{RedisPublisher, function};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let conn = function::init().await?;
    let analyzer = Analyzer::new(Config::from_env()?, RedisPublisher::new(conn));
    function::serve(|batch| analyzer.handle(batch)).await
}
