//! Encoded rows → Kinesis records → PutRecords batches, per sending lane. Pure: no I/O, no
//! clock; `Packer::push` returns the batches a row completed.
//!
//! Routing. Unkeyed: batches go round-robin over the lanes and records round-robin over the
//! shards by explicit hash key (a plain row by its row number, an aggregated record as a whole).
//! Keyed (`--partition-key`): one lane per shard; a row goes to the shard owning MD5(key) (the
//! Kinesis API reference, PutRecords: "Kinesis Data Streams uses the partition key as input to a
//! hash function that maps the partition key and associated data to a specific shard").
//!
//! Per-key order under partial failures. PutRecords can store record j of a batch and fail an
//! earlier record i (API reference: "A single record failure does not stop the processing of
//! subsequent records"). If i and j carry the same key, j overtakes i. So in keyed mode a key
//! appears in **at most one record per batch**: plain, a batch closes when a key repeats; with
//! aggregation, all of a key's rows in a batch travel in one aggregated record (in file order
//! inside it). A lane sends its next batch only once the current one is settled.

use std::collections::HashMap;

use super::aggregate::Aggregator;
use super::encode::MAX_RECORD_BYTES;
use super::shard::{shard_for_key, Shard};

/// Kinesis PutRecords limits: 500 records and 5 MiB (data plus partition keys) per call.
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// One CSV data row as read, kept for the undelivered file until its record is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based data row number.
    pub row: u64,
    pub raw: csv::ByteRecord,
}

/// One Kinesis record on its way: its bytes, routing and the rows it carries.
#[derive(Debug)]
pub struct Unit {
    pub data: Vec<u8>,
    pub key: String,
    pub hash: Option<String>,
    pub rows: Vec<Row>,
    pub attempts: u32,
    /// A request carrying it had an unknown outcome (timeout, connection lost after sending):
    /// it may already be in the stream.
    pub unknown: bool,
}

