//! KPL aggregated records: many rows packed into one Kinesis record, in the Kinesis Producer
//! Library's format, so a shard's 1,000 records/s limit stops binding before its 1 MiB/s one.
//!
//! Format (KPL docs, "KPL Key Concepts → Aggregation", and the `aggregation-format.md` of
//! awslabs/amazon-kinesis-producer): the 4 magic bytes `F3 89 9A C2`, then the protobuf
//! encoding of
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! then the 16-byte MD5 of the protobuf bytes. Firehose de-aggregates such records before it
//! invokes the transform Lambda ("Use the KPL with Amazon Data Firehose" in the Firehose
//! developer guide), so each row still reaches the transform as its own record. The encoder is
//! ~60 lines of protobuf wire format (varints and length-delimited fields only) instead of a
//! protobuf dependency; `decode` is its exact inverse and is checked against the official
//! `aws-kinesis-agg` deaggregator in `tests/producer.rs`.

use std::collections::HashMap;

use md5::{Digest, Md5};

/// The KPL's magic prefix of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of one length-delimited field (tag byte, length varint, payload).
fn field_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// Bytes of one encoded `Record` message (without its own tag and length).
fn record_len(key_index: u64, data: usize) -> usize {
    1 + varint_len(key_index) + field_len(data)
}

/// The bytes one user record of `data` bytes adds to an aggregate, its key already in the table
/// (tag and length of the `records` field, the key index, tag and length of `data`).
pub fn framed_len(data: usize) -> usize {
    field_len(record_len(0, data))
}

/// Builds one aggregated record. Partition keys are stored once in the table and referenced by
/// index, so rows sharing a key cost only their data plus 3-6 bytes of framing.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    keys: Vec<String>,
    key_index: HashMap<String, u64>,
    /// The encoded `records` fields (tag 3), in order.
    records: Vec<u8>,
    keys_len: usize,
    count: usize,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// User records in it.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size of the finished record: magic + protobuf + MD5.
    pub fn size(&self) -> usize {
        MAGIC.len() + self.keys_len + self.records.len() + DIGEST_LEN
    }

    /// The size the finished record would have with one more user record.
    pub fn size_with(&self, key: &str, data: usize) -> usize {
        let (index, new_key) = match self.key_index.get(key) {
            Some(i) => (*i, 0),
            None => (self.keys.len() as u64, field_len(key.len())),
        };
        self.size() + new_key + field_len(record_len(index, data))
    }

    /// The partition key of the first user record (the KPL uses it for the Kinesis record).
    pub fn first_key(&self) -> Option<&str> {
        self.keys.first().map(String::as_str)
    }

    pub fn add(&mut self, key: &str, data: &[u8]) {
        let index = match self.key_index.get(key) {
            Some(i) => *i,
            None => {
                let i = self.keys.len() as u64;
                self.keys.push(key.to_string());
                self.key_index.insert(key.to_string(), i);
                self.keys_len += field_len(key.len());
                i
            }
        };
        self.records.push(0x1A); // field 3, length-delimited
        put_varint(&mut self.records, record_len(index, data.len()) as u64);
        self.records.push(0x08); // Record.partition_key_index, varint
        put_varint(&mut self.records, index);
        self.records.push(0x1A); // Record.data, length-delimited
        put_varint(&mut self.records, data.len() as u64);
        self.records.extend_from_slice(data);
        self.count += 1;
    }

    /// The aggregated record's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&MAGIC);
        for k in &self.keys {
            out.push(0x0A); // partition_key_table, length-delimited
            put_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k.as_bytes());
        }
        out.extend_from_slice(&self.records);
        let digest = Md5::digest(&out[MAGIC.len()..]);
        out.extend_from_slice(&digest);
        debug_assert_eq!(out.len(), self.size());
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a KPL aggregated record (no magic prefix)")]
    NoMagic,
    #[error("the MD5 of the aggregated record does not match its contents")]
    Digest,
    #[error("malformed protobuf at byte {0}")]
    Malformed(usize),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::Malformed(self.pos))?;
            self.pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::Malformed(self.pos))
    }
    fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let len = self.varint()? as usize;
        let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or(DecodeError::Malformed(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, wire_type: u64) -> Result<(), DecodeError> {
        match wire_type {
            0 => self.varint().map(drop),
            2 => self.bytes().map(drop),
            _ => Err(DecodeError::Malformed(self.pos)),
        }
    }
}

