//! What an analyzer writes to vouch for a request it publishes, for tests
//! that play the analyzer and hand the responder a batch themselves (the
//! responder acts only on attested requests).

use hemostat_protocol::{Envelope, attestation, connection::Connection, keys};
use redis::AsyncCommands;

/// Attests `env` as its publisher would before publishing it.
pub async fn attest(conn: &Connection, env: &Envelope) {
    let key = attestation::key(env).unwrap_or_else(|| panic!("a {} is not attested", env.kind));
    let () =
        conn.clone().set_ex(&key, 1, keys::ATTESTATION_TTL.as_secs()).await.unwrap_or_else(|e| panic!("{key}: {e}"));
}
