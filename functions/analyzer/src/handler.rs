//! The Lambda handler: a batch of `health_alert` records in, one decision
//! event out per alert.
//!
//! Per alert: check that its host's collector attested it (refused
//! otherwise: see `hemostat_protocol::attestation`); store it in the container's history and read the history
//! back (one round trip); let the rules judge; when an LLM is configured,
//! ask it (cache first, then the hourly budget), falling back to the
//! rules' verdict on any failure; apply the confidence threshold; publish.

use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, Publisher, attestation,
    batch::{self, BatchEvent, BatchResponse, RecordOutcome},
    envelope::agent,
    event::{FalseAlarm, HealthAlert, IncidentContext, RemediationNeeded},
};

use crate::{
    Config,
    analysis::Analysis,
    budget, cache,
    error::AnalyzerError,
    history::{self, AlertSummary, History},
    llm::{Llm, Prompt, against_rules, evidence_json, parse_verdict},
    rules,
};

pub struct Analyzer<P, L> {
    config: Config,
    publisher: P,
    redis: Connection,
    llm: Option<L>,
}

impl<P: Publisher, L: Llm> Analyzer<P, L> {
    /// `llm`: `None` when no provider is configured; the rules decide.
    pub fn new(config: Config, publisher: P, redis: Connection, llm: Option<L>) -> Self {
        Analyzer { config, publisher, redis, llm }
    }

    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// The LLM it consults, when one is configured.
    pub fn llm(&self) -> Option<&L> {
        self.llm.as_ref()
    }

    pub async fn handle(&self, event: BatchEvent) -> BatchResponse {
        batch::process(event, |env| self.analyze(env)).await
    }

