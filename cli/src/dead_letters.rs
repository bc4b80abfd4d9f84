//! `hemostat dead-letters` (`dlq`): the records the bridge gave up on
//! ([`keys::DEAD_LETTER_STREAM`]), listed, replayed into the stream they
//! came from once the cause is fixed, or dropped.
//!
//! A replay appends the envelope to its stream (for the one consumer group
//! that gave up on it, [`REPLAY_FOR_FIELD`]), then deletes the dead letter.
//! The two keys are in different slots of a cluster, so no transaction
//! holds both: the new entry carries the dead letter's id
//! ([`REPLAY_OF_FIELD`]), and a replay that finds that entry already in
//! the stream (an earlier run stopped between the two) only deletes the
//! dead letter. Run twice, a replay appends each record once.

use std::collections::HashMap;

use hemostat_protocol::{
    EventKind, keys,
    publisher::{ENVELOPE_FIELD, REPLAY_FOR_FIELD, REPLAY_OF_FIELD, dead_letter},
};
use redis::{AsyncCommands, streams::StreamRangeReply};
use serde_json::{Value, json};

use crate::{context::Context, error::CliError, show};

/// How far before its dead letter a replayed entry is looked for: the
/// clocks of a cluster's nodes (which number the entries) may differ.
const CLOCK_SKEW_MS: u64 = 60_000;
/// Entries read at a time while looking for an earlier replay.
const PAGE: usize = 500;

/// One dead letter: its id in the dead-letter stream and its fields.
struct DeadLetter {
    id: String,
    fields: HashMap<String, String>,
}

impl DeadLetter {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Which dead letters a replay takes.
pub struct Choice {
    /// This one only.
    pub id: Option<String>,
    /// Those that came from this stream.
    pub stream: Option<String>,
}

async fn dead_letters(ctx: &Context) -> Result<Vec<DeadLetter>, CliError> {
    let reply: StreamRangeReply = ctx.conn().xrange_all(keys::DEAD_LETTER_STREAM).await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|e| {
            let fields = e
                .map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), redis::from_redis_value::<String>(v.clone()).ok()?)))
                .collect();
            DeadLetter { id: e.id, fields }
        })
        .collect())
}

pub async fn list(ctx: &Context, stream: Option<&str>) -> Result<(), CliError> {
    let letters: Vec<DeadLetter> = dead_letters(ctx)
        .await?
        .into_iter()
        .filter(|d| stream.is_none_or(|s| d.field(dead_letter::STREAM) == s))
        .collect();
    if ctx.json {
        let rows: Vec<Value> = letters.iter().map(|d| json!({"id": d.id, "fields": d.fields})).collect();
        show::json(&Value::Array(rows));
        return Ok(());
    }
    println!("DEAD LETTERS ({})", letters.len());
    for d in &letters {
        let at = d.id.split('-').next().and_then(|ms| ms.parse().ok()).map(show::time).unwrap_or_default();
        println!(
            "  {}  {at}  {} -> {} (record {}, {} attempts): {}",
            d.id,
            d.field(dead_letter::STREAM),
            d.field(dead_letter::FUNCTION),
            d.field(dead_letter::ID),
            d.field(dead_letter::ATTEMPTS),
            d.field(dead_letter::REASON)
        );
    }
    Ok(())
}

