//! Redis Cluster's hash slots: which slot a key lives in, as the server
//! computes it (the connection groups pipelines by it, the test harness
//! finds the master of a key with it).

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// Hash slot of `key`: CRC16 (XMODEM) of the key modulo 16384, where a key
/// containing `{...}` with a non-empty content between its first `{` and
/// the first `}` after it is hashed by that content only (so `{user1}.a`
/// and `{user1}.b` share a slot).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}')
            && close > 0
        {
            return &rest[..close];
        }
    }
    key
}

/// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(key: &str) -> u16 {
        key_slot(key.as_bytes())
    }

    #[test]
    fn crc16_check_value() {
        // The standard check input of CRC catalogues, and the one in the
        // Redis Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn key_slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("hello"), 866);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot(""), 0);
        assert_eq!(slot("123456789"), 12739);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        // Only the first `{` and the first `}` after it count.
        assert_eq!(slot("foo{bar}{zap}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        // Empty or unclosed tags: the whole key is hashed.
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot("{}foo"), crc16(b"{}foo") % 16384);
        assert_ne!(slot("{}foo"), slot("foo"));
        assert_eq!(slot("foo{bar"), crc16(b"foo{bar") % 16384);
        assert_eq!(slot("foo}bar{"), crc16(b"foo}bar{") % 16384);
    }
}
