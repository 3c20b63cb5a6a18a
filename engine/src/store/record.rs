//! One record of a shard's hash chain and its on-disk encoding.
//!
//! hash = SHA-256(prev_hash || shard (u32 BE) || seq (u64 BE) || fingerprint (u64 BE) || payload)
//! The genesis `prev_hash` is 32 zero bytes. `source` (where the event came from)
//! is kept beside the record but is not hashed: it is provenance, not content.

use sha2::{Digest, Sha256};

use super::StoreError;

pub type Hash = [u8; 32];
pub const GENESIS: Hash = [0; 32];
/// Leading byte of every stored record value, to allow a later format.
const FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub shard: u32,
    pub seq: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    /// Source and position the event came from, e.g. `http:3f2a#4` or `file:in.jsonl:17`.
    pub source: String,
    /// CRC-64-AVRO fingerprint of the writer schema of `payload`.
    pub fingerprint: u64,
    /// Avro binary datum of the event.
    pub payload: Vec<u8>,
}

/// The tip of one shard's chain: the last seq and its hash (seq 0 = empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Hash,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead { seq: 0, hash: GENESIS }
    }
}

pub fn chain_hash(prev: &Hash, shard: u32, seq: u64, fingerprint: u64, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(shard.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(fingerprint.to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

impl Record {
    /// Builds the next record after `head`.
    pub fn next(head: ChainHead, shard: u32, source: String, fingerprint: u64, payload: Vec<u8>) -> Record {
        let seq = head.seq + 1;
        let hash = chain_hash(&head.hash, shard, seq, fingerprint, &payload);
        Record { shard, seq, prev_hash: head.hash, hash, source, fingerprint, payload }
    }

    pub fn head(&self) -> ChainHead {
        ChainHead { seq: self.seq, hash: self.hash }
    }

    /// Whether `hash` matches the content (the chain link is checked by the caller).
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(&self.prev_hash, self.shard, self.seq, self.fingerprint, &self.payload) == self.hash
    }

    pub fn key(shard: u32, seq: u64) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&shard.to_be_bytes());
        k[4..].copy_from_slice(&seq.to_be_bytes());
        k
    }

    pub fn parse_key(key: &[u8]) -> Result<(u32, u64), StoreError> {
        if key.len() != 12 {
            return Err(StoreError::Corrupt(format!("record key of {} bytes, expected 12", key.len())));
        }
        let shard = u32::from_be_bytes(key[..4].try_into().expect("4 bytes"));
        let seq = u64::from_be_bytes(key[4..].try_into().expect("8 bytes"));
        Ok((shard, seq))
    }

    /// format(1) prev_hash(32) hash(32) fingerprint(8) source_len(2) source payload
    pub fn encode_value(&self) -> Vec<u8> {
        let src = self.source.as_bytes();
        // Source labels are the engine's own (`file:<path>`, `http:<n>`, Kafka
        // partitions), far below 64 KiB; a longer one is cut at a character boundary.
        let mut src_len = src.len().min(u16::MAX as usize);
        while !self.source.is_char_boundary(src_len) {
            src_len -= 1;
        }
        let mut v = Vec::with_capacity(75 + src_len + self.payload.len());
        v.push(FORMAT_V1);
        v.extend_from_slice(&self.prev_hash);
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.fingerprint.to_be_bytes());
        v.extend_from_slice(&(src_len as u16).to_be_bytes());
        v.extend_from_slice(&src[..src_len]);
        v.extend_from_slice(&self.payload);
        v
    }

    pub fn decode_value(shard: u32, seq: u64, v: &[u8]) -> Result<Record, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("record ({shard}, {seq}): {what}"));
        if v.len() < 75 || v[0] != FORMAT_V1 {
            return Err(bad("unknown format or truncated header"));
        }
        let src_len = u16::from_be_bytes([v[73], v[74]]) as usize;
        if v.len() < 75 + src_len {
            return Err(bad("truncated source"));
        }
        Ok(Record {
            shard,
            seq,
            prev_hash: v[1..33].try_into().expect("32 bytes"),
            hash: v[33..65].try_into().expect("32 bytes"),
            fingerprint: u64::from_be_bytes(v[65..73].try_into().expect("8 bytes")),
            source: String::from_utf8_lossy(&v[75..75 + src_len]).into_owned(),
            payload: v[75 + src_len..].to_vec(),
        })
    }
}

pub fn hex(hash: &Hash) -> String {
    hex::encode(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip_and_hash_checks_content() {
        let r = Record::next(ChainHead::default(), 2, "file:x:1".into(), 77, b"payload".to_vec());
        assert_eq!(r.seq, 1);
        assert_eq!(r.prev_hash, GENESIS);
        let back = Record::decode_value(2, 1, &r.encode_value()).unwrap();
        assert_eq!(back, r);
        assert!(back.hash_is_valid());
        let mut changed = back.clone();
        changed.payload[0] ^= 1;
        assert!(!changed.hash_is_valid());
        let mut moved = back;
        moved.seq = 2;
        assert!(!moved.hash_is_valid(), "the seq is part of the hash, so swaps are caught");
    }

    #[test]
    fn keys_sort_by_shard_then_seq() {
        assert!(Record::key(0, 256) < Record::key(1, 1));
        assert!(Record::key(1, 1) < Record::key(1, 2));
        assert_eq!(Record::parse_key(&Record::key(7, 9)).unwrap(), (7, 9));
    }
}