impl Unit {
    /// What Kinesis counts against the 1 MiB record and 5 MiB call limits.
    pub fn size(&self) -> usize {
        self.data.len() + self.key.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackConfig {
    pub aggregate: bool,
    pub keyed: bool,
    /// Lanes in unkeyed mode (keyed mode has one per shard).
    pub lanes: usize,
    /// An aggregated record takes new keys (keyed) or rows (unkeyed) until it reaches this size.
    pub aggregate_target: usize,
    /// Batch bytes a lane may send per call, per shard it serves.
    pub batch_bytes_per_shard: usize,
}

/// Aggregated records close at 64 KiB. Any aggregate over 1 MiB / 1,000 = 1,049 bytes already
/// makes a shard's byte limit bind instead of its record limit; beyond that the size only trades
/// the ≈ 20 bytes of framing per record (0.03% at 64 KiB) against how much one failed record
/// makes us resend.
pub const AGGREGATE_TARGET: usize = 64 * 1024;
/// Half a second of a shard's 1 MiB/s per call, so a call never asks for more than the shard can
/// take at once.
pub const BATCH_BYTES_PER_SHARD: usize = 512 * 1024;

enum Body {
    Plain(Vec<u8>),
    Agg(Aggregator),
}

struct Pending {
    body: Body,
    key: String,
    hash: Option<String>,
    rows: Vec<Row>,
}

impl Pending {
    fn size(&self) -> usize {
        self.key.len()
            + match &self.body {
                Body::Plain(d) => d.len(),
                Body::Agg(a) => a.size(),
            }
    }
    fn into_unit(self) -> Unit {
        let data = match self.body {
            Body::Plain(d) => d,
            Body::Agg(a) => a.finish(),
        };
        Unit { data, key: self.key, hash: self.hash, rows: self.rows, attempts: 0, unknown: false }
    }
}

#[derive(Default)]
struct Batch {
    units: Vec<Pending>,
    bytes: usize,
    /// Keyed mode: the record of the batch that holds each key.
    keys: HashMap<String, usize>,
}

pub struct Packer {
    cfg: PackConfig,
    shards: Vec<Shard>,
    batches: Vec<Batch>,
    rr_lane: usize,
    next_shard: usize,
    batch_cap: usize,
}

/// A batch ready to send on a lane.
pub type Ready = (usize, Vec<Unit>);

impl Packer {
    pub fn new(cfg: PackConfig, shards: Vec<Shard>) -> Packer {
        assert!(!shards.is_empty(), "a stream has at least one open shard");
        let lanes = if cfg.keyed { shards.len() } else { cfg.lanes.max(1) };
        let served = if cfg.keyed { 1 } else { shards.len() };
        let batch_cap = (cfg.batch_bytes_per_shard * served).min(MAX_BATCH_BYTES);
        Packer {
            cfg,
            shards,
            batches: (0..lanes).map(|_| Batch::default()).collect(),
            rr_lane: 0,
            next_shard: 0,
            batch_cap,
        }
    }

    pub fn lanes(&self) -> usize {
        self.batches.len()
    }

    fn take(&mut self, lane: usize, out: &mut Vec<Ready>) {
        let b = std::mem::take(&mut self.batches[lane]);
        if !b.units.is_empty() {
            out.push((lane, b.units.into_iter().map(Pending::into_unit).collect()));
        }
        if !self.cfg.keyed {
            self.rr_lane = (self.rr_lane + 1) % self.batches.len();
        }
    }

    /// Whether a new record of `size` bytes fits in the lane's batch.
    fn room(&self, lane: usize, size: usize) -> bool {
        let b = &self.batches[lane];
        b.units.len() < MAX_BATCH_RECORDS && b.bytes + size <= self.batch_cap
    }

    /// Adds one encoded row (`key`: the partition-key column's value in keyed mode).
    pub fn push(&mut self, row: Row, key: Option<String>, data: Vec<u8>) -> Vec<Ready> {
        let mut out = Vec::new();
        match (key, self.cfg.aggregate) {
            (Some(k), false) => {
                let k = normalize_key(&k);
                let lane = shard_for_key(&self.shards, &k);
                let size = data.len() + k.len();
                if self.batches[lane].keys.contains_key(&k) || !self.room(lane, size) {
                    self.take(lane, &mut out);
                }
                self.add_new(lane, Pending { body: Body::Plain(data), key: k, hash: None, rows: vec![row] });
            }
            (Some(k), true) => {
                let k = normalize_key(&k);
                let lane = shard_for_key(&self.shards, &k);
                self.push_keyed_aggregate(lane, k, row, data, &mut out);
            }
            (None, false) => {
                let s = &self.shards[(row.row as usize) % self.shards.len()];
                let (key, hash) = (row.row.to_string(), Some(s.start.to_string()));
                let size = data.len() + key.len();
                if !self.room(self.rr_lane, size) {
                    self.take(self.rr_lane, &mut out);
                }
                self.add_new(self.rr_lane, Pending { body: Body::Plain(data), key, hash, rows: vec![row] });
            }
            (None, true) => self.push_unkeyed_aggregate(row, data, &mut out),
        }
        out
    }

    fn add_new(&mut self, lane: usize, p: Pending) {
        let b = &mut self.batches[lane];
        b.bytes += p.size();
        if self.cfg.keyed {
            b.keys.insert(p.key.clone(), b.units.len());
        }
        b.units.push(p);
    }

    /// Adds to record `i` of the lane's batch, if the record stays within Kinesis's 1 MiB and the
    /// batch within its cap.
    fn try_add(&mut self, lane: usize, i: usize, key: &str, row: &Row, data: &[u8]) -> bool {
        let cap = self.batch_cap;
        let b = &mut self.batches[lane];
        let p = &mut b.units[i];
        let Body::Agg(a) = &mut p.body else { return false };
        let new = a.size_with(key, data.len()) + p.key.len();
        let old = a.size() + p.key.len();
        if new > MAX_RECORD_BYTES || b.bytes - old + new > cap {
            return false;
        }
        a.add(key, data);
        p.rows.push(row.clone());
        b.bytes = b.bytes - old + new;
        true
    }

    /// A new aggregated record holding one row, or a plain record when even one row would push an
    /// aggregate over 1 MiB (deaggregators pass plain records through).
    fn new_aggregate(key: String, outer_key: String, hash: Option<String>, row: Row, data: Vec<u8>) -> Pending {
        let mut a = Aggregator::new();
        if a.size_with(&key, data.len()) + outer_key.len() > MAX_RECORD_BYTES {
            return Pending { body: Body::Plain(data), key: outer_key, hash, rows: vec![row] };
        }
        a.add(&key, &data);
        Pending { body: Body::Agg(a), key: outer_key, hash, rows: vec![row] }
    }

    fn push_keyed_aggregate(&mut self, lane: usize, k: String, row: Row, data: Vec<u8>, out: &mut Vec<Ready>) {
        if let Some(&i) = self.batches[lane].keys.get(&k) {
            if self.try_add(lane, i, &k, &row, &data) {
                return;
            }
            // The key's record is full: the key's next rows go in the next batch.
            self.take(lane, out);
        } else if let Some(last) = self.batches[lane].units.len().checked_sub(1) {
            let open = self.batches[lane].units[last].size() < self.cfg.aggregate_target;
            if open && self.try_add(lane, last, &k, &row, &data) {
                self.batches[lane].keys.insert(k, last);
                return;
            }
        }
        // The outer partition key is the record's first key, which maps to this lane's shard.
        let p = Packer::new_aggregate(k.clone(), k, None, row, data);
        if !self.room(lane, p.size()) {
            self.take(lane, out);
        }
        self.add_new(lane, p);
    }

    fn push_unkeyed_aggregate(&mut self, row: Row, data: Vec<u8>, out: &mut Vec<Ready>) {
        let lane = self.rr_lane;
        if let Some(last) = self.batches[lane].units.len().checked_sub(1) {
            let key = self.batches[lane].units[last].key.clone();
            let open = self.batches[lane].units[last].size() < self.cfg.aggregate_target;
            if open && self.try_add(lane, last, &key, &row, &data) {
                return;
            }
        }
        // A new aggregate for the next shard in turn; its rows share one partition key (the
        // first row's number), so the key table costs a few bytes per record, not per row.
        let shard = &self.shards[self.next_shard % self.shards.len()];
        self.next_shard += 1;
        let key = row.row.to_string();
        let p = Packer::new_aggregate(key.clone(), key, Some(shard.start.to_string()), row, data);
        if !self.room(lane, p.size()) {
            self.take(lane, out);
        }
        let lane = self.rr_lane;
        self.add_new(lane, p);
    }

    /// The batches still open, one per lane that has any.
    pub fn finish(&mut self) -> Vec<Ready> {
        let mut out = Vec::new();
        for lane in 0..self.batches.len() {
            let b = std::mem::take(&mut self.batches[lane]);
            if !b.units.is_empty() {
                out.push((lane, b.units.into_iter().map(Pending::into_unit).collect()));
            }
        }
        out
    }
}

/// Kinesis needs a partition key of 1-256 Unicode characters (API reference, PutRecordsRequestEntry).
pub fn normalize_key(k: &str) -> String {
    if k.is_empty() {
        "_".to_string()
    } else {
        k.chars().take(256).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::aggregate::decode;

    fn shards(n: u128) -> Vec<Shard> {
        let step = u128::MAX / n;
        (0..n)
            .map(|i| Shard {
                id: format!("s{i}"),
                start: i * step,
                end: if i == n - 1 { u128::MAX } else { (i + 1) * step - 1 },
            })
            .collect()
    }

    fn cfg(aggregate: bool, keyed: bool) -> PackConfig {
        PackConfig {
            aggregate,
            keyed,
            lanes: 2,
            aggregate_target: 1000,
            // Small batches, so the tests see many of them.
            batch_bytes_per_shard: 8 * 1024,
        }
    }

    fn row(n: u64) -> Row {
        Row { row: n, raw: csv::ByteRecord::from(vec![n.to_string()]) }
    }

    /// Pushes `n` rows with keys from `key`, returns every batch in the order it was completed.
    fn run(p: &mut Packer, n: u64, key: impl Fn(u64) -> Option<String>) -> Vec<Ready> {
        let mut out = Vec::new();
        for i in 1..=n {
            out.extend(p.push(row(i), key(i), format!("data-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()));
        }
        out.extend(p.finish());
        out
    }

    /// (row number, key) of every row a record carries, decoding aggregates.
    fn rows_of(u: &Unit) -> Vec<(u64, String)> {
        match decode(&u.data) {
            Ok(recs) => {
                assert_eq!(recs.len(), u.rows.len());
                u.rows
                    .iter()
                    .zip(recs)
                    .map(|(r, (k, d))| {
                        assert!(String::from_utf8(d).unwrap().starts_with(&format!("data-{}-", r.row)));
                        (r.row, k)
                    })
                    .collect()
            }
            Err(_) => vec![(u.rows[0].row, u.key.clone())],
        }
    }

    #[test]
    fn every_row_is_packed_once_in_every_mode() {
        for (agg, keyed) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut p = Packer::new(cfg(agg, keyed), shards(3));
            let batches = run(&mut p, 5000, |i| keyed.then(|| format!("k{}", i % 13)));
            let mut seen: Vec<u64> =
                batches.iter().flat_map(|(_, b)| b.iter().flat_map(|u| u.rows.iter().map(|r| r.row))).collect();
            seen.sort();
            assert_eq!(seen, (1..=5000).collect::<Vec<_>>(), "agg {agg}, keyed {keyed}");
            for (_, b) in &batches {
                assert!(b.len() <= MAX_BATCH_RECORDS);
                assert!(b.iter().map(Unit::size).sum::<usize>() <= MAX_BATCH_BYTES);
                assert!(b.iter().all(|u| u.size() <= MAX_RECORD_BYTES));
                if agg {
                    for u in b {
                        assert_eq!(rows_of(u).len(), u.rows.len());
                    }
                }
            }
        }
    }

    #[test]
    fn keyed_batches_hold_each_key_in_one_record_on_its_shard() {
        let sh = shards(3);
        for agg in [false, true] {
            let mut p = Packer::new(cfg(agg, true), sh.clone());
            let batches = run(&mut p, 3000, |i| Some(format!("k{}", i % 17)));
            let mut last_row: HashMap<String, u64> = HashMap::new();
            for (lane, b) in &batches {
                let mut in_batch: HashMap<String, usize> = HashMap::new();
                for (ui, u) in b.iter().enumerate() {
                    for (r, k) in rows_of(u) {
                        assert_eq!(shard_for_key(&sh, &k), *lane, "key {k} on its shard's lane");
                        assert_eq!(*in_batch.entry(k.clone()).or_insert(ui), ui, "key {k} in two records of a batch");
                        let prev = last_row.insert(k.clone(), r).unwrap_or(0);
                        // Batches of one lane are sent in order, so file order per key is kept.
                        assert!(prev < r, "{k}: row {prev} then row {r}");
                    }
                }
            }
            // Aggregated: many rows per record.
            let records: usize = batches.iter().map(|(_, b)| b.len()).sum();
            if agg {
                assert!(records < 100, "{records} records for 3,000 rows");
            } else {
                assert_eq!(records, 3000);
            }
        }
    }

    #[test]
    fn unkeyed_aggregates_spread_over_shards_and_close_near_the_target() {
        let sh = shards(4);
        let mut p = Packer::new(cfg(true, false), sh.clone());
        let batches = run(&mut p, 4000, |_| None);
        let units: Vec<&Unit> = batches.iter().flat_map(|(_, b)| b.iter()).collect();
        let mut per_shard = [0usize; 4];
        for u in &units {
            let h: u128 = u.hash.as_deref().unwrap().parse().unwrap();
            let s = sh.iter().position(|s| s.start == h).unwrap();
            per_shard[s] += 1;
        }
        // An aggregate closes at the target, or when its batch is full (the last of a batch).
        for (_, b) in &batches {
            for u in &b[..b.len() - 1] {
                assert!(u.size() >= 1000 && u.size() < 1200, "closed at {}", u.size());
            }
        }
        assert!(per_shard.iter().all(|n| n.abs_diff(units.len() / 4) <= 1), "{per_shard:?}");
        // Batches alternate lanes.
        assert_eq!(batches.iter().map(|(l, _)| *l).take(2).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn a_row_too_big_to_aggregate_goes_plain() {
        let mut p = Packer::new(cfg(true, false), shards(1));
        let big = vec![b'x'; MAX_RECORD_BYTES - 8];
        let mut out = p.push(row(1), None, big.clone());
        out.extend(p.finish());
        assert_eq!(out[0].1[0].data, big);
    }
}
