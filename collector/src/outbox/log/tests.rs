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
