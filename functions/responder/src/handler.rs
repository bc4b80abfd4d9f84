//! The Lambda handler: `remediation_needed` in, a signed command to the
//! container's collector (or a recorded refusal) out; and `approval_answer`
//! in (a person's Approve or Deny from Slack or the dashboard), verified,
//! then the approved request through the same gate.

use sha2::{Digest, Sha256};

use hemostat_protocol::{
    Action, Command, ContainerRef, Envelope, EventKind, Publisher,
    approval::ApprovalAnswer,
    batch::{self, BatchEvent, BatchResponse, RecordOutcome},
    envelope::agent,
    event::{IncidentContext, RemediationComplete, RemediationNeeded, Severity, SystemAlert},
    gate::{Asked, Belief, GateDecision, GateRequest},
    invocation::ScheduledEvent,
    policy::{ActionPolicy, LABEL_ACTION, Policy},
    silence::{self, Silence, Subject},
};

use crate::{Config, approvals, deferred, store::Store};

pub struct Responder<S, P> {
    config: Config,
    store: S,
    publisher: P,
}

impl<S: Store, P: Publisher> Responder<S, P> {
    pub fn new(config: Config, store: S, publisher: P) -> Self {
        Responder { config, store, publisher }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// The responder's schedule (every minute): approvals past their
    /// deadline fall back to a notification on time, and restarts kept
    /// for the end of a cooldown are asked again, even when no request
    /// arrives to run a batch. A failure fails the invocation; the next
    /// tick (or batch) tries again.
    pub async fn tick(&self, event: ScheduledEvent) -> Result<serde_json::Value, hemostat_protocol::ProtocolError> {
        let expired = approvals::expire_due(&self.store, &self.publisher).await?;
        let asked = self.ask_deferred_again().await?;
        tracing::debug!(at = %event.time, expired, asked, "schedule");
        Ok(serde_json::json!({ "approvals_expired": expired, "deferred_asked": asked }))
    }

    pub async fn handle(&self, event: BatchEvent) -> BatchResponse {
        // Approvals past their deadline fall back to a notification, and
        // due deferred restarts are asked again; no record waits on this
        // (a failure is retried with the next batch).
        if let Err(e) = approvals::expire_due(&self.store, &self.publisher).await {
            tracing::warn!(error = %e, "expiring approvals failed; retried with the next batch");
        }
        if let Err(e) = self.ask_deferred_again().await {
            tracing::warn!(error = %e, "asking deferred restarts again failed; retried with the next batch");
        }
        batch::process(event, |env| self.respond(env)).await
    }

    /// The restarts kept for the end of their cooldown (see [`deferred`])
    /// that are due, each through the gate again; one that cannot be
    /// decided now is kept for a minute more. Returns how many were taken.
    async fn ask_deferred_again(&self) -> Result<usize, hemostat_protocol::ProtocolError> {
        let due = self.store.take_deferred(chrono::Utc::now().timestamp_millis()).await?;
        for (container, request) in &due {
            let why = match self.ask_again(container, request).await {
                Ok(Wait::No) => continue,
                Ok(Wait::Until(reason)) => reason,
                Err(e) => e.to_string(),
            };
            tracing::warn!(container = %container, %why, "deferred restart not decided; kept a minute more");
            let later = chrono::Utc::now() + deferred::AGAIN_AFTER;
            if let Err(e) = self.store.defer(container, request, later.timestamp_millis()).await {
                tracing::error!(container = %container, error = %e, "deferred restart lost: it could not be kept again");
            }
        }
        Ok(due.len())
    }

    /// One deferred restart through the gate again, unless its container
    /// was removed or recreated since (it was for a container that is no
    /// more: a refusal would only tell people so).
    async fn ask_again(
        &self,
        container: &ContainerRef,
        request: &RemediationNeeded,
    ) -> Result<Wait, hemostat_protocol::ProtocolError> {
        let observed = self.store.facts(container).await?.and_then(|f| f.container).map(|o| o.id);
        if observed.is_none() || observed != request.container_id {
            tracing::info!(container = %container, "deferred restart dropped: the container is gone or was recreated");
            return Ok(Wait::No);
        }
        tracing::info!(container = %container, action = %request.action, "deferred restart: asking the gate again");
        let env = Envelope::new(agent::RESPONDER, EventKind::RemediationNeeded, request)?;
        self.decide(&env, request).await
    }

    async fn respond(&self, env: Envelope) -> RecordOutcome {
        if env.kind == EventKind::ApprovalAnswer {
            return self.answer(env).await;
        }
        let needed: RemediationNeeded = match env.data_of(EventKind::RemediationNeeded) {
            Ok(n) => n,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        if needed.action == Action::None {
            tracing::info!(container = %needed.container, "action none: nothing to do");
            return RecordOutcome::Done;
        }
        if self.config.require_attested_requests {
            match self.store.is_attested(&env).await {
                Ok(true) => {}
                Ok(false) => {
                    // Dead-lettered with its reason, never acted on; replayed
                    // from there, it is refused again.
                    tracing::warn!(
                        container = %needed.container,
                        host = %needed.host,
                        action = %needed.action,
                        "request refused: no analyzer attested it"
                    );
                    return RecordOutcome::Rejected(
                        "not attested by an analyzer: only an analyzer (or the operator) may ask for an action".into(),
                    );
                }
                Err(e) => return RecordOutcome::Retry(e.to_string()),
            }
        }
        match self.decide(&env, &needed).await {
            Ok(Wait::No) => RecordOutcome::Done,
            Ok(Wait::Until(reason)) => {
                tracing::info!(container = %needed.container, %reason, "remediation waits; asking again later");
                RecordOutcome::Retry(reason)
            }
            Err(e) => RecordOutcome::Retry(e.to_string()),
        }
    }

    /// A person's answer to an approval (Slack's button, the dashboard's),
    /// applied once the responder vouched for it itself: a Slack press by
    /// its signature, the dashboard's by its attestation. Anything else
    /// (the bridge's credentials can put any record on the stream) is
    /// dead-lettered with the reason. An approval moves once: a replayed
    /// answer changes nothing.
    async fn answer(&self, env: Envelope) -> RecordOutcome {
        let answer: ApprovalAnswer = match env.data_of(EventKind::ApprovalAnswer) {
            Ok(a) => a,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        // Only a dashboard answer needs the attestation; a Slack one is
        // judged by its signature alone.
        let attested = match answer.slack {
            Some(_) => false,
            None => match self.store.is_attested(&env).await {
                Ok(attested) => attested,
                Err(e) => return RecordOutcome::Retry(e.to_string()),
            },
        };
        let secret = self.config.slack_signing_secret.as_ref().map(|s| s.expose().as_bytes());
        let (id, answer) = match answer.vouched(secret, attested, chrono::Utc::now().timestamp()) {
            Ok(vouched) => vouched,
            Err(reason) => {
                tracing::warn!(approval = %answer.id, claimed_by = %answer.by, %reason, "approval answer refused");
                return RecordOutcome::Rejected(format!("approval answer refused: {reason}"));
            }
        };
        match approvals::apply(&self.store, &self.publisher, &id, &answer).await {
            Ok(Some(execution)) => match self.decide(&env, &execution).await {
                Ok(Wait::No) => RecordOutcome::Done,
                Ok(Wait::Until(reason)) => {
                    tracing::info!(approval = %id, %reason, "approved action waits; asking again later");
                    RecordOutcome::Retry(reason)
                }
                Err(e) => RecordOutcome::Retry(e.to_string()),
            },
            Ok(None) => RecordOutcome::Done,
            Err(e) => RecordOutcome::Retry(e.to_string()),
        }
    }

    async fn decide(
        &self,
        env: &Envelope,
        needed: &RemediationNeeded,
    ) -> Result<Wait, hemostat_protocol::ProtocolError> {
        // A request naming an approval executes the approved record's
        // request (never the one published), through the gate again.
        let approved;
        let (needed, approval) = match needed.context.approval.as_deref() {
            Some(id) => match approvals::approved(&self.store, id, needed).await? {
                Some(request) => {
                    approved = request;
                    (&approved, Some(id))
                }
                None => return Ok(Wait::No),
            },
            None => (needed, None),
        };
        let host = match self.resolve_host(needed).await? {
            Ok(host) => host,
            Err(reason) => return self.refuse(needed, "", &reason, None, None).await.map(|()| Wait::No),
        };
        let container = ContainerRef::new(host, &needed.container);
        // The target as its collector knows it; the request may only ask
        // for less (anyone may publish a remediation_needed).
        let facts = self.store.facts(&container).await?;
        let asked = Asked {
            container_id: needed.container_id.as_deref(),
            policy: needed.context.policy.as_ref(),
            held: needed.context.held.as_deref(),
            silenced_by: &needed.context.silenced_by,
        };
        let belief = match Belief::of(facts.as_ref(), &container, &asked, chrono::Utc::now().timestamp_millis()) {
            Ok(belief) => belief,
            Err(reason) => {
                tracing::warn!(container = %container, action = %needed.action, %reason, "remediation refused");
                return self.refuse(needed, &container.host, &reason, None, None).await.map(|()| Wait::No);
            }
        };
        let image = belief.observed.image.clone();
        let silence = self.silence_for(&container, image.as_deref(), &belief).await?;
        let policy = belief.observed.policy.clone();
        let inputs = self.config.gate.inputs(&belief.facts(silence.as_ref()));
        let adjusted;
        let needed = match stop_instead(needed, &policy) {
            Some(stop) => {
                adjusted = stop;
                &adjusted
            }
            None => needed,
        };
        let rule = approvals::rule(&self.config, &policy);
        if approval.is_none() && !rule.is_empty() {
            // Parked as the gate judged it: this container (its id now), its image.
            let parked = RemediationNeeded {
                host: container.host.clone(),
                container_id: Some(belief.observed.id.clone()),
                context: IncidentContext { image: image.clone(), ..needed.context.clone() },
                ..needed.clone()
            };
            if approvals::park(&self.config, &self.store, &self.publisher, &rule, &container, &parked, &inputs).await? {
                return Ok(Wait::No);
            }
        }
        if let Some(id) = approval
            && let Some(reason) = approvals::moved_on(&self.store, &rule, &container, needed, &inputs).await?
        {
            tracing::warn!(container = %container, approval = %id, %reason, "approved action not taken");
            let details = Some(format!("approval {id}"));
            self.refuse(needed, &container.host, &reason, details, image.as_deref()).await?;
            approvals::taken(&self.store, id).await?;
            return Ok(Wait::No);
        }
        // Derived from the request itself (or the approval), so a
        // redelivered request maps to the same command and is neither
        // counted nor executed twice.
        let id = approval.map_or_else(|| command_id(env), approvals::command_id);
        let request = GateRequest {
            container: &container,
            command_id: &id,
            action: needed.action.as_str(),
            reason: &needed.reason,
            confidence: needed.confidence,
            dry_run: self.config.dry_run,
            image: image.as_deref(),
            inputs: &inputs,
        };
        let decided = match self.store.gate(&request).await? {
            GateDecision::Wait { reason } => return Ok(Wait::Until(reason)),
            GateDecision::Escalated { duplicate: true, .. } if self.store.was_dispatched(&id).await? => {
                tracing::info!(container = %container, command_id = %id, "duplicate request, already dispatched");
                Ok(())
            }
            GateDecision::Escalated { step, .. } => {
                let stepped = RemediationNeeded {
                    action: step.action,
                    reason: format!("{}: {}", step.text, needed.reason),
                    ..needed.clone()
                };
                tracing::warn!(container = %container, asked = %needed.action, action = %step.action, step = %step.text, "escalation step");
                if step.action == Action::Stop {
                    // Published first: a redelivery that finds the command
                    // dispatched publishes nothing more.
                    self.page_stopped(&container, &step.text).await?;
                }
                let number = u32::try_from(step.number).ok();
                self.dispatch(&stepped, &container, &belief.observed.id, id, image.as_deref(), number).await
            }
            GateDecision::Refused { reason } => {
                tracing::warn!(container = %container, action = %needed.action, %reason, "remediation refused");
                let details = match silence.filter(|s| reason == s.refusal()) {
                    Some(s) => Some(format!("silence {} on {} by {}", s.id, s.target_text(), s.by)),
                    None => deferred::keep(&self.store, &container, needed, &belief.observed.id, &inputs)
                        .await?
                        .map(|due| format!("asked again at {due}, when the cooldown ends: the dependency may be back")),
                };
                self.refuse(needed, &container.host, &reason, details, image.as_deref()).await
            }
            GateDecision::BreakerOpened { reason } => {
                tracing::error!(container = %container, action = %needed.action, %reason, "circuit breaker opened");
                // Published first: if the refusal's publish fails, the
                // redelivery finds the breaker open and refuses plainly.
                let alert = SystemAlert {
                    kind: SystemAlert::CIRCUIT_OPEN.into(),
                    severity: Severity::Critical,
                    host: container.host.clone(),
                    message: format!(
                        "{container}: HemoStat stopped acting on it, its fixes do not hold ({reason}); read its logs, then `hemostat reset {container}`"
                    ),
                    last_seen: None,
                    missing_for_seconds: None,
                    container: Some(container.name.clone()),
                    approval: None,
                };
                self.publisher.publish(&Envelope::new(agent::RESPONDER, EventKind::SystemAlert, &alert)?).await?;
                self.refuse(needed, &container.host, &reason, None, image.as_deref()).await
            }
            GateDecision::Brake { reason } => {
                tracing::error!(container = %container, image = ?image, %reason, "fleet brake: suspected bad release");
                let details = format!("suspected bad release of image {}", image.as_deref().unwrap_or("?"));
                self.refuse(needed, &container.host, &reason, Some(details), image.as_deref()).await
            }
            GateDecision::Duplicate if self.store.was_dispatched(&id).await? => {
                tracing::info!(container = %container, command_id = %id, "duplicate request, already dispatched");
                Ok(())
            }
            GateDecision::Allowed { .. } | GateDecision::Duplicate => {
                self.dispatch(needed, &container, &belief.observed.id, id, image.as_deref(), None).await
            }
        };
        decided?;
        if let Some(id) = approval {
            approvals::taken(&self.store, id).await?;
        }
        Ok(Wait::No)
    }

    /// The page of an escalation ladder's stop: critical, as the circuit
    /// breaker's (high in a dry run, where nothing is stopped).
    async fn page_stopped(&self, container: &ContainerRef, step: &str) -> Result<(), hemostat_protocol::ProtocolError> {
        let dry = if self.config.dry_run { " (dry run: nothing is stopped)" } else { "" };
        let alert = SystemAlert {
            kind: SystemAlert::ESCALATION_STOPPED.into(),
            severity: if self.config.dry_run { Severity::High } else { Severity::Critical },
            host: container.host.clone(),
            message: format!(
                "{container}: escalation ladder exhausted, nothing HemoStat tried held; it stops the container ({step}){dry}; read its logs, fix it, start it, then `hemostat reset {container}`"
            ),
            last_seen: None,
            missing_for_seconds: None,
            container: Some(container.name.clone()),
            approval: None,
        };
        self.publisher.publish(&Envelope::new(agent::RESPONDER, EventKind::SystemAlert, &alert)?).await.map(|_| ())
    }

    /// The first live silence that holds for the container, matched
    /// against what its collector says of it (compose project and service,
    /// the label silences it matched on the host).
    async fn silence_for(
        &self,
        container: &ContainerRef,
        image: Option<&str>,
        belief: &Belief,
    ) -> Result<Option<Silence>, hemostat_protocol::ProtocolError> {
        let silences = self.store.silences().await?;
        let subject =
            Subject { image: image.map(str::to_owned), ..Subject::of(container) }.with_facts(belief.alert_facts());
        Ok(silence::matching(&silences, &subject).cloned())
    }

    /// `Ok(Err(reason))` when the host cannot be told: a seed-protocol
    /// publisher may name only the container.
    async fn resolve_host(
        &self,
        needed: &RemediationNeeded,
    ) -> Result<Result<String, String>, hemostat_protocol::ProtocolError> {
        if !needed.host.is_empty() {
            return Ok(Ok(needed.host.clone()));
        }
        let hosts = self.store.hosts_of(&needed.container).await?;
        Ok(match hosts.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!("no collector reports a container named {:?}", needed.container)),
            many => Err(format!(
                "container name {:?} exists on {} hosts; the request must name one",
                needed.container,
                many.len()
            )),
        })
    }

    async fn dispatch(
        &self,
        needed: &RemediationNeeded,
        container: &ContainerRef,
        container_id: &str,
        id: String,
        image: Option<&str>,
        escalation_step: Option<u32>,
    ) -> Result<(), hemostat_protocol::ProtocolError> {
        let now = chrono::Utc::now();
        let command = Command {
            id,
            host: container.host.clone(),
            container: container.name.clone(),
            // The collector's id, so the command reaches the container the
            // gate judged, not another one of that name created since.
            container_id: Some(container_id.to_owned()),
            action: needed.action,
            reason: needed.reason.clone(),
            confidence: needed.confidence,
            issued_at: now.to_rfc3339(),
            expires_at: Some((now + hemostat_protocol::command::LIFETIME).to_rfc3339()),
            dry_run: self.config.dry_run,
            args: Vec::new(),
            // The step is the gate's word, whatever the request said.
            context: IncidentContext { image: image.map(str::to_owned), escalation_step, ..needed.context.clone() },
        };
        let sealed = command.seal(self.config.signing_key.as_deref());
        let entry = self.store.dispatch(&command.host, &command.id, &sealed).await?;
        tracing::info!(container = %container, action = %command.action, command_id = %command.id, stream_entry = %entry,
            dry_run = command.dry_run, signed = sealed.signature.is_some(), "command dispatched");
        Ok(())
    }

    async fn refuse(
        &self,
        needed: &RemediationNeeded,
        host: &str,
        reason: &str,
        details: Option<String>,
        image: Option<&str>,
    ) -> Result<(), hemostat_protocol::ProtocolError> {
        let mut complete = RemediationComplete::refused(needed, host, reason.to_owned(), details);
        complete.dry_run = self.config.dry_run;
        complete.context.image = image.map(str::to_owned);
        let env = Envelope::new(agent::RESPONDER, EventKind::RemediationComplete, &complete)?;
        self.publisher.publish(&env).await.map(|_| ())
    }
}

/// Whether a request is finished with, or must be asked again later (the
/// escalation ladder waits for its last step's outcome).
enum Wait {
    No,
    Until(String),
}

/// A stable id for the command a request leads to.
fn command_id(env: &Envelope) -> String {
    let digest = Sha256::digest(env.to_json().as_bytes());
    hex::encode(&digest[..16])
}

/// The request as a stop, when the container's policy allows only stops
/// and the analysis asked for a restart or a recreate.
fn stop_instead(needed: &RemediationNeeded, policy: &Policy) -> Option<RemediationNeeded> {
    let instead_of = matches!(needed.action, Action::Restart | Action::Recreate).then_some(needed.action)?;
    (policy.action == ActionPolicy::Stop).then(|| RemediationNeeded {
        action: Action::Stop,
        reason: format!("{} (a stop instead of a {instead_of}: {LABEL_ACTION}=stop)", needed.reason),
        ..needed.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_protocol::{
        ProtocolError,
        approval::{Answer, Approval, ApprovalAnswer, Decision, Parked, Refusal, SlackRequest, State, slack},
        batch::BatchRecord,
        command::SignedCommand,
        event::RemediationStatus,
        facts::{Facts, Observed},
        gate::{GateInputs, Preview},
        silence::TargetKind,
    };
    use std::sync::Mutex;

    const ID: &str = "64290c8cfd9c12af940ef1fff24fa7c365b505e48297a949ff26ee230a17c856";

    /// In-memory store: refuses everything after the first allowed request.
    struct FakeStore {
        allowed: Mutex<Vec<String>>,
        dispatched: Mutex<Vec<(String, SignedCommand)>>,
        hosts: Vec<String>,
        silences: Vec<Silence>,
        /// What the container's collector wrote (by default: it knows it).
        facts: Option<Facts>,
        /// No analyzer attested the requests (by default: one did).
        unattested: bool,
        /// The gate's answer to every request it does not refuse, when set.
        decision: Option<GateDecision>,
        /// Requests waiting for a yes, by approval id.
        parked: Mutex<Vec<(String, RemediationNeeded)>>,
        /// Approvals as stored (answered and taken in memory).
        approvals: Mutex<Vec<Approval>>,
        /// What the preview says is left of the cooldown.
        cooldown_left_ms: u64,
        /// Requests kept to ask again, and when.
        deferred: Mutex<Vec<(ContainerRef, RemediationNeeded, i64)>>,
    }

    impl Default for FakeStore {
        fn default() -> Self {
            let observed = Observed { id: ID.into(), image: Some("shop/web:1".into()), ..Observed::default() };
            FakeStore {
                allowed: Mutex::default(),
                dispatched: Mutex::default(),
                hosts: Vec::new(),
                silences: Vec::new(),
                facts: Some(Facts { container: Some(observed), ..Facts::default() }),
                unattested: false,
                decision: None,
                parked: Mutex::default(),
                approvals: Mutex::default(),
                cooldown_left_ms: 0,
                deferred: Mutex::default(),
            }
        }
    }

    impl FakeStore {
        fn observed(&mut self) -> &mut Observed {
            self.facts.as_mut().and_then(|f| f.container.as_mut()).expect("known container")
        }
    }

    impl Store for FakeStore {
        async fn gate(&self, req: &GateRequest<'_>) -> Result<GateDecision, ProtocolError> {
            if let Some(reason) = &req.inputs.refusal {
                return Ok(GateDecision::Refused { reason: reason.clone() });
            }
            if let Some(decision) = &self.decision {
                return Ok(decision.clone());
            }
            let mut allowed = self.allowed.lock().unwrap();
            if allowed.iter().any(|id| id == req.command_id) {
                return Ok(GateDecision::Duplicate);
            }
            if allowed.is_empty() {
                allowed.push(req.command_id.to_owned());
                Ok(GateDecision::Allowed { count: 1 })
            } else {
                Ok(GateDecision::Refused { reason: "cooldown: test".into() })
            }
        }
        async fn hosts_of(&self, _name: &str) -> Result<Vec<String>, ProtocolError> {
            Ok(self.hosts.clone())
        }
        async fn facts(&self, _c: &ContainerRef) -> Result<Option<Facts>, ProtocolError> {
            Ok(self.facts.clone())
        }
        async fn silences(&self) -> Result<Vec<Silence>, ProtocolError> {
            Ok(self.silences.clone())
        }
        async fn is_attested(&self, _env: &Envelope) -> Result<bool, ProtocolError> {
            Ok(!self.unattested)
        }
        async fn was_dispatched(&self, id: &str) -> Result<bool, ProtocolError> {
            Ok(self.dispatched.lock().unwrap().iter().any(|(_, c)| c.json.contains(id)))
        }
        async fn dispatch(&self, host: &str, _id: &str, cmd: &SignedCommand) -> Result<String, ProtocolError> {
            self.dispatched.lock().unwrap().push((host.to_owned(), cmd.clone()));
            Ok("1-0".into())
        }
        async fn preview(&self, _c: &ContainerRef, inputs: &GateInputs) -> Result<Preview, ProtocolError> {
            let decision = match (&inputs.refusal, &self.decision) {
                (Some(reason), _) => GateDecision::Refused { reason: reason.clone() },
                (None, Some(decision)) => decision.clone(),
                (None, None) => GateDecision::Allowed { count: 1 },
            };
            Ok(Preview { decision, actions_last_hour: 0, cooldown_left_ms: self.cooldown_left_ms })
        }
        async fn park(
            &self,
            c: &ContainerRef,
            request: &RemediationNeeded,
            _timeout: std::time::Duration,
        ) -> Result<Parked, ProtocolError> {
            let mut parked = self.parked.lock().unwrap();
            if let Some((id, _)) = parked.iter().find(|(_, r)| r.container == c.name) {
                return Ok(Parked::Waiting { id: id.clone(), deadline_ms: 1 });
            }
            let id = format!("{:032x}", parked.len() + 1);
            parked.push((id.clone(), request.clone()));
            Ok(Parked::New { id, deadline_ms: 1 })
        }
        async fn approval(&self, id: &str) -> Result<Option<Approval>, ProtocolError> {
            Ok(self.approvals.lock().unwrap().iter().find(|a| a.id == id).cloned())
        }
        async fn answer(&self, id: &str, answer: &Answer) -> Result<Result<Approval, Refusal>, ProtocolError> {
            let mut all = self.approvals.lock().unwrap();
            let Some(a) = all.iter_mut().find(|a| a.id == id) else { return Ok(Err(Refusal::Unknown)) };
            let (from, to, by, note) = match answer {
                Answer::Approve { by } => (State::Pending, State::Approved, Some(by.clone()), None),
                Answer::Deny { by, reason } => (State::Pending, State::Denied, Some(by.clone()), reason.clone()),
                Answer::Take => (State::Approved, State::Done, a.by.clone(), a.note.clone()),
                Answer::Expire => (State::Pending, State::Expired, Some("responder".into()), None),
            };
            if a.state != from {
                return Ok(Err(Refusal::Answered { state: a.state, by: a.by.clone(), at_ms: None }));
            }
            (a.state, a.by, a.note) = (to, by, note);
            Ok(Ok(a.clone()))
        }
        async fn due_approvals(&self, _now_ms: i64) -> Result<Vec<String>, ProtocolError> {
            Ok(Vec::new())
        }
        async fn defer(&self, c: &ContainerRef, request: &RemediationNeeded, due_ms: i64) -> Result<(), ProtocolError> {
            let mut deferred = self.deferred.lock().unwrap();
            deferred.retain(|(kept, _, _)| kept != c);
            deferred.push((c.clone(), request.clone(), due_ms));
            Ok(())
        }
        async fn take_deferred(&self, now_ms: i64) -> Result<Vec<(ContainerRef, RemediationNeeded)>, ProtocolError> {
            let mut deferred = self.deferred.lock().unwrap();
            let (due, later) = deferred.drain(..).partition(|(_, _, at)| *at <= now_ms);
            *deferred = later;
            Ok(due.into_iter().map(|(c, r, _)| (c, r)).collect::<Vec<_>>())
        }
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Envelope>>);
    impl Publisher for Recorder {
        async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
            self.0.lock().unwrap().push(env.clone());
            Ok("1-0".into())
        }
    }

    fn needed(ts: &str, host: &str) -> BatchRecord {
        let body = format!(
            r#"{{"timestamp":"{ts}","agent":"HemoStat-Analyzer","type":"remediation_needed","data":{{"container":"web","host":"{host}","action":"restart","reason":"exit 1","confidence":0.9}}}}"#
        );
        batch::record(format!("{ts}-0"), EventKind::RemediationNeeded.stream(), body, 1)
    }

    #[test]
    fn a_stop_only_policy_turns_a_restart_or_a_recreate_into_a_stop() {
        let body = r#"{"container":"web","host":"h","action":"recreate","reason":"exit 1","confidence":0.9}"#;
        let recreate: RemediationNeeded = serde_json::from_str(body).unwrap();
        let stop_only = Policy { action: ActionPolicy::Stop, ..Policy::default() };
        let stop = stop_instead(&recreate, &stop_only).unwrap();
        assert_eq!(stop.action, Action::Stop);
        assert_eq!(stop.reason, "exit 1 (a stop instead of a recreate: hemostat.action=stop)");
        let restart = RemediationNeeded { action: Action::Restart, ..recreate.clone() };
        assert!(stop_instead(&restart, &stop_only).unwrap().reason.contains("a stop instead of a restart"));
        assert!(stop_instead(&recreate, &Policy::default()).is_none());
        let scale = RemediationNeeded { action: Action::ScaleUp, ..recreate };
        assert!(stop_instead(&scale, &stop_only).is_none());
    }

    /// One key pair for the whole test binary.
    fn pair() -> &'static (String, String) {
        static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        PAIR.get_or_init(|| hemostat_protocol::command::SigningKey::generate().unwrap())
    }

    fn signing() -> hemostat_protocol::command::SigningKey {
        hemostat_protocol::command::SigningKey::from_base64(&pair().0).unwrap()
    }

    fn public() -> hemostat_protocol::command::VerifyingKeys {
        hemostat_protocol::command::VerifyingKeys::parse(&pair().1).unwrap()
    }

    fn responder(hosts: Vec<String>) -> Responder<FakeStore, Recorder> {
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        Responder::new(config, FakeStore { hosts, ..Default::default() }, Recorder::default())
    }

    #[tokio::test]
    async fn a_request_no_analyzer_attested_is_refused_and_nothing_is_dispatched() {
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        let r = Responder::new(config, FakeStore { unattested: true, ..Default::default() }, Recorder::default());
        let response = r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert_eq!(response.rejected_items.len(), 1, "{response:?}");
        assert!(response.rejected_items[0].reason.contains("not attested by an analyzer"), "{response:?}");
        assert!(r.store().dispatched.lock().unwrap().is_empty());
        assert!(r.publisher().0.lock().unwrap().is_empty());
        // Turned off (a custom analyzer that publishes by hand), it is acted on.
        let config = Config { require_attested_requests: false, ..r.config.clone() };
        let r = Responder::new(config, FakeStore { unattested: true, ..Default::default() }, Recorder::default());
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert_eq!(r.store().dispatched.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn first_request_dispatches_a_signed_command_second_is_refused_and_recorded() {
        let r = responder(vec![]);
        r.handle(batch::event(vec![needed("t1", "h1"), needed("t2", "h1")])).await;
        let dispatched = r.store.dispatched.lock().unwrap();
        assert_eq!(dispatched.len(), 1);
        assert_eq!(dispatched[0].0, "h1");
        let cmd = dispatched[0].1.open(Some(&public())).unwrap();
        assert_eq!((cmd.action, cmd.container.as_str()), (Action::Restart, "web"));
        let published = r.publisher.0.lock().unwrap();
        assert_eq!(published.len(), 1);
        let done: RemediationComplete = published[0].data_as().unwrap();
        assert_eq!(done.result.status, RemediationStatus::Rejected);
        assert!(done.result.reason.as_deref().unwrap().contains("cooldown"));
    }

    /// A restart the analyzer asked for, for a cause `cause`.
    fn diagnosed(ts: &str, cause: &str) -> BatchRecord {
        let body = format!(
            r#"{{"timestamp":"{ts}","agent":"HemoStat-Analyzer","type":"remediation_needed","data":{{"container":"web","host":"h1","action":"restart","reason":"exit 1","confidence":0.9,"detected_at":"2026-12-07T10:00:00Z","diagnosis":{{"cause":"{cause}","summary":"s","restart_helps":true}}}}}}"#
        );
        batch::record(format!("{ts}-0"), EventKind::RemediationNeeded.stream(), body, 1)
    }

    #[tokio::test]
    async fn a_restart_the_cooldown_refused_for_an_unreachable_dependency_is_asked_again_when_it_ends() {
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        let store = FakeStore { cooldown_left_ms: 30_000, ..FakeStore::default() };
        let r = Responder::new(config, store, Recorder::default());
        let asked = chrono::Utc::now();
        r.handle(batch::event(vec![
            diagnosed("t1", "dependency_unreachable"),
            diagnosed("t2", "dependency_unreachable"),
        ]))
        .await;
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1);
        let refused: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert_eq!(refused.result.status, RemediationStatus::Rejected);
        let details = refused.result.details.clone().unwrap_or_default();
        assert!(details.starts_with("asked again at ") && details.contains("when the cooldown ends"), "{details}");
        let (kept, request, due) = r.store.deferred.lock().unwrap()[0].clone();
        assert_eq!(kept, ContainerRef::new("h1", "web"));
        assert_eq!(request.container_id.as_deref(), Some(ID), "the container the gate judged");
        let wait = due - asked.timestamp_millis();
        assert!((30_000..40_000).contains(&wait), "due in {wait} ms");

        // Not due yet: the schedule leaves it.
        let tick = || r.tick(ScheduledEvent { id: "s".into(), time: String::new(), resources: Vec::new() });
        assert_eq!(tick().await.unwrap()["deferred_asked"], 0);
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1);
        // The cooldown ends: the gate allows it, and it goes out once.
        r.store.allowed.lock().unwrap().clear();
        r.store.deferred.lock().unwrap()[0].2 = chrono::Utc::now().timestamp_millis();
        assert_eq!(tick().await.unwrap()["deferred_asked"], 1);
        assert_eq!(tick().await.unwrap()["deferred_asked"], 0);
        let dispatched = r.store.dispatched.lock().unwrap();
        assert_eq!(dispatched.len(), 2);
        let cmd = dispatched[1].1.open(Some(&public())).unwrap();
        assert_eq!((cmd.action, cmd.container_id.as_deref()), (Action::Restart, Some(ID)));
        assert!(cmd.reason.starts_with("asked again after the cooldown: "), "{}", cmd.reason);
        // Its problem's time, by which the collector tells whether it ran since.
        assert_eq!(cmd.context.detected_at.as_deref(), Some("2026-12-07T10:00:00Z"));
        assert!(r.store.deferred.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_deferred_restart_of_a_container_recreated_since_is_dropped_unreported() {
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        let mut store = FakeStore { cooldown_left_ms: 30_000, ..FakeStore::default() };
        store.observed().id = "0".repeat(64);
        let r = Responder::new(config, store, Recorder::default());
        let needed = diagnosed("t1", "dependency_unreachable");
        let request: RemediationNeeded = Envelope::parse(batch::body(&needed).as_bytes()).unwrap().data_as().unwrap();
        let kept = RemediationNeeded { container_id: Some(ID.into()), host: "h1".into(), ..request };
        r.store.deferred.lock().unwrap().push((ContainerRef::new("h1", "web"), kept, 0));
        let tick = r.tick(ScheduledEvent { id: "s".into(), time: String::new(), resources: Vec::new() });
        assert_eq!(tick.await.unwrap()["deferred_asked"], 1);
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(r.publisher.0.lock().unwrap().is_empty(), "nothing to tell: the container is not there");
        assert!(r.store.deferred.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_refused_restart_for_a_failure_of_the_containers_own_is_not_asked_again() {
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        let store = FakeStore { cooldown_left_ms: 30_000, ..FakeStore::default() };
        let r = Responder::new(config, store, Recorder::default());
        r.handle(batch::event(vec![diagnosed("t1", "panic_or_exception"), diagnosed("t2", "panic_or_exception")]))
            .await;
        assert!(r.store.deferred.lock().unwrap().is_empty());
        let refused: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert_eq!(refused.result.details, None);
        // Nor one a silence refused, whatever its cause.
        let mut store = FakeStore { cooldown_left_ms: 30_000, ..FakeStore::default() };
        store.silences = vec![silence(TargetKind::Container, "h1/web")];
        let config = Config { signing_key: Some(std::sync::Arc::new(signing())), ..Config::default() };
        let r = Responder::new(config, store, Recorder::default());
        r.handle(batch::event(vec![diagnosed("t1", "dependency_unreachable")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(r.store.deferred.lock().unwrap().is_empty());
    }

    fn escalated(action: Action, number: usize) -> GateDecision {
        let text = format!(
            "escalation step {number}/3: {action} after the restart at 2026-12-07T06:41:02Z did not hold (failed)"
        );
        GateDecision::Escalated {
            count: 2,
            step: hemostat_protocol::gate::Step { number, of: 3, action, text },
            duplicate: false,
        }
    }

    #[tokio::test]
    async fn an_escalation_step_is_dispatched_by_name_and_its_stop_pages() {
        let mut r = responder(vec![]);
        r.store.decision = Some(escalated(Action::Recreate, 2));
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        let cmd = r.store.dispatched.lock().unwrap()[0].1.open(Some(&public())).unwrap();
        assert_eq!(cmd.action, Action::Recreate);
        assert!(
            cmd.reason.starts_with("escalation step 2/3: recreate after the restart at ")
                && cmd.reason.ends_with(": exit 1"),
            "{}",
            cmd.reason
        );
        assert!(r.publisher.0.lock().unwrap().is_empty(), "no page before the top");

        let mut r = responder(vec![]);
        r.store.decision = Some(escalated(Action::Stop, 3));
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        let cmd = r.store.dispatched.lock().unwrap()[0].1.open(Some(&public())).unwrap();
        assert_eq!(cmd.action, Action::Stop);
        let page: SystemAlert = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert_eq!((page.kind.as_str(), page.severity), (SystemAlert::ESCALATION_STOPPED, Severity::Critical));
        assert_eq!(page.container.as_deref(), Some("web"));
        assert!(
            page.message.starts_with("h1/web: escalation ladder exhausted")
                && page.message.contains("hemostat reset h1/web"),
            "{}",
            page.message
        );

        // Dry run: the page says nothing is stopped, and does not wake anyone.
        let mut r = responder(vec![]);
        r.config.dry_run = true;
        r.store.decision = Some(escalated(Action::Stop, 3));
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        let page: SystemAlert = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert!(page.severity == Severity::High && page.message.contains("dry run"), "{page:?}");
    }

    #[tokio::test]
    async fn a_step_waiting_for_its_outcome_is_asked_again_later() {
        let mut r = responder(vec![]);
        r.store.decision =
            Some(GateDecision::Wait { reason: "escalation: step 1/3 has no reported outcome yet".into() });
        let response = r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert_eq!(response.batch_item_failures.len(), 1, "left for redelivery");
        assert!(r.store.dispatched.lock().unwrap().is_empty() && r.publisher.0.lock().unwrap().is_empty());
    }

    fn silence(kind: TargetKind, target: &str) -> Silence {
        Silence {
            id: "s1".into(),
            kind,
            target: target.into(),
            reason: "kernel upgrade".into(),
            created: "2026-12-02T10:00:00+00:00".into(),
            until: "2099-01-01T00:00:00+00:00".into(),
            by: "alice".into(),
            window: None,
        }
    }

    #[tokio::test]
    async fn a_silenced_container_is_refused_with_the_silences_reason() {
        for (kind, target, compose) in [
            (TargetKind::Host, "h1", None),
            (TargetKind::Container, "h1/web", None),
            (TargetKind::Project, "shop", Some("shop")),
            (TargetKind::Label, "com.docker.compose.project=shop", Some("shop")),
        ] {
            let mut r = responder(vec![]);
            r.store.silences = vec![silence(kind, target)];
            r.store.observed().compose_project = compose.map(str::to_owned);
            r.handle(batch::event(vec![needed("t1", "h1")])).await;
            assert!(r.store.dispatched.lock().unwrap().is_empty(), "{kind}: nothing dispatched");
            let done: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
            assert_eq!(done.result.status, RemediationStatus::Rejected);
            assert_eq!(
                done.result.reason.as_deref(),
                Some("silenced: kernel upgrade (until 2099-01-01T00:00:00+00:00)"),
                "{kind}"
            );
            assert!(done.result.details.unwrap().contains("by alice"), "{kind}");
        }
        // The collector's project decides, not the one a request claims.
        let mut r = responder(vec![]);
        r.store.silences = vec![silence(TargetKind::Project, "shop")];
        r.store.observed().compose_project = Some("shop".into());
        let mut record = needed("t1", "h1");
        record.body =
            Some(batch::body(&record).replace(r#""confidence":0.9"#, r#""confidence":0.9,"compose_project":"blog""#));
        r.handle(batch::event(vec![record])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty(), "the collector's project is silenced");
        // Any other label: the collector matched it, the context names the silence.
        let mut r = responder(vec![]);
        r.store.silences = vec![silence(TargetKind::Label, "team=payments")];
        let mut record = needed("t1", "h1");
        let analyzed = r#""confidence":0.9,"analysis_method":"rule_based","silenced_by":["s1"]"#;
        record.body = Some(batch::body(&record).replace(r#""confidence":0.9"#, analyzed));
        r.handle(batch::event(vec![record])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty(), "the collector's label match is honoured");
        // An analyzed request the collector matched no silence for goes through
        // (and its facts are not looked up again).
        let mut r = responder(vec![]);
        r.store.silences = vec![silence(TargetKind::Label, "team=payments")];
        let mut record = needed("t1", "h1");
        record.body = Some(
            batch::body(&record).replace(r#""confidence":0.9"#, r#""confidence":0.9,"analysis_method":"rule_based""#),
        );
        r.handle(batch::event(vec![record])).await;
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1, "no label silence selects it");
        // A silence elsewhere, or on a project the container is not in, lets it through.
        for (kind, target) in [(TargetKind::Host, "h2"), (TargetKind::Project, "blog")] {
            let mut r = responder(vec![]);
            r.store.silences = vec![silence(kind, target)];
            r.store.observed().compose_project = Some("shop".into());
            r.handle(batch::event(vec![needed("t1", "h1")])).await;
            assert_eq!(r.store.dispatched.lock().unwrap().len(), 1, "{kind}:{target}");
        }
    }

    #[tokio::test]
    async fn the_alerts_policy_and_held_refuse_in_the_gates_order() {
        let held = r#""held":"operator: docker stop 3 s ago (grace 30 s)""#;
        for (context, reason) in [
            (
                format!(r#""policy":{{"action":"notify"}},{held}"#),
                "policy: notify (hemostat.action=notify: alert only, never act)",
            ),
            (held.to_owned(), "operator: docker stop 3 s ago (grace 30 s)"),
        ] {
            let r = responder(vec![]);
            let mut record = needed("t1", "h1");
            record.body =
                Some(batch::body(&record).replace(r#""confidence":0.9"#, &format!(r#""confidence":0.9,{context}"#)));
            r.handle(batch::event(vec![record])).await;
            assert!(r.store.dispatched.lock().unwrap().is_empty(), "{context}");
            let done: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
            assert_eq!(done.result.reason.as_deref(), Some(reason), "{context}");
        }
    }

    fn refusal(r: &Responder<FakeStore, Recorder>) -> String {
        let done: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert_eq!(done.result.status, RemediationStatus::Rejected);
        done.result.reason.unwrap_or_default()
    }

    #[tokio::test]
    async fn a_request_cannot_vouch_for_what_the_collector_does_not_say() {
        // A container no collector reports: nothing to act on.
        let mut r = responder(vec![]);
        r.store.facts = None;
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(refusal(&r).starts_with("unknown container: no collector reports h1/web"), "{}", refusal(&r));

        // Its labels say none; a forged request says restart, cooldown 0.
        let mut r = responder(vec![]);
        r.store.observed().policy = Policy { action: ActionPolicy::None, ..Policy::default() };
        let mut record = needed("t1", "h1");
        let forged = r#""confidence":0.9,"policy":{"action":"restart","cooldown_seconds":0},"image":"fresh:1""#;
        record.body = Some(batch::body(&record).replace(r#""confidence":0.9"#, forged));
        r.handle(batch::event(vec![record])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert_eq!(refusal(&r), "policy: none (hemostat.action=none: never act)");

        // A seed-shaped request with no policy at all: the labels still apply.
        let mut r = responder(vec![]);
        r.store.observed().policy = Policy { action: ActionPolicy::Notify, ..Policy::default() };
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(refusal(&r).starts_with("policy: notify"), "{}", refusal(&r));

        // A request for another container of that name (recreated since).
        let r = responder(vec![]);
        let mut record = needed("t1", "h1");
        record.body = Some(
            batch::body(&record).replace(r#""confidence":0.9"#, r#""confidence":0.9,"container_id":"ffffffffffff""#),
        );
        r.handle(batch::event(vec![record])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(refusal(&r).starts_with("container id mismatch"), "{}", refusal(&r));

        // The command names the collector's id and image, not the request's.
        let r = responder(vec![]);
        let mut record = needed("t1", "h1");
        record.body =
            Some(batch::body(&record).replace(r#""confidence":0.9"#, r#""confidence":0.9,"image":"fresh:2""#));
        r.handle(batch::event(vec![record])).await;
        let cmd = r.store.dispatched.lock().unwrap()[0].1.open(Some(&public())).unwrap();
        assert_eq!((cmd.container_id.as_deref(), cmd.context.image.as_deref()), (Some(ID), Some("shop/web:1")));
    }

    #[tokio::test]
    async fn an_action_that_needs_a_yes_is_parked_and_asked_for_once() {
        // The responder's setting names restart; the container's label, stop.
        let mut r = responder(vec![]);
        r.config.approve = hemostat_protocol::approval::Rule::parse("restart").unwrap();
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        r.handle(batch::event(vec![needed("t2", "h1")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        let parked = r.store.parked.lock().unwrap().clone();
        assert_eq!(parked.len(), 1);
        assert_eq!((parked[0].1.host.as_str(), parked[0].1.container_id.as_deref()), ("h1", Some(ID)));
        let published = r.publisher.0.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "asked once: {published:?}");
        let asked: SystemAlert = published[0].data_as().unwrap();
        assert_eq!(
            (asked.kind.as_str(), asked.approval.as_deref()),
            ("approval_requested", Some(parked[0].0.as_str()))
        );
        assert!(asked.message.contains(&format!("hemostat approve {}", parked[0].0)), "{}", asked.message);

        // A label asking for a yes on stops only: a restart goes ahead.
        let mut r = responder(vec![]);
        r.store.observed().policy = Policy { approve: Some("stop".into()), ..Policy::default() };
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1);
        let mut r = responder(vec![]);
        r.store.observed().policy = Policy { approve: Some("all".into()), ..Policy::default() };
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert_eq!(r.store.parked.lock().unwrap().len(), 1);

        // The gate would refuse (notify-only): refused as ever, nothing asked.
        let mut r = responder(vec![]);
        r.config.approve = hemostat_protocol::approval::Rule::parse("all").unwrap();
        r.store.observed().policy = Policy { action: ActionPolicy::Notify, ..Policy::default() };
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.parked.lock().unwrap().is_empty());
        assert!(refusal(&r).starts_with("policy: notify"), "{}", refusal(&r));

        // A request naming an approval the store does not hold: nothing.
        let r = responder(vec![]);
        let mut record = needed("t1", "h1");
        record.body = Some(
            batch::body(&record)
                .replace(r#""confidence":0.9"#, r#""confidence":0.9,"approval":"0123456789abcdef0123456789abcdef""#),
        );
        r.handle(batch::event(vec![record])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty() && r.publisher.0.lock().unwrap().is_empty());
    }

    const APPROVAL: &str = "0123456789abcdef0123456789abcdef";
    const SLACK_SECRET: &str = "s1ack-secret";

    /// A responder whose store holds a pending approval of a restart of h1/web.
    fn waiting() -> Responder<FakeStore, Recorder> {
        let mut r = responder(vec![]);
        r.config.slack_signing_secret = Some(SLACK_SECRET.into());
        let request: RemediationNeeded = serde_json::from_str(
            r#"{"container":"web","host":"h1","action":"restart","reason":"exit 1","confidence":0.9}"#,
        )
        .unwrap();
        r.store.approvals.lock().unwrap().push(Approval {
            id: APPROVAL.into(),
            container: ContainerRef::new("h1", "web"),
            action: Action::Restart,
            state: State::Pending,
            request,
            requested_at_ms: 0,
            deadline_ms: i64::MAX,
            by: None,
            answered_at_ms: None,
            note: None,
        });
        r
    }

    fn answer_record(answer: &ApprovalAnswer) -> BatchRecord {
        let env = Envelope::new(agent::DASHBOARD, EventKind::ApprovalAnswer, answer).unwrap();
        batch::record("1-0", EventKind::ApprovalAnswer.stream(), env.to_json(), 1)
    }

    fn slack_press(action: &str, secret: &str, at: i64) -> ApprovalAnswer {
        let payload = serde_json::json!({"type": "block_actions", "user": {"id": "U1"},
            "actions": [{"action_id": action, "value": APPROVAL}]});
        let body =
            form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let timestamp = at.to_string();
        let signature = slack::sign(secret.as_bytes(), &timestamp, body.as_bytes());
        let press = slack::press(body.as_bytes()).unwrap();
        ApprovalAnswer::from_slack(&press, SlackRequest { timestamp, signature, body })
    }

    fn state(r: &Responder<FakeStore, Recorder>) -> State {
        r.store.approvals.lock().unwrap()[0].state
    }

    #[tokio::test]
    async fn a_verified_yes_runs_through_the_gate_once() {
        let mut r = waiting();
        let now = chrono::Utc::now().timestamp();
        let press = slack_press(slack::APPROVE_ACTION, SLACK_SECRET, now);
        // The bridge could put it on the stream; only the signature counts.
        r.store.unattested = true;
        let response = r.handle(batch::event(vec![answer_record(&press)])).await;
        assert!(response.rejected_items.is_empty() && response.batch_item_failures.is_empty(), "{response:?}");
        let dispatched = r.store.dispatched.lock().unwrap().clone();
        assert_eq!(dispatched.len(), 1);
        let cmd = dispatched[0].1.open(Some(&public())).unwrap();
        assert_eq!((cmd.action, cmd.context.approval.as_deref()), (Action::Restart, Some(APPROVAL)));
        assert_eq!(cmd.id, approvals::command_id(APPROVAL));
        assert_eq!(state(&r), State::Done);
        assert_eq!(r.store.approvals.lock().unwrap()[0].by.as_deref(), Some("slack:U1"));
        // The same press again: nothing more.
        let response = r.handle(batch::event(vec![answer_record(&press)])).await;
        assert!(response.rejected_items.is_empty(), "{response:?}");
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_verified_no_is_reported_and_nothing_runs() {
        let r = waiting();
        let no = ApprovalAnswer::from_dashboard(APPROVAL, Decision::Deny, Some("bob"), Some("not during the sale"));
        r.handle(batch::event(vec![answer_record(&no)])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert_eq!(state(&r), State::Denied);
        assert_eq!(refusal(&r), "approval denied by dashboard:bob: not during the sale");
        let done: RemediationComplete = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert_eq!(done.context.approval.as_deref(), Some(APPROVAL));
    }

    #[tokio::test]
    async fn answers_nobody_vouches_for_are_dead_lettered_and_change_nothing() {
        let now = chrono::Utc::now().timestamp();
        let cases = [
            // The bridge's credentials: a dashboard answer nobody attested.
            (ApprovalAnswer::from_dashboard(APPROVAL, Decision::Approve, None, None), true, "not attested"),
            // Attested, but claiming to be somebody else.
            (
                ApprovalAnswer {
                    by: "cli:root".into(),
                    ..ApprovalAnswer::from_dashboard(APPROVAL, Decision::Approve, None, None)
                },
                false,
                "names",
            ),
            // Signed with another secret, or long ago.
            (slack_press(slack::APPROVE_ACTION, "another secret", now), false, "does not match"),
            (slack_press(slack::APPROVE_ACTION, SLACK_SECRET, now - 3600), false, "too old"),
        ];
        for (answer, unattested, why) in cases {
            let mut r = waiting();
            r.store.unattested = unattested;
            let response = r.handle(batch::event(vec![answer_record(&answer)])).await;
            assert_eq!(response.rejected_items.len(), 1, "{answer:?}");
            let reason = &response.rejected_items[0].reason;
            assert!(reason.starts_with("approval answer refused") && reason.contains(why), "{reason}");
            assert!(!reason.contains(SLACK_SECRET));
            assert_eq!(state(&r), State::Pending);
            assert!(r.store.dispatched.lock().unwrap().is_empty() && r.publisher.0.lock().unwrap().is_empty());
        }
        // No secret configured: a Slack press cannot be verified.
        let mut r = waiting();
        r.config.slack_signing_secret = None;
        let response =
            r.handle(batch::event(vec![answer_record(&slack_press(slack::APPROVE_ACTION, SLACK_SECRET, now))])).await;
        assert!(response.rejected_items[0].reason.contains("SLACK_SIGNING_SECRET"), "{response:?}");
        assert_eq!(state(&r), State::Pending);
    }

    #[tokio::test]
    async fn a_ladder_step_waits_for_the_yes_its_own_action_needs() {
        // Stops need a yes; the ladder's third step is a stop: parked as a
        // stop (not the restart asked for), the step named in the question.
        let mut r = responder(vec![]);
        r.store.observed().policy = Policy { approve: Some("stop".into()), ..Policy::default() };
        r.store.decision = Some(escalated(Action::Stop, 3));
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        let parked = r.store.parked.lock().unwrap().clone();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].1.action, Action::Stop);
        let asked: SystemAlert = r.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert!(asked.message.contains("h1/web: stop waits for a yes"), "{}", asked.message);
        assert!(asked.message.contains("escalation step 3/3"), "{}", asked.message);

        // Restarts need one, the ladder's recreate does not: taken.
        let mut r = responder(vec![]);
        r.config.approve = hemostat_protocol::approval::Rule::parse("restart").unwrap();
        r.store.decision = Some(escalated(Action::Recreate, 2));
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert!(r.store.parked.lock().unwrap().is_empty());
        let cmd = r.store.dispatched.lock().unwrap()[0].1.open(Some(&public())).unwrap();
        assert_eq!(cmd.action, Action::Recreate);
    }

    #[tokio::test]
    async fn an_approved_restart_never_becomes_an_unapproved_stop() {
        let id = "0123456789abcdef0123456789abcdef";
        let request: RemediationNeeded = serde_json::from_str(
            r#"{"container":"web","host":"h1","action":"restart","reason":"exit 1","confidence":0.9}"#,
        )
        .unwrap();
        let approved = Approval {
            id: id.into(),
            container: ContainerRef::new("h1", "web"),
            action: Action::Restart,
            state: hemostat_protocol::approval::State::Approved,
            request,
            requested_at_ms: 1,
            deadline_ms: 2,
            by: Some("cli:alice".into()),
            answered_at_ms: Some(1),
            note: None,
        };
        let named = || {
            let mut record = needed("t1", "h1");
            record.body = Some(
                batch::body(&record).replace(r#""confidence":0.9"#, &format!(r#""confidence":0.9,"approval":"{id}""#)),
            );
            record
        };
        // While it waited, the ladder climbed to its stop, which needs a yes too.
        let mut r = responder(vec![]);
        r.config.approve = hemostat_protocol::approval::Rule::parse("restart,stop").unwrap();
        r.store.approvals.lock().unwrap().push(approved.clone());
        r.store.decision = Some(escalated(Action::Stop, 3));
        r.handle(batch::event(vec![named()])).await;
        assert!(r.store.dispatched.lock().unwrap().is_empty());
        assert!(refusal(&r).starts_with("the escalation ladder moved on while the approval of a restart waited"));
        assert!(r.store.parked.lock().unwrap().is_empty(), "an approved request is never parked again");

        // Unmoved: the approved restart is taken, by the approval's command id.
        let mut r = responder(vec![]);
        r.config.approve = hemostat_protocol::approval::Rule::parse("restart,stop").unwrap();
        r.store.approvals.lock().unwrap().push(approved);
        r.handle(batch::event(vec![named()])).await;
        let cmd = r.store.dispatched.lock().unwrap()[0].1.open(Some(&public())).unwrap();
        assert_eq!((cmd.action, cmd.id.as_str()), (Action::Restart, approvals::command_id(id).as_str()));
    }

    #[tokio::test]
    async fn redelivered_request_is_not_dispatched_twice() {
        let r = responder(vec![]);
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        r.handle(batch::event(vec![needed("t1", "h1")])).await;
        assert_eq!(r.store.dispatched.lock().unwrap().len(), 1);
        assert!(r.publisher.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn host_is_looked_up_when_a_seed_publisher_omits_it() {
        let r = responder(vec!["h9".into()]);
        r.handle(batch::event(vec![needed("t1", "")])).await;
        assert_eq!(r.store.dispatched.lock().unwrap()[0].0, "h9");

        let ambiguous = responder(vec!["h1".into(), "h2".into()]);
        ambiguous.handle(batch::event(vec![needed("t1", "")])).await;
        assert!(ambiguous.store.dispatched.lock().unwrap().is_empty());
        let done: RemediationComplete = ambiguous.publisher.0.lock().unwrap()[0].data_as().unwrap();
        assert!(done.result.reason.unwrap().contains("2 hosts"));
    }
}
