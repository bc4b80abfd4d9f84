//! `hemostat notify test`: a test notification through each sink the alert
//! function's settings configure (the same environment variables, read by
//! the alert crate itself, so this sends exactly what the function would),
//! and each sink's result. Needs no Redis.

use hemostat_alert::{Config, try_sinks};
use serde_json::json;

use crate::{error::CliError, show};

pub async fn test(sink: Option<&str>, as_json: bool) -> Result<(), CliError> {
    let config = Config::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "hemostat".into());
    let tried = try_sinks(&config, &host, sink).await.map_err(|e| CliError::Usage(e.to_string()))?;
    if tried.is_empty() {
        return Err(CliError::Usage(
            "no sink configured: set SLACK_WEBHOOK_URL, ALERT_WEBHOOK_URL, ALERT_NTFY_URL, ALERT_DISCORD_WEBHOOK_URL, \
             ALERT_TEAMS_WEBHOOK_URL, ALERT_PAGERDUTY_ROUTING_KEY, ALERT_GOTIFY_URL or ALERT_SMTP_HOST (`alert --help`)"
                .into(),
        ));
    }
    let failed = tried.iter().filter(|t| t.result.is_err()).count();
    if as_json {
        let rows: Vec<_> = tried
            .iter()
            .map(|t| match &t.result {
                Ok(d) => json!({"sink": t.sink, "ok": true, "attempts": d.attempts, "elapsed_ms": d.elapsed.as_millis() as u64}),
                Err(e) => json!({"sink": t.sink, "ok": false, "error": e.to_string()}),
            })
            .collect();
        show::json(&json!(rows));
    } else {
        for t in &tried {
            match &t.result {
                Ok(d) => println!("{:<10} delivered ({} attempt(s), {} ms)", t.sink, d.attempts, d.elapsed.as_millis()),
                Err(e) => println!("{:<10} FAILED: {e}", t.sink),
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} of {} sink(s) failed", tried.len())));
    }
    Ok(())
}