    async fn analyze(&self, env: Envelope) -> RecordOutcome {
        let alert: HealthAlert = match env.data_of(EventKind::HealthAlert) {
            Ok(a) => a,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        if self.config.require_attested_alerts {
            match attestation::is_attested(&self.redis, &env).await {
                Ok(true) => {}
                Ok(false) => {
                    // Dead-lettered with its reason, never diagnosed: no
                    // command can follow from it.
                    tracing::warn!(
                        container = %alert.container,
                        host = %alert.host,
                        "alert refused: its host's collector did not attest it"
                    );
                    return RecordOutcome::Rejected(format!(
                        "not attested by host {:?}'s collector: only a host's own collector may raise its alerts",
                        alert.host
                    ));
                }
                Err(e) => return RecordOutcome::Retry(e.to_string()),
            }
        }
        let analysis = match self.analysis(&alert, &env.timestamp).await {
            Ok(a) => a,
            // Only Redis fails here; the bridge delivers the alert again
            // (the history counts a redelivery once).
            Err(e) => return RecordOutcome::Retry(e.to_string()),
        };
        let out = match self.decision(&alert, &analysis) {
            Ok(out) => out,
            Err(e) => return RecordOutcome::Rejected(e.to_string()),
        };
        match self.publisher.publish(&out).await {
            Ok(_) => {
                tracing::info!(
                    container = %alert.container,
                    host = %alert.host,
                    decision = %out.kind,
                    action = %analysis.action,
                    confidence = analysis.confidence,
                    analysis_method = analysis.method.as_str(),
                    model = analysis.model.as_deref(),
                    fallback_reason = analysis.fallback_reason,
                    cached = analysis.cached,
                    "analyzed"
                );
                RecordOutcome::Done
            }
            Err(e) => RecordOutcome::Retry(e.to_string()),
        }
    }

    /// History, rules, then the LLM when configured.
    pub async fn analysis(&self, alert: &HealthAlert, timestamp: &str) -> Result<Analysis, AnalyzerError> {
        let now = chrono::Utc::now();
        // A timestamp that does not parse is rare (the envelope was parsed);
        // receipt time is the best substitute.
        let at = history::envelope_micros(timestamp).unwrap_or(now.timestamp_micros());
        let container = ContainerRef::new(&alert.host, &alert.container);
        let mut conn = self.redis.clone();
        let history = history::record(
            &mut conn,
            &container,
            &AlertSummary::of(alert, at),
            self.config.history_size,
            self.config.history_ttl,
        )
        .await?;
        let assessment = rules::evaluate(alert, &history, &self.config.escalation);
        match &self.llm {
            Some(llm) if !assessment.pattern.is_guard() => {
                self.consult(llm, &mut conn, alert, &history, assessment, now.timestamp_millis()).await
            }
            _ => Ok(Analysis::rules(assessment)),
        }
    }

    async fn consult(
        &self,
        llm: &L,
        conn: &mut Connection,
        alert: &HealthAlert,
        history: &History,
        assessment: rules::RuleDecision,
        now_ms: i64,
    ) -> Result<Analysis, AnalyzerError> {
        let signature = cache::signature(alert, assessment.pattern, assessment.diagnosis.as_ref().map(|d| d.cause));
        // What the model may choose: what the operator allows, of what the
        // container's own policy allows.
        let allowed = self.config.allowed_for(alert.policy.as_ref());
        let allows = |a: Action| a == Action::None || allowed.contains(&a);
        if let Some(hit) = cache::get(conn, &signature).await? {
            // A verdict cached under an older, wider allowed set must not
            // slip through after the operator narrowed it.
            if allows(hit.verdict.action) {
                let mut verdict = hit.verdict;
                // The cached diagnosis cited another alert's lines: only
                // those this alert carries too are kept.
                if let Some(d) = &mut verdict.diagnosis {
                    let mut texts = Vec::new();
                    if let Some(e) = &alert.evidence {
                        evidence_json(e, usize::MAX, &mut texts);
                    }
                    d.evidence.retain(|line| texts.iter().any(|t| t.contains(line.as_str())));
                }
                return Ok(Analysis::llm(verdict, &hit.model, true, assessment.diagnosis));
            }
        }
        if !budget::take(conn, self.config.max_calls_per_hour, now_ms).await? {
            tracing::warn!(container = %alert.container, "LLM call budget exhausted, rules decide");
            return Ok(Analysis::fallback(assessment, "budget_exhausted"));
        }
        let prompt = Prompt::new(alert, history, &assessment, &allowed);
        let answer = match tokio::time::timeout(self.config.ai_timeout, llm.complete(&prompt)).await {
            Ok(answer) => answer,
            Err(_) => Err(AnalyzerError::LlmTimeout(self.config.ai_timeout)),
        };
        let verdict = answer.and_then(|text| parse_verdict(&text, allows, &prompt.evidence)).and_then(|v| {
            against_rules(&v, assessment.diagnosis.as_ref())?;
            Ok(v)
        });
        match verdict {
            Ok(v) => {
                let cached = cache::CachedVerdict { model: llm.model().to_owned(), verdict: v.clone() };
                cache::put(conn, &signature, &cached, self.config.cache_ttl).await?;
                Ok(Analysis::llm(v, llm.model(), false, assessment.diagnosis))
            }
            Err(e) => {
                tracing::warn!(container = %alert.container, model = llm.model(), error = %e, "LLM analysis failed, rules decide");
                Ok(Analysis::from_error(assessment, &e))
            }
        }
    }

    /// The event to publish: `remediation_needed` to act, `false_alarm`
    /// for `none` or a confidence below the threshold.
    fn decision(&self, alert: &HealthAlert, analysis: &Analysis) -> Result<Envelope, AnalyzerError> {
        let fallback_reason = analysis.fallback_reason.map(str::to_owned);
        let context = IncidentContext {
            detected_at: alert.detected_at.clone(),
            analysis_method: Some(analysis.method.as_str().to_owned()),
            model: analysis.model.clone(),
            image: alert.image.clone(),
            severity: alert.anomalies.iter().map(|a| a.severity).max(),
            diagnosis: analysis.diagnosis.clone(),
            compose_project: alert.evidence.as_ref().and_then(|e| e.state.compose_project.clone()),
            compose_service: alert.evidence.as_ref().and_then(|e| e.state.compose_service.clone()),
            policy: alert.policy.clone(),
            held: alert.held.clone(),
            silenced_by: alert.silenced_by.clone(),
            approval: None,
            escalation_step: None,
        };
        let threshold = self.config.confidence_threshold;
        if analysis.action == Action::None || analysis.confidence < threshold {
            let reason = if analysis.action == Action::None {
                analysis.reason.clone()
            } else {
                format!("{} (confidence {:.2} below threshold {threshold:.2})", analysis.reason, analysis.confidence)
            };
            let alarm = FalseAlarm {
                container: alert.container.clone(),
                reason,
                host: alert.host.clone(),
                confidence: Some(analysis.confidence),
                fallback_reason,
                llm_cached: analysis.cached,
                context,
            };
            return Ok(Envelope::new(agent::ANALYZER, EventKind::FalseAlarm, &alarm)?);
        }
        let needed = RemediationNeeded {
            container: alert.container.clone(),
            action: analysis.action,
            reason: analysis.reason.clone(),
            confidence: analysis.confidence,
            metrics: Some(alert.metrics.clone()),
            host: alert.host.clone(),
            container_id: alert.container_id.clone(),
            fallback_reason,
            llm_cached: analysis.cached,
            context,
        };
        Ok(Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &needed)?)
    }
}

/// A placeholder LLM type for analyzers without one
/// (`Analyzer::<_, NoLlm>::new(.., None)`); it is never called.
pub enum NoLlm {}

impl Llm for NoLlm {
    fn model(&self) -> &str {
        match *self {}
    }

    async fn complete(&self, _prompt: &Prompt) -> Result<String, AnalyzerError> {
        match *self {}
    }
}
