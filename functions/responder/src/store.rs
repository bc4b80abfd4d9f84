//! What the responder needs from Redis, as a trait so the handler can be
//! tested without a server.

use std::future::Future;

use redis::{AsyncCommands, aio::ConnectionManager};

use hemostat_protocol::{ContainerRef, ProtocolError, command::SignedCommand, keys};

use crate::gate::{Gate, GateRequest, Verdict};

/// Commands kept (approximately) per host stream.
const COMMANDS_MAXLEN: usize = 10_000;
/// How long "command X was dispatched" is remembered.
const DISPATCHED_TTL_SECONDS: u64 = 24 * 3600;

pub trait Store: Send + Sync {
    fn gate(&self, req: &GateRequest<'_>) -> impl Future<Output = Result<Verdict, ProtocolError>> + Send;
    /// Hosts whose collector reported a container of this name.
    fn hosts_of(&self, name: &str) -> impl Future<Output = Result<Vec<String>, ProtocolError>> + Send;
    /// The image the collector last reported for the container, if any.
    fn image_of(&self, container: &ContainerRef) -> impl Future<Output = Result<Option<String>, ProtocolError>> + Send;
    fn was_dispatched(&self, command_id: &str) -> impl Future<Output = Result<bool, ProtocolError>> + Send;
    /// Appends the command to the host's stream; returns the entry id.
    fn dispatch(
        &self,
        host: &str,
        id: &str,
        cmd: &SignedCommand,
    ) -> impl Future<Output = Result<String, ProtocolError>> + Send;
}

pub struct RedisStore {
    conn: ConnectionManager,
    gate: Gate,
}

impl RedisStore {
    pub fn new(conn: ConnectionManager, gate: Gate) -> Self {
        RedisStore { conn, gate }
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn dispatched_key(id: &str) -> String {
    format!("hemostat:dispatched:{id}")
}

impl Store for RedisStore {
    async fn gate(&self, req: &GateRequest<'_>) -> Result<Verdict, ProtocolError> {
        self.gate.check(&mut self.conn.clone(), req).await
    }

    async fn hosts_of(&self, name: &str) -> Result<Vec<String>, ProtocolError> {
        let members: Vec<String> = self.conn.clone().smembers(keys::CONTAINERS).await?;
        Ok(members.iter().filter_map(|m| ContainerRef::parse(m)).filter(|c| c.name == name).map(|c| c.host).collect())
    }

    async fn image_of(&self, container: &ContainerRef) -> Result<Option<String>, ProtocolError> {
        let stats: Option<String> = self.conn.clone().get(keys::stats(container)).await?;
        // Stats are the collector's; a missing or odd entry just means "unknown".
        Ok(stats
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("image").and_then(|i| i.as_str()).map(str::to_owned)))
    }

    async fn was_dispatched(&self, command_id: &str) -> Result<bool, ProtocolError> {
        Ok(self.conn.clone().exists(dispatched_key(command_id)).await?)
    }

    async fn dispatch(&self, host: &str, id: &str, cmd: &SignedCommand) -> Result<String, ProtocolError> {
        let mut fields = vec![("command", cmd.json.as_str())];
        if let Some(sig) = &cmd.signature {
            fields.push(("signature", sig.as_str()));
        }
        let (entry,): (String,) = redis::pipe()
            .cmd("XADD")
            .arg(keys::commands(host))
            .arg("MAXLEN")
            .arg("~")
            .arg(COMMANDS_MAXLEN)
            .arg("*")
            .arg(&fields)
            .cmd("SET")
            .arg(dispatched_key(id))
            // The value says when; the key's existence is what matters.
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("EX")
            .arg(DISPATCHED_TTL_SECONDS)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(entry)
    }
}