/// The user records (partition key, data) of an aggregated record, in order.
pub fn decode(record: &[u8]) -> Result<Vec<(String, Vec<u8>)>, DecodeError> {
    if record.len() < MAGIC.len() + DIGEST_LEN || record[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::NoMagic);
    }
    let proto = &record[MAGIC.len()..record.len() - DIGEST_LEN];
    if Md5::digest(proto).as_slice() != &record[record.len() - DIGEST_LEN..] {
        return Err(DecodeError::Digest);
    }
    let mut keys = Vec::new();
    let mut records = Vec::new();
    let mut c = Cursor { buf: proto, pos: 0 };
    while c.pos < proto.len() {
        let tag = c.varint()?;
        match tag {
            0x0A => keys.push(String::from_utf8_lossy(c.bytes()?).into_owned()),
            0x1A => {
                let at = c.pos;
                let body = c.bytes()?;
                let mut r = Cursor { buf: body, pos: 0 };
                let (mut index, mut data) = (None, None);
                while r.pos < body.len() {
                    match r.varint()? {
                        0x08 => index = Some(r.varint()?),
                        0x1A => data = Some(r.bytes()?.to_vec()),
                        t => r.skip(t & 7)?,
                    }
                }
                let (Some(i), Some(d)) = (index, data) else { return Err(DecodeError::Malformed(at)) };
                records.push((i, d));
            }
            t => c.skip(t & 7)?,
        }
    }
    records.into_iter().map(|(i, d)| Ok((keys.get(i as usize).ok_or(DecodeError::Malformed(0))?.clone(), d))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_kpl_format_byte_for_byte() {
        let mut a = Aggregator::new();
        a.add("k", b"ab");
        a.add("k", b"c");
        let got = a.finish();
        // magic, key table ["k"], two records {pk index 0, data}, MD5 of the protobuf.
        let proto: Vec<u8> = vec![
            0x0A, 1, b'k', //
            0x1A, 6, 0x08, 0, 0x1A, 2, b'a', b'b', //
            0x1A, 5, 0x08, 0, 0x1A, 1, b'c',
        ];
        let mut want = MAGIC.to_vec();
        want.extend_from_slice(&proto);
        want.extend_from_slice(&Md5::digest(&proto));
        assert_eq!(got, want);
        assert_eq!(a.size(), want.len());
    }

    #[test]
    fn size_with_predicts_the_size_exactly() {
        let mut a = Aggregator::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..2000 {
            let key = format!("key{}", rng.u32(0..50));
            // Data sizes crossing the 1- and 2-byte varint boundaries.
            let data = vec![b'x'; rng.usize(0..300)];
            let predicted = a.size_with(&key, data.len());
            a.add(&key, &data);
            assert_eq!(a.size(), predicted, "record {i}");
        }
        assert_eq!(a.finish().len(), a.size());
    }

    #[test]
    fn decode_inverts_encode_and_checks_the_digest() {
        let mut a = Aggregator::new();
        let rows: Vec<(String, Vec<u8>)> =
            (0..300).map(|i| (format!("k{}", i % 7), format!("row {i}|{}", "y".repeat(i)).into_bytes())).collect();
        for (k, d) in &rows {
            a.add(k, d);
        }
        let bytes = a.finish();
        assert_eq!(decode(&bytes).unwrap(), rows);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert_eq!(decode(&bad), Err(DecodeError::Digest));
        assert_eq!(decode(b"plain row"), Err(DecodeError::NoMagic));
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(Cursor { buf: &out, pos: 0 }.varint().unwrap(), v);
        }
    }
}
