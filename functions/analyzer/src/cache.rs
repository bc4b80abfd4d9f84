//! LLM verdicts cached by failure signature, so a container failing the
//! same way again costs one call, not one per alert.
//!
//! The signature is the container (host and name), its image, the sorted
//! anomaly kinds, the pattern the rules saw in the history, and the cause
//! the rules diagnosed: a verdict for a lone crash must not be reused for a
//! crash loop, nor one for a full disk for a refused dependency. Per
//! container, not per image across hosts: a model can be steered by the
//! log lines it reads, and one container's logs must not decide for
//! another's.

use std::time::Duration;

use hemostat_protocol::connection::Connection;
use hemostat_protocol::{ContainerRef, diagnosis::Cause, event::HealthAlert, keys};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::{
    error::AnalyzerError,
    llm::LlmVerdict,
    rules::{self, Pattern},
};

/// A verdict as cached: which model gave it, too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedVerdict {
    pub model: String,
    pub verdict: LlmVerdict,
}

/// `host/name|image|kind,kind|pattern|cause` (`image` and `cause` empty
/// when unknown).
pub fn signature(alert: &HealthAlert, pattern: Pattern, cause: Option<Cause>) -> String {
    let container = ContainerRef::new(&alert.host, &alert.container).key();
    let subject = format!("{container}|{}", alert.image.as_deref().unwrap_or_default());
    let mut kinds: Vec<String> = alert.anomalies.iter().map(|a| rules::kind_name(a.kind)).collect();
    kinds.sort();
    kinds.dedup();
    let cause = cause.map(Cause::as_str).unwrap_or_default();
    format!("{subject}|{}|{}|{cause}", kinds.join(","), pattern.as_str())
}

pub async fn get(conn: &mut Connection, signature: &str) -> Result<Option<CachedVerdict>, AnalyzerError> {
    let json: Option<String> = conn.get(keys::ai_verdict(signature)).await?;
    // An entry this version cannot read is a miss, not a failure.
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

pub async fn put(
    conn: &mut Connection,
    signature: &str,
    cached: &CachedVerdict,
    ttl: Duration,
) -> Result<(), AnalyzerError> {
    if ttl.is_zero() {
        return Ok(());
    }
    let json = serde_json::to_string(cached).map_err(hemostat_protocol::ProtocolError::from)?;
    let () = conn.set_ex(keys::ai_verdict(signature), json, ttl.as_secs().max(1)).await?;
    Ok(())
}
