//! The article's shard calculator: how many Kinesis shards a given load needs, with the
//! reasoning. Per shard, Kinesis accepts 1 MiB/s or 1,000 records/s in and serves 2 MiB/s out,
//! shared by the consumers (without enhanced fan-out).

use std::fmt;

pub const WRITE_KIB_PER_SHARD: f64 = 1024.0;
pub const WRITE_RECORDS_PER_SHARD: f64 = 1000.0;
pub const READ_KIB_PER_SHARD: f64 = 2048.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub record_kb: u32,
    pub records_per_sec: u64,
    pub consumers: u32,
    pub write_kib_s: f64,
    pub read_kib_s: f64,
    pub by_write_bytes: u64,
    pub by_write_records: u64,
    pub by_read_bytes: u64,
    pub shards: u64,
}

pub fn estimate(record_kb: u32, records_per_sec: u64, consumers: u32) -> Estimate {
    let write_kib_s = f64::from(record_kb) * records_per_sec as f64;
    let read_kib_s = write_kib_s * f64::from(consumers);
    let by_write_bytes = (write_kib_s / WRITE_KIB_PER_SHARD).ceil() as u64;
    let by_write_records = (records_per_sec as f64 / WRITE_RECORDS_PER_SHARD).ceil() as u64;
    let by_read_bytes = (read_kib_s / READ_KIB_PER_SHARD).ceil() as u64;
    let shards = by_write_bytes.max(by_write_records).max(by_read_bytes).max(1);
    Estimate {
        record_kb,
        records_per_sec,
        consumers,
        write_kib_s,
        read_kib_s,
        by_write_bytes,
        by_write_records,
        by_read_bytes,
        shards,
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Incoming: {} KB x {} records/s = {:.0} KB/s ({:.2} MB/s)",
            self.record_kb,
            self.records_per_sec,
            self.write_kib_s,
            self.write_kib_s / 1024.0
        )?;
        writeln!(
            f,
            "Outgoing: {:.0} KB/s x {} consumer(s) = {:.0} KB/s ({:.2} MB/s)",
            self.write_kib_s,
            self.consumers,
            self.read_kib_s,
            self.read_kib_s / 1024.0
        )?;
        writeln!(
            f,
            "  write bandwidth: {:.0} KB/s / 1024 KB/s per shard  -> {} shard(s)",
            self.write_kib_s, self.by_write_bytes
        )?;
        writeln!(
            f,
            "  write records:   {} rec/s / 1000 rec/s per shard -> {} shard(s)",
            self.records_per_sec, self.by_write_records
        )?;
        writeln!(
            f,
            "  read bandwidth:  {:.0} KB/s / 2048 KB/s per shard  -> {} shard(s)",
            self.read_kib_s, self.by_read_bytes
        )?;
        write!(f, "Estimated shards: {} (the largest of the three; over-provision slightly for bursts)", self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (record KB, rec/s, consumers) -> shards; the first row is the article's calculator default.
        for (kb, rps, c, want) in [
            (2, 1000, 1, 2),
            (1, 1, 1, 1),
            (1, 0, 1, 1),
            (1, 1000, 1, 1),
            (1, 1001, 1, 2),
            (1, 5000, 1, 5),
            (10, 500, 1, 5),
            (1, 1000, 5, 3),
            (1024, 1, 1, 1),
        ] {
            assert_eq!(estimate(kb, rps, c).shards, want, "{kb} KB, {rps}/s, {c} consumers");
        }
    }

    #[test]
    fn shows_reasoning() {
        let s = estimate(2, 1000, 1).to_string();
        assert!(s.contains("2000 KB/s"), "{s}");
        assert!(s.contains("Estimated shards: 2"), "{s}");
    }
}