/// Replays the chosen dead letters, oldest first (see the module's
/// documentation). A dead letter that names no group is replayed for
/// every group; one that names no stream HemoStat reads (a malformed
/// message on a seed channel) is kept.
pub async fn replay(ctx: &Context, choice: &Choice, dry_run: bool) -> Result<(), CliError> {
    if let Some(s) = &choice.stream
        && EventKind::from_stream(s).is_none()
    {
        let known: Vec<String> = EventKind::ALL.iter().map(|k| k.stream()).collect();
        return Err(CliError::Usage(format!("--stream {s:?}: expected one of {}", known.join(", "))));
    }
    let letters = dead_letters(ctx).await?;
    let chosen: Vec<&DeadLetter> = match &choice.id {
        Some(id) => {
            let one = letters.iter().find(|d| d.id == *id);
            vec![one.ok_or_else(|| {
                CliError::NotFound(format!("no dead letter {id:?} (see `hemostat dead-letters list`)"))
            })?]
        }
        None => letters
            .iter()
            .filter(|d| choice.stream.as_ref().is_none_or(|s| d.field(dead_letter::STREAM) == s))
            .collect(),
    };
    let mut conn = ctx.conn();
    let (mut rows, mut kept) = (Vec::new(), 0);
    for d in chosen {
        let (stream, body, group) =
            (d.field(dead_letter::STREAM), d.field(ENVELOPE_FIELD), d.field(dead_letter::GROUP));
        let why = if body.is_empty() {
            Some("has no envelope: nothing to replay".to_owned())
        } else if EventKind::from_stream(stream).is_none() {
            Some(format!("came from {stream:?}, not a stream HemoStat reads (`hemostat dead-letters drop` it)"))
        } else {
            None
        };
        if let Some(why) = why {
            if choice.id.is_some() {
                return Err(CliError::Failed(format!("dead letter {} {why}", d.id)));
            }
            eprintln!("hemostat: dead letter {} {why}; kept", d.id);
            kept += 1;
            continue;
        }
        let only = if group.is_empty() { " for every group".to_owned() } else { format!(" for group {group}") };
        let group = (!group.is_empty()).then_some(group);
        if dry_run {
            rows.push(json!({"dead_letter": d.id, "stream": stream, "group": group, "entry": null}));
            if !ctx.json {
                println!("would replay {} into {stream}{only}", d.id);
            }
            continue;
        }
        let (entry, again) = match replayed_as(&mut conn, stream, &d.id).await? {
            Some(entry) => (entry, true),
            None => {
                let mut add = redis::cmd("XADD");
                add.arg(stream).arg("MAXLEN").arg("~").arg(keys::STREAM_MAXLEN).arg("*").arg(ENVELOPE_FIELD).arg(body);
                if let Some(group) = group {
                    add.arg(REPLAY_FOR_FIELD).arg(group);
                }
                add.arg(REPLAY_OF_FIELD).arg(&d.id);
                (add.query_async::<String>(&mut conn).await?, false)
            }
        };
        let _: u64 = conn.xdel(keys::DEAD_LETTER_STREAM, &[&d.id]).await?;
        rows.push(json!({"dead_letter": d.id, "stream": stream, "group": group, "entry": entry, "earlier": again}));
        if !ctx.json {
            let how = if again { "was already replayed" } else { "replayed" };
            println!("{} {how} into {stream}{only} as {entry}", d.id);
        }
    }
    if ctx.json {
        show::json(&Value::Array(rows));
    } else {
        let verb = if dry_run { "would replay" } else { "replayed" };
        println!("{verb} {}, kept {kept}", rows.len());
    }
    Ok(())
}

/// The entry of `stream` replayed from dead letter `dead_id`, if an earlier
/// replay appended it: looked for among the entries since the dead letter.
async fn replayed_as(
    conn: &mut hemostat_protocol::connection::Connection,
    stream: &str,
    dead_id: &str,
) -> Result<Option<String>, CliError> {
    let since = dead_id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()).unwrap_or(0);
    let start = since.saturating_sub(CLOCK_SKEW_MS).to_string();
    let mut end = "+".to_owned();
    loop {
        let page: StreamRangeReply = conn.xrevrange_count(stream, &end, &start, PAGE).await?;
        if let Some(e) = page.ids.iter().find(|e| e.get::<String>(REPLAY_OF_FIELD).as_deref() == Some(dead_id)) {
            return Ok(Some(e.id.clone()));
        }
        match page.ids.last() {
            Some(last) if page.ids.len() == PAGE => end = format!("({}", last.id),
            _ => return Ok(None),
        }
    }
}

pub async fn drop(ctx: &Context, id: &str) -> Result<(), CliError> {
    let removed: u64 = ctx.conn().xdel(keys::DEAD_LETTER_STREAM, &[id]).await?;
    if removed == 0 {
        return Err(CliError::NotFound(format!("no dead letter {id:?} (see `hemostat dead-letters list`)")));
    }
    if ctx.json {
        show::json(&json!({"dropped": id}));
    } else {
        println!("dead letter {id} dropped");
    }
    Ok(())
}
