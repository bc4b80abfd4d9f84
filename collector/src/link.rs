//! The link to Redis: connections that connect on first use.
//!
//! The collector must come up (and watch Docker) while Redis is down: a
//! crash seen then is queued in the outbox, not missed. So its connections
//! are created without connecting; each use (re)connects as needed, and the
//! callers' own backoff paces the attempts while Redis is away.

use std::time::Duration;

use hemostat_protocol::connection::client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::CollectorError;

/// How long one ordinary command may take before it counts as failed (as
/// `hemostat_protocol::connection`).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection for ordinary commands. Fails only on an unusable URL (a
/// configuration error, never logged with its password).
pub fn lazy(url: &str) -> Result<ConnectionManager, CollectorError> {
    open(url, RESPONSE_TIMEOUT)
}

/// A connection for blocking reads (`XREADGROUP ... BLOCK`): its own socket,
/// and a response timeout longer than any block the caller uses.
pub fn lazy_blocking(url: &str, longest_block: Duration) -> Result<ConnectionManager, CollectorError> {
    open(url, longest_block + RESPONSE_TIMEOUT)
}

fn open(url: &str, response_timeout: Duration) -> Result<ConnectionManager, CollectorError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        // Few and short: the caller's backoff is what spaces attempts out.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    Ok(ConnectionManager::new_lazy_with_config(client(url)?, config)?)
}
