//! The outbox's append-only segment log on disk.
//!
//! Files in the outbox folder (`<state dir>/outbox/`):
//! - `<first seq, 20 digits>.seg`: segments, oldest first; the last one is
//!   appended to. A record is a 20-byte header, then its payload (the
//!   envelope's JSON): magic `HMOB` (u32), payload length (u32), CRC-32 of
//!   the sequence number and the payload (u32), sequence number (u64), all
//!   little-endian. Sequence numbers grow by one per record, across
//!   restarts.
//! - `head`: the next sequence number to deliver, in two checksummed slots
//!   written in turn (a torn write leaves the other slot valid).
//! - `lock`: held (`flock`) while a collector uses the folder.
//!
//! Durability: [`Log::append`] is one `write` into the page cache, which
//! survives the process being killed (`kill -9`, a panic, the OOM killer).
//! [`Log::sync_handle`] gives what to `fsync`; the outbox does so at most
//! every [`super::SYNC_INTERVAL`] after appends, off the callers' path. So
//! a power loss or kernel crash can lose the records appended in that last
//! interval, and the head position written since the last `fsync` (records
//! then delivered again: a duplicate, never a loss). The head is written
//! (not synced) after every delivery: a collector killed at any point
//! re-delivers at most the record it was sending.
//!
//! Recovery ([`Log::open`]) reads every segment once: a record whose magic,
//! length or checksum is wrong ends a torn tail (truncated and logged) or,
//! when valid records follow it, is corrupt (skipped: the segment is
//! rewritten without it, and that is logged). Records are never kept in
//! memory: only each segment's size and sequence numbers, and the read
//! position of the head.
//!
//! The bound is in bytes on disk: an append that would pass it drops the
//! oldest segment (of [`Log::open`]'s `max_bytes / SEGMENTS_PER_BOUND`
//! bytes), delivered or not, and reports what it held.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

const MAGIC: u32 = u32::from_le_bytes(*b"HMOB");
pub const HEADER: u64 = 20;
/// Longer than any record is allowed to be: a corrupt length is caught
/// before anything is allocated for it.
const MAX_PAYLOAD: u64 = 64 << 20;
/// The bound is split into this many segments: dropping the oldest one
/// drops a sixteenth of the outbox at most.
pub const SEGMENTS_PER_BOUND: u64 = 16;
const SEGMENT_SUFFIX: &str = ".seg";
const HEAD_FILE: &str = "head";
const LOCK_FILE: &str = "lock";
const HEAD_SLOT: u64 = 16;

/// One segment file.
#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    /// Bytes of valid records: the file's length.
    bytes: u64,
    /// The last record's sequence number (None: empty).
    last_seq: Option<u64>,
}

/// What [`Log::open`] found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Records not yet delivered, replayed first.
    pub pending: u64,
    /// Bytes of a torn last record cut off (a write cut short).
    pub truncated_bytes: u64,
    /// Bytes of corrupt records skipped between valid ones.
    pub corrupt_bytes: u64,
    /// Records lost to corruption (by the gaps in sequence numbers).
    pub corrupt_records: u64,
    /// Undelivered records dropped because the bound is now smaller.
    pub dropped: u64,
}

/// Records dropped to make room: their sequence numbers, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub first: u64,
    pub last: u64,
}

impl Dropped {
    pub fn count(&self) -> u64 {
        self.last + 1 - self.first
    }
}

/// A record read at the head.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("a record of {0} bytes is larger than a quarter of the outbox's bound")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub struct Log {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; never empty: the last is the one appended to.
    segments: VecDeque<Segment>,
    writer: File,
    /// Set when a segment was created since the last sync: the folder
    /// needs an fsync too, or a power loss can lose the file's name.
    new_file: bool,
    /// The next sequence number to deliver.
    head: u64,
    /// Where the head record starts, in the oldest segment.
    cursor: u64,
    /// Where the record after the head starts, once read by [`Log::peek`].
    peeked: Option<(u64, u64)>,
    next_seq: u64,
    pending: u64,
    head_file: File,
    head_writes: u64,
    _lock: File,
}

