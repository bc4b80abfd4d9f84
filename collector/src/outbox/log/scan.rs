//! Reading records back: the stored head, a record's checksum, reading one at a position,
//! finding the next valid one after damage, and the scan of a whole
//! segment that [`super::Log::open`]'s recovery makes.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
};

use super::{HEAD_SLOT, HEADER, MAGIC, MAX_PAYLOAD, Recovery};

pub(super) fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

pub(super) enum Found {
    Record {
        seq: u64,
        payload: Vec<u8>,
        next: u64,
    },
    /// Not a whole valid record: wrong magic, a length past the end, a
    /// checksum that does not match.
    Bad,
}

pub(super) fn read_record(file: &File, at: u64, end: u64) -> io::Result<Found> {
    if at + HEADER > end {
        return Ok(Found::Bad);
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact_at(&mut header, at)?;
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (magic, len, crc) = (word(0), u64::from(word(4)), word(8));
    let seq = u64::from_le_bytes(header[12..20].try_into().unwrap_or_default());
    if magic != MAGIC || len > MAX_PAYLOAD || at + HEADER + len > end {
        return Ok(Found::Bad);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, at + HEADER)?;
    if checksum(seq, &payload) != crc {
        return Ok(Found::Bad);
    }
    Ok(Found::Record { seq, payload, next: at + HEADER + len })
}

/// The offset of the next valid record at or after `from` (or `end`), and
/// its sequence number.
pub(super) fn resync(file: &File, from: u64, end: u64) -> io::Result<(u64, Option<u64>)> {
    let mut at = from;
    let mut buf = Vec::new();
    file.try_clone()?.read_to_end(&mut buf)?;
    let magic = MAGIC.to_le_bytes();
    while at + HEADER <= end {
        let Some(found) = buf.get(at as usize..end as usize).and_then(|rest| rest.windows(4).position(|w| w == magic))
        else {
            break;
        };
        let candidate = at + found as u64;
        if let Found::Record { seq, .. } = read_record(file, candidate, end)? {
            return Ok((candidate, Some(seq)));
        }
        at = candidate + 1;
    }
    Ok((end, None))
}

pub(super) struct Scanned {
    pub(super) bytes: u64,
    pub(super) last_seq: Option<u64>,
}

/// Checks every record of one segment: a bad record with nothing valid
/// after it is a torn tail, cut off; one with valid records after it is
/// corruption, left out by rewriting the segment.
pub(super) fn scan(path: &Path, first_seq: u64, recovery: &mut Recovery) -> io::Result<Scanned> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let end = file.metadata()?.len();
    let mut at = 0;
    let mut last_seq: Option<u64> = None;
    // Valid records' ranges, when corruption forces a rewrite.
    let mut keep: Vec<(u64, u64)> = Vec::new();
    let mut corrupt = false;
    while at < end {
        match read_record(&file, at, end)? {
            Found::Record { seq, next, .. } if last_seq.is_none_or(|l| seq > l) && seq >= first_seq => {
                keep.push((at, next));
                last_seq = Some(seq);
                at = next;
            }
            _ => {
                let (next_valid, seq) = resync(&file, at + 1, end)?;
                match seq {
                    Some(seq) if last_seq.is_none_or(|l| seq > l) && seq >= first_seq => {
                        let expected = last_seq.map_or(first_seq, |l| l + 1);
                        tracing::error!(
                            segment = %path.display(), offset = at, bytes = next_valid - at,
                            records = seq.saturating_sub(expected),
                            "outbox: corrupt records on disk skipped (checksum)"
                        );
                        recovery.corrupt_bytes += next_valid - at;
                        recovery.corrupt_records += seq.saturating_sub(expected);
                        corrupt = true;
                        at = next_valid;
                    }
                    _ => {
                        tracing::warn!(
                            segment = %path.display(), offset = at, bytes = end - at,
                            "outbox: torn record at the end (a write cut short) truncated"
                        );
                        recovery.truncated_bytes += end - at;
                        break;
                    }
                }
            }
        }
    }
    let bytes: u64 = keep.iter().map(|(from, to)| to - from).sum();
    if corrupt {
        rewrite(path, &file, &keep)?;
    } else if bytes < end {
        file.set_len(bytes)?;
        file.sync_all()?;
    }
    Ok(Scanned { bytes, last_seq })
}

/// Replaces the segment at `path` by its `keep` ranges, atomically (a
/// crash meanwhile leaves the old file, which recovery reads again).
pub(super) fn rewrite(path: &Path, file: &File, keep: &[(u64, u64)]) -> io::Result<()> {
    let tmp = path.with_extension("seg.tmp");
    let mut out = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    for &(from, to) in keep {
        let mut buf = vec![0u8; (to - from) as usize];
        file.read_exact_at(&mut buf, from)?;
        out.write_all(&buf)?;
    }
    out.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The stored head, from whichever slot is valid and further on.
pub(super) fn read_head(file: &File) -> io::Result<Option<u64>> {
    let mut buf = Vec::new();
    file.try_clone()?.read_to_end(&mut buf)?;
    let head = buf
        .chunks_exact(HEAD_SLOT as usize)
        .take(2)
        .filter_map(|slot| {
            let seq = u64::from_le_bytes(slot[..8].try_into().ok()?);
            let crc = u32::from_le_bytes(slot[8..12].try_into().ok()?);
            (crc == crc32fast::hash(&seq.to_le_bytes()) && seq > 0).then_some(seq)
        })
        .max();
    Ok(head)
}
