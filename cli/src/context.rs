//! What every verb starts from: a connection that answered, and the shared
//! options.

use std::time::Duration;

use hemostat_protocol::{
    ContainerRef,
    connection::{Connection, Target},
    gate::GateSettings,
    keys,
    metrics::Metrics,
};
use redis::AsyncCommands;

use crate::{error::CliError, key::CommandKey};

/// How long Redis may take to answer the first PING: an unreachable Redis
/// is an error in seconds, not a hang.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

pub struct Context {
    pub conn: Connection,
    /// For pub/sub (`events --follow`): a node's own client.
    pub target: Target,
    pub json: bool,
    /// The gate's limits as the responder is configured (the same
    /// variables), for what `explain` and `status` preview.
    pub gate: GateSettings,
    /// The command key `status` checks the hosts' newest commands with.
    pub command_key: Option<CommandKey>,
}

impl Context {
    pub async fn connect(
        url: &str,
        json: bool,
        gate: GateSettings,
        command_key: Option<CommandKey>,
    ) -> Result<Self, CliError> {
        let target = Target::from_env(url).map_err(|e| CliError::Usage(e.to_string()))?;
        let unreachable = |why: String| {
            let why = why.strip_prefix("redis: ").unwrap_or(&why).to_owned();
            CliError::Redis(format!("cannot reach Redis at {}: {why}", target.redacted()))
        };
        let conn = match tokio::time::timeout(CONNECT_DEADLINE, target.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable(format!("no answer within {CONNECT_DEADLINE:?}"))),
        };
        Ok(Context { conn, target, json, gate, command_key })
    }

    pub fn conn(&self) -> Connection {
        self.conn.clone()
    }

    /// Whether a collector reports the container (it is in HemoStat's scope).
    pub async fn is_reported(&self, c: &ContainerRef) -> Result<bool, CliError> {
        Ok(self.conn().sismember(keys::CONTAINERS, c.key()).await?)
    }

    /// The collector's last stats of the container, if any.
    pub async fn stats(&self, c: &ContainerRef) -> Result<Option<Metrics>, CliError> {
        let json: Option<String> = self.conn().get(keys::stats(c)).await?;
        Ok(json.as_deref().and_then(Metrics::parse))
    }

    /// Fails with a clear message unless HemoStat knows the container: a
    /// collector reports it, or it has an audit trail.
    pub async fn require_known(&self, c: &ContainerRef) -> Result<(), CliError> {
        if self.is_reported(c).await? {
            return Ok(());
        }
        let audited: bool = self.conn().exists(keys::audit(c)).await?;
        if audited {
            return Ok(());
        }
        Err(CliError::NotFound(format!(
            "unknown container {c}: no collector reports it and it has no audit trail (`hemostat status` lists the known ones)"
        )))
    }
}

/// Parses `host/name`.
pub fn container(text: &str) -> Result<ContainerRef, CliError> {
    ContainerRef::parse(text.trim())
        .ok_or_else(|| CliError::Usage(format!("container {text:?}: expected host/name (e.g. web-1/api)")))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
