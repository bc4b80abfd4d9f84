//! What the responder needs from Redis, as a trait so the handler can be
//! tested without a server.

use std::future::Future;

use hemostat_protocol::connection::Connection;
use redis::AsyncCommands;

use hemostat_protocol::{
    ContainerRef, Envelope, ProtocolError,
    approval::{self, Answer, Approval, Parked, Refusal},
    attestation,
    command::SignedCommand,
    deferred,
    event::RemediationNeeded,
    facts::{self, Facts},
    gate::{Gate, GateDecision, GateInputs, GateRequest, Preview},
    keys,
    silence::{self, Silence},
};

pub trait Store: Send + Sync {
    fn gate(&self, req: &GateRequest<'_>) -> impl Future<Output = Result<GateDecision, ProtocolError>> + Send;
    /// Hosts whose collector reported a container of this name.
    fn hosts_of(&self, name: &str) -> impl Future<Output = Result<Vec<String>, ProtocolError>> + Send;
    /// What the container's collector says about it (see
    /// [`hemostat_protocol::facts`]): the only account the gate believes.
    fn facts(&self, container: &ContainerRef) -> impl Future<Output = Result<Option<Facts>, ProtocolError>> + Send;
    fn was_dispatched(&self, command_id: &str) -> impl Future<Output = Result<bool, ProtocolError>> + Send;
    /// Whether an analyzer attested this request ([`attestation`]).
    fn is_attested(&self, env: &Envelope) -> impl Future<Output = Result<bool, ProtocolError>> + Send;
    /// Every operator's silence still holding.
    fn silences(&self) -> impl Future<Output = Result<Vec<Silence>, ProtocolError>> + Send;
    /// Appends the command to the host's stream; returns the entry id.
    fn dispatch(
        &self,
        host: &str,
        id: &str,
        cmd: &SignedCommand,
    ) -> impl Future<Output = Result<String, ProtocolError>> + Send;
    /// What the gate would decide now, nothing written (before parking an
    /// action that needs a yes: only an action the gate would allow waits).
    fn preview(
        &self,
        container: &ContainerRef,
        inputs: &GateInputs,
    ) -> impl Future<Output = Result<Preview, ProtocolError>> + Send;
    /// Parks a request until a person answers (see [`approval::park`]).
    fn park(
        &self,
        container: &ContainerRef,
        request: &RemediationNeeded,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<Parked, ProtocolError>> + Send;
    fn approval(&self, id: &str) -> impl Future<Output = Result<Option<Approval>, ProtocolError>> + Send;
    /// Moves an approval once (see [`approval::answer`]).
    fn answer(
        &self,
        id: &str,
        answer: &Answer,
    ) -> impl Future<Output = Result<Result<Approval, Refusal>, ProtocolError>> + Send;
    /// The ids of pending approvals whose deadline passed.
    fn due_approvals(&self, now_ms: i64) -> impl Future<Output = Result<Vec<String>, ProtocolError>> + Send;
    /// Keeps a request to ask again at `due_ms` (see [`deferred`]).
    fn defer(
        &self,
        container: &ContainerRef,
        request: &RemediationNeeded,
        due_ms: i64,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;
    /// The kept requests due at `now_ms`, each handed to one caller once.
    fn take_deferred(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<(ContainerRef, RemediationNeeded)>, ProtocolError>> + Send;
}

pub struct RedisStore {
    conn: Connection,
    gate: Gate,
}

impl RedisStore {
    pub fn new(conn: Connection, gate: Gate) -> Self {
        RedisStore { conn, gate }
    }

    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }
}

impl Store for RedisStore {
    async fn gate(&self, req: &GateRequest<'_>) -> Result<GateDecision, ProtocolError> {
        self.gate.check(&mut self.conn.clone(), req).await
    }

    async fn hosts_of(&self, name: &str) -> Result<Vec<String>, ProtocolError> {
        let members: Vec<String> = self.conn.clone().smembers(keys::CONTAINERS).await?;
        Ok(members.iter().filter_map(|m| ContainerRef::parse(m)).filter(|c| c.name == name).map(|c| c.host).collect())
    }

    async fn facts(&self, container: &ContainerRef) -> Result<Option<Facts>, ProtocolError> {
        facts::read(&mut self.conn.clone(), container).await
    }

    async fn was_dispatched(&self, command_id: &str) -> Result<bool, ProtocolError> {
        Ok(self.conn.clone().exists(keys::dispatched(command_id)).await?)
    }

    async fn is_attested(&self, env: &Envelope) -> Result<bool, ProtocolError> {
        attestation::is_attested(&self.conn, env).await
    }

    async fn silences(&self) -> Result<Vec<Silence>, ProtocolError> {
        silence::live(&mut self.conn.clone()).await
    }

    async fn preview(&self, container: &ContainerRef, inputs: &GateInputs) -> Result<Preview, ProtocolError> {
        self.gate.preview(&mut self.conn.clone(), container, inputs).await
    }

    async fn park(
        &self,
        container: &ContainerRef,
        request: &RemediationNeeded,
        timeout: std::time::Duration,
    ) -> Result<Parked, ProtocolError> {
        approval::park(&mut self.conn.clone(), container, request, timeout).await
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, ProtocolError> {
        approval::get(&mut self.conn.clone(), id).await
    }

    async fn answer(&self, id: &str, answer: &Answer) -> Result<Result<Approval, Refusal>, ProtocolError> {
        approval::answer(&mut self.conn.clone(), id, answer).await
    }

    async fn due_approvals(&self, now_ms: i64) -> Result<Vec<String>, ProtocolError> {
        approval::due(&mut self.conn.clone(), now_ms).await
    }

    async fn defer(
        &self,
        container: &ContainerRef,
        request: &RemediationNeeded,
        due_ms: i64,
    ) -> Result<(), ProtocolError> {
        deferred::defer(&mut self.conn.clone(), container, request, due_ms).await
    }

    async fn take_deferred(&self, now_ms: i64) -> Result<Vec<(ContainerRef, RemediationNeeded)>, ProtocolError> {
        deferred::take_due(&mut self.conn.clone(), now_ms).await
    }

    async fn dispatch(&self, host: &str, id: &str, cmd: &SignedCommand) -> Result<String, ProtocolError> {
        let fields = cmd.to_fields();
        let stream = keys::commands(host);
        let mut conn = self.conn.clone();
        let (entry,): (String,) = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(keys::COMMANDS_MAXLEN)
            .arg("*")
            .arg(&fields)
            .cmd("EXPIRE")
            .arg(&stream)
            .arg(keys::COMMANDS_TTL.as_secs())
            .ignore()
            .query_async(&mut conn)
            .await?;
        // On a replica before it counts as dispatched: if the master dies
        // first, the redelivered request dispatches again (same command id,
        // which the collector executes once).
        conn.wait_replicated(&stream).await?;
        let () = redis::cmd("SET")
            .arg(keys::dispatched(id))
            // The value says when; the key's existence is what matters.
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("EX")
            .arg(keys::DISPATCHED_TTL.as_secs())
            .query_async(&mut conn)
            .await?;
        Ok(entry)
    }
}
