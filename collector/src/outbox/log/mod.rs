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
//!
//! - `scan`: reading records and the head back, and the recovery scan.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

mod scan;

use scan::{Found, checksum, read_head, read_record, resync, scan};

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

#[cfg(test)]
mod tests;