impl Log {
    /// Opens (creating) the log in `dir`, recovers it, and starts a new
    /// segment to append to. Fails when `dir` cannot be used, or another
    /// process holds it.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Log, Recovery)> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Ours alone: records carry alerts' evidence.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let lock = open_rw(&dir.join(LOCK_FILE))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(io::ErrorKind::WouldBlock, "in use by another process (one collector per state folder)")
            } else {
                e
            });
        }
        let head_file = open_rw(&dir.join(HEAD_FILE))?;
        let stored_head = read_head(&head_file)?;
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        for (first_seq, path) in list_segments(dir)? {
            let scan = scan(&path, first_seq, &mut recovery)?;
            if scan.last_seq.is_none() {
                // Nothing in it (a run's last segment, unused): its name
                // may be the one the new segment takes.
                remove(&path)?;
                continue;
            }
            segments.push_back(Segment { first_seq, path, bytes: scan.bytes, last_seq: scan.last_seq });
        }
        // Sequence numbers start at 1; the head never moves back, nor does
        // a new record get a number at or below one already delivered.
        let last_seq = segments.iter().filter_map(|s| s.last_seq).max().unwrap_or(0);
        let first_seq = segments.iter().find(|s| s.last_seq.is_some()).map(|s| s.first_seq);
        let head = stored_head.or(first_seq).unwrap_or(1).max(1);
        let next_seq = (last_seq + 1).max(head);
        let segment_bytes = (max_bytes / SEGMENTS_PER_BOUND).max(HEADER + 1);
        // Segments fully delivered (or empty) are done with.
        while let Some(front) = segments.front() {
            if front.last_seq.is_some_and(|last| last >= head) {
                break;
            }
            remove(&front.path)?;
            segments.pop_front();
        }
        let (writer, active) = create_segment(dir, next_seq)?;
        segments.push_back(active);
        let mut log = Log {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            segments,
            writer,
            new_file: true,
            head,
            cursor: 0,
            peeked: None,
            next_seq,
            pending: 0,
            head_file,
            head_writes: 0,
            _lock: lock,
        };
        log.cursor = log.offset_of_head()?;
        log.pending = log.count_pending()?;
        log.write_head()?;
        while log.total_bytes() > log.max_bytes && log.segments.len() > 1 {
            if let Some(d) = log.drop_oldest()? {
                recovery.dropped += d.count();
            }
        }
        recovery.pending = log.pending;
        Ok((log, recovery))
    }

    /// Appends `payload` as the next record; returns its sequence number
    /// and the records dropped to make room (oldest first).
    pub fn append(&mut self, payload: &[u8]) -> Result<(u64, Vec<Dropped>), AppendError> {
        let len = HEADER + payload.len() as u64;
        if len > self.max_bytes / 4 || payload.len() as u64 > MAX_PAYLOAD {
            return Err(AppendError::TooLarge(len));
        }
        let mut dropped = Vec::new();
        if self.active().bytes > 0 && self.active().bytes + len > self.segment_bytes {
            self.roll()?;
        }
        while self.total_bytes() + len > self.max_bytes {
            if self.segments.len() == 1 {
                // Only the active segment is left and it is too full: start
                // another so that this one can go.
                self.roll()?;
            }
            dropped.extend(self.drop_oldest()?);
        }
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(len as usize);
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        let at = self.active().bytes;
        if let Err(e) = self.writer.write_all(&record) {
            // Whatever part reached the file goes: the next append starts
            // where this one did, and recovery would cut it off anyway.
            let _ = self.writer.set_len(at);
            return Err(e.into());
        }
        let active = self.active_mut();
        active.bytes += len;
        active.last_seq = Some(seq);
        self.next_seq += 1;
        self.pending += 1;
        Ok((seq, dropped))
    }

    /// The head record (the oldest not delivered), read from disk; None
    /// when everything was delivered. Corrupt bytes met on the way (the
    /// disk changed under a running collector) are skipped and logged.
    pub fn peek(&mut self) -> io::Result<Option<Record>> {
        loop {
            let Some(front) = self.segments.front() else { return Ok(None) };
            if self.cursor >= front.bytes {
                if self.segments.len() == 1 {
                    return Ok(None);
                }
                // Only a segment whose records all lie before the head ends
                // here; it is removed as the head passes it.
                let path = front.path.clone();
                remove(&path)?;
                self.segments.pop_front();
                self.cursor = 0;
                continue;
            }
            let file = File::open(&front.path)?;
            match read_record(&file, self.cursor, front.bytes)? {
                Found::Record { seq, payload, next } if seq >= self.head => {
                    self.peeked = Some((seq, next));
                    return Ok(Some(Record { seq, payload }));
                }
                Found::Record { next, .. } => self.cursor = next,
                Found::Bad => {
                    let (skip_to, _) = resync(&file, self.cursor + 1, front.bytes)?;
                    tracing::error!(
                        segment = %front.path.display(),
                        offset = self.cursor,
                        bytes = skip_to - self.cursor,
                        "outbox: corrupt bytes on disk skipped"
                    );
                    self.cursor = skip_to;
                }
            }
        }
    }

    /// Marks `seq`, the record [`Log::peek`] returned, delivered (or given
    /// up): the head moves past it. Nothing happens when it is no longer the
    /// head (dropped to make room meanwhile).
    pub fn advance(&mut self, seq: u64) -> io::Result<()> {
        let Some((peeked, next)) = self.peeked.take() else { return Ok(()) };
        if peeked != seq || self.head > seq {
            return Ok(());
        }
        self.head = seq + 1;
        self.cursor = next;
        self.pending = self.pending.saturating_sub(1);
        self.write_head()?;
        if self.segments.len() > 1 && self.segments.front().is_some_and(|s| self.cursor >= s.bytes) {
            if let Some(done) = self.segments.pop_front() {
                remove(&done.path)?;
            }
            self.cursor = 0;
        }
        Ok(())
    }

    /// Records not yet delivered.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes of every segment on disk (delivered records included until
    /// their segment goes).
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What to fsync for everything appended so far to be durable: the
    /// segment appended to, and the folder when a segment was created.
    /// Syncing a clone of the descriptor needs no lock on the log.
    pub fn sync_handle(&mut self) -> io::Result<(File, Option<File>)> {
        let file = self.writer.try_clone()?;
        let dir = if std::mem::take(&mut self.new_file) { Some(File::open(&self.dir)?) } else { None };
        Ok((file, dir))
    }

    /// Syncs everything now, the head position too (at shutdown).
    pub fn sync_all(&mut self) -> io::Result<()> {
        let (file, dir) = self.sync_handle()?;
        file.sync_data()?;
        if let Some(dir) = dir {
            dir.sync_all()?;
        }
        self.head_file.sync_data()
    }

    /// Makes appends fail, as a full or read-only disk does (`repair`:
    /// until told otherwise).
    #[cfg(test)]
    pub fn break_disk(&mut self, broken: bool) -> io::Result<()> {
        self.writer = if broken {
            // Opened for reading: every write fails (EBADF).
            File::open(&self.active().path)?
        } else {
            OpenOptions::new().append(true).open(&self.active().path)?
        };
        Ok(())
    }

    fn active(&self) -> &Segment {
        // Never empty: open() pushes the active segment, roll() replaces it.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn roll(&mut self) -> io::Result<()> {
        let (writer, segment) = create_segment(&self.dir, self.next_seq)?;
        // The finished segment's data must reach the disk too: sync it now,
        // before its descriptor is gone (rare: once per segment).
        self.writer.sync_data()?;
        self.writer = writer;
        self.segments.push_back(segment);
        self.new_file = true;
        Ok(())
    }

    /// Removes the oldest segment (never the active one); returns the
    /// undelivered records it held.
    fn drop_oldest(&mut self) -> io::Result<Option<Dropped>> {
        if self.segments.len() < 2 {
            return Ok(None);
        }
        let Some(oldest) = self.segments.pop_front() else { return Ok(None) };
        remove(&oldest.path)?;
        let next_first = self.segments.front().map(|s| s.first_seq).unwrap_or(self.next_seq);
        let dropped = match oldest.last_seq {
            Some(last) if last >= self.head => {
                let first = self.head.max(oldest.first_seq);
                Some(Dropped { first, last })
            }
            _ => None,
        };
        if let Some(d) = dropped {
            self.pending = self.pending.saturating_sub(d.count());
        }
        self.head = self.head.max(next_first);
        self.cursor = 0;
        self.peeked = None;
        self.write_head()?;
        Ok(dropped)
    }

    /// The offset of the first record at or after the head in the oldest
    /// segment (0 when the head is its first record).
    fn offset_of_head(&self) -> io::Result<u64> {
        let Some(front) = self.segments.front() else { return Ok(0) };
        let file = File::open(&front.path)?;
        let mut at = 0;
        while at < front.bytes {
            match read_record(&file, at, front.bytes)? {
                Found::Record { seq, .. } if seq >= self.head => return Ok(at),
                Found::Record { next, .. } => at = next,
                // Recovery left no bad record behind.
                Found::Bad => return Ok(at),
            }
        }
        Ok(at)
    }

    fn count_pending(&self) -> io::Result<u64> {
        let mut pending = 0;
        for s in &self.segments {
            let file = File::open(&s.path)?;
            let mut at = 0;
            while at < s.bytes {
                match read_record(&file, at, s.bytes)? {
                    Found::Record { seq, next, .. } => {
                        pending += u64::from(seq >= self.head);
                        at = next;
                    }
                    Found::Bad => break,
                }
            }
        }
        Ok(pending)
    }

    /// Writes the head position into the next of its two slots. Not
    /// synced: see the module's documentation.
    fn write_head(&mut self) -> io::Result<()> {
        let mut slot = [0u8; HEAD_SLOT as usize];
        slot[..8].copy_from_slice(&self.head.to_le_bytes());
        slot[8..12].copy_from_slice(&crc32fast::hash(&self.head.to_le_bytes()).to_le_bytes());
        let at = (self.head_writes % 2) * HEAD_SLOT;
        self.head_writes += 1;
        self.head_file.write_all_at(&slot, at)
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

fn create_segment(dir: &Path, first_seq: u64) -> io::Result<(File, Segment)> {
    let path = segment_path(dir, first_seq);
    // A leftover file of that name holds nothing valid (recovery removed
    // what it did not keep): start it afresh.
    let writer = OpenOptions::new().append(true).create(true).truncate(false).mode(0o600).open(&path)?;
    writer.set_len(0)?;
    Ok((writer, Segment { first_seq, path, bytes: 0, last_seq: None }))
}

/// The segments in `dir`, by first sequence number. Other files are left alone.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        found.push((first, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The stored head, from whichever slot is valid and further on.
fn read_head(file: &File) -> io::Result<Option<u64>> {
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

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

enum Found {
    Record {
        seq: u64,
        payload: Vec<u8>,
        next: u64,
    },
    /// Not a whole valid record: wrong magic, a length past the end, a
    /// checksum that does not match.
    Bad,
}

fn read_record(file: &File, at: u64, end: u64) -> io::Result<Found> {
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
fn resync(file: &File, from: u64, end: u64) -> io::Result<(u64, Option<u64>)> {
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

struct Scanned {
    bytes: u64,
    last_seq: Option<u64>,
}

/// Checks every record of one segment: a bad record with nothing valid
/// after it is a torn tail, cut off; one with valid records after it is
/// corruption, left out by rewriting the segment.
fn scan(path: &Path, first_seq: u64, recovery: &mut Recovery) -> io::Result<Scanned> {
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
fn rewrite(path: &Path, file: &File, keep: &[(u64, u64)]) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::testing::TempDir;

    fn payload(n: u64) -> Vec<u8> {
        format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes()
    }

    fn n_of(r: &Record) -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        v["n"].as_u64().unwrap()
    }

    /// Delivers everything pending; returns the payloads' numbers in order.
    fn drain(log: &mut Log) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(r) = log.peek().unwrap() {
            got.push(n_of(&r));
            log.advance(r.seq).unwrap();
        }
        got
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        list_segments(dir).unwrap().into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn undelivered_records_are_replayed_in_order_after_a_restart() {
        let dir = TempDir::new();
        {
            let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
            assert_eq!(rec, Recovery::default());
            for n in 1..=10 {
                log.append(&payload(n)).unwrap();
            }
            // Three delivered before the "crash" (no shutdown, no sync).
            for _ in 0..3 {
                let r = log.peek().unwrap().unwrap();
                log.advance(r.seq).unwrap();
            }
            assert_eq!(log.pending(), 7);
        }
        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!(rec.pending, 7);
        // New records come after the replayed ones, numbered after them.
        let (seq, _) = log.append(&payload(11)).unwrap();
        assert_eq!(seq, 11);
        assert_eq!(drain(&mut log), (4..=11).collect::<Vec<_>>());
        drop(log);
        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!(rec.pending, 0);
        assert!(drain(&mut log).is_empty());
        // Delivered segments are gone: only the new, empty one is left.
        assert_eq!(segments(&dir.0).len(), 1);
        assert_eq!(log.total_bytes(), 0);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_every_earlier_record_kept() {
        let dir = TempDir::new();
        {
            let (mut log, _) = Log::open(&dir.0, 1 << 20).unwrap();
            for n in 1..=5 {
                log.append(&payload(n)).unwrap();
            }
        }
        // kill -9 in the middle of the sixth write: half a record at the end.
        let seg = segments(&dir.0).pop().unwrap();
        let whole = std::fs::read(&seg).unwrap();
        let record_len = whole.len() / 5;
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..record_len / 2]);
        std::fs::write(&seg, &torn).unwrap();

        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!(rec.truncated_bytes, (record_len / 2) as u64);
        assert_eq!((rec.pending, rec.corrupt_records), (5, 0));
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), whole.len() as u64, "cut back to the whole records");
        log.append(&payload(6)).unwrap();
        assert_eq!(drain(&mut log), [1, 2, 3, 4, 5, 6]);

        // A header alone, or garbage, at the end: the same.
        drop(log);
        let dir = TempDir::new();
        {
            let (mut log, _) = Log::open(&dir.0, 1 << 20).unwrap();
            log.append(&payload(1)).unwrap();
        }
        let seg = segments(&dir.0).pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes.extend_from_slice(&MAGIC.to_le_bytes());
        bytes.extend_from_slice(&[0xff; 7]);
        std::fs::write(&seg, &bytes).unwrap();
        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!((rec.truncated_bytes, rec.pending), (11, 1));
        assert_eq!(drain(&mut log), [1]);
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_skipped_and_the_rest_kept() {
        let dir = TempDir::new();
        {
            let (mut log, _) = Log::open(&dir.0, 1 << 20).unwrap();
            for n in 1..=5 {
                log.append(&payload(n)).unwrap();
            }
        }
        let seg = segments(&dir.0).pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        let record_len = bytes.len() / 5;
        // One bit of the third record's payload flipped (bit rot).
        bytes[2 * record_len + HEADER as usize + 5] ^= 0x01;
        std::fs::write(&seg, &bytes).unwrap();

        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!((rec.corrupt_records, rec.corrupt_bytes), (1, record_len as u64));
        assert_eq!((rec.pending, rec.truncated_bytes), (4, 0));
        assert_eq!(drain(&mut log), [1, 2, 4, 5]);

        // A length field destroyed (the record's end is unknown): found
        // again by the next record's magic and checksum.
        drop(log);
        let dir = TempDir::new();
        {
            let (mut log, _) = Log::open(&dir.0, 1 << 20).unwrap();
            for n in 1..=4 {
                log.append(&payload(n)).unwrap();
            }
        }
        let seg = segments(&dir.0).pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[record_len + 4..record_len + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&seg, &bytes).unwrap();
        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        assert_eq!((rec.corrupt_records, rec.pending), (1, 3));
        assert_eq!(drain(&mut log), [1, 3, 4]);
    }

    #[test]
    fn the_bound_is_in_bytes_and_the_oldest_records_go_first() {
        let dir = TempDir::new();
        let record = HEADER + payload(1).len() as u64;
        // Room for 32 records, in segments of two.
        let max = 32 * record;
        let (mut log, _) = Log::open(&dir.0, max).unwrap();
        let mut dropped = Vec::new();
        for n in 1..=100 {
            let (_, d) = log.append(&payload(n)).unwrap();
            dropped.extend(d);
            assert!(log.total_bytes() <= max, "{} bytes after record {n}", log.total_bytes());
        }
        let lost: u64 = dropped.iter().map(Dropped::count).sum();
        // Whole segments go, oldest first, in order.
        assert_eq!(dropped.first().map(|d| d.first), Some(1));
        assert!(dropped.windows(2).all(|w| w[1].first == w[0].last + 1), "{dropped:?}");
        let kept = drain(&mut log);
        assert_eq!(kept.len() as u64 + lost, 100);
        assert_eq!(kept, ((lost + 1)..=100).collect::<Vec<_>>());
        assert!(kept.len() >= 30, "kept {}", kept.len());
        // The files on disk stay within the bound too.
        let on_disk: u64 = segments(&dir.0).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(on_disk <= max);
        assert!(matches!(log.append(&vec![b'x'; max as usize]), Err(AppendError::TooLarge(_))));
    }

    #[test]
    fn a_record_dropped_while_it_was_being_sent_is_not_advanced_over() {
        let dir = TempDir::new();
        let record = HEADER + payload(1).len() as u64;
        let (mut log, _) = Log::open(&dir.0, 32 * record).unwrap();
        log.append(&payload(1)).unwrap();
        let head = log.peek().unwrap().unwrap();
        let mut lost = 0;
        for n in 2..=40 {
            lost += log.append(&payload(n)).unwrap().1.iter().map(Dropped::count).sum::<u64>();
        }
        assert!(lost > 0);
        log.advance(head.seq).unwrap();
        let kept = drain(&mut log);
        assert_eq!(kept.first(), Some(&(lost + 1)), "{kept:?}");
        assert_eq!(kept.len() as u64 + lost, 40);
    }

    #[test]
    fn a_folder_in_use_is_refused_and_the_head_survives_a_torn_slot() {
        let dir = TempDir::new();
        let (mut log, _) = Log::open(&dir.0, 1 << 20).unwrap();
        let e = Log::open(&dir.0, 1 << 20).err().unwrap();
        assert!(e.to_string().contains("another process"), "{e}");
        for n in 1..=4 {
            log.append(&payload(n)).unwrap();
        }
        for _ in 0..2 {
            let r = log.peek().unwrap().unwrap();
            log.advance(r.seq).unwrap();
        }
        drop(log);
        // The slot written last (slot 0: head 3) is torn: the other one
        // still says where.
        let head = dir.0.join(HEAD_FILE);
        let mut bytes = std::fs::read(&head).unwrap();
        bytes[..HEAD_SLOT as usize].fill(0xee);
        std::fs::write(&head, &bytes).unwrap();
        let (mut log, rec) = Log::open(&dir.0, 1 << 20).unwrap();
        // Slot 1 holds head 2 (after the first delivery): one duplicate, no loss.
        assert_eq!(rec.pending, 3);
        assert_eq!(drain(&mut log), [2, 3, 4]);
    }
}
