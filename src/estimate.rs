//! The article's shard calculator, taught KPL aggregation: how many Kinesis shards a load needs,
//! with the reasoning. Per shard, Kinesis accepts 1 MiB/s or 1,000 records/s in and serves
//! 2 MiB/s out, shared by the consumers without enhanced fan-out (Kinesis Data Streams quotas).
//! An aggregated record counts as one record, so with aggregation the byte limit binds and small
//! rows need far fewer shards. Pure: the sizes come from the caller (given, or measured by
//! `producer::measure` on a sample).

use std::fmt;

use crate::producer::aggregate::{framed_len, MAGIC};
use crate::producer::pack::AGGREGATE_TARGET;

pub const WRITE_KIB_PER_SHARD: f64 = 1024.0;
pub const WRITE_RECORDS_PER_SHARD: f64 = 1000.0;
pub const READ_KIB_PER_SHARD: f64 = 2048.0;

/// One way of writing the load: record size and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub record_bytes: f64,
    pub records_per_sec: f64,
    pub consumers: u32,
    pub write_kib_s: f64,
    pub read_kib_s: f64,
    pub by_write_bytes: u64,
    pub by_write_records: u64,
    pub by_read_bytes: u64,
    pub shards: u64,
}

/// Shards for records of `record_bytes` at `records_per_sec`, read by `consumers`.
pub fn estimate_bytes(record_bytes: f64, records_per_sec: f64, consumers: u32) -> Estimate {
    let write_kib_s = record_bytes * records_per_sec / 1024.0;
    let read_kib_s = write_kib_s * f64::from(consumers);
    // A hair under whole numbers stays whole (float noise must not add a shard).
    let up = |x: f64| (x - 1e-9).ceil().max(0.0) as u64;
    let by_write_bytes = up(write_kib_s / WRITE_KIB_PER_SHARD);
    let by_write_records = up(records_per_sec / WRITE_RECORDS_PER_SHARD);
    let by_read_bytes = up(read_kib_s / READ_KIB_PER_SHARD);
    let shards = by_write_bytes.max(by_write_records).max(by_read_bytes).max(1);
    Estimate {
        record_bytes,
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

/// The article's calculator: whole KB records.
pub fn estimate(record_kb: u32, records_per_sec: u64, consumers: u32) -> Estimate {
    estimate_bytes(f64::from(record_kb) * 1024.0, records_per_sec as f64, consumers)
}

/// What a row costs on the stream, plain and aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSizes {
    /// Bytes Kinesis counts for a row sent alone (data plus partition key).
    pub plain_bytes: f64,
    /// Bytes per row inside aggregated records (framing and key table included).
    pub aggregated_bytes: f64,
    pub rows_per_record: f64,
    /// Where the sizes come from (a measured sample, or the given size).
    pub source: String,
}

impl RowSizes {
    /// Sizes modeled from a row size alone: the KPL framing per row and aggregates closed at the
    /// producer's target size.
    pub fn modeled(row_bytes: f64) -> RowSizes {
        let framed = framed_len(row_bytes.round() as usize) as f64;
        // Magic + MD5 + one key-table entry of a few bytes, per aggregate.
        let fixed = (MAGIC.len() + 16 + 8) as f64;
        let rows_per_record = ((AGGREGATE_TARGET as f64 - fixed) / framed).floor().max(1.0);
        // A row too big to share an aggregate gains nothing from one: count it as sent alone.
        let aggregated_bytes = if rows_per_record > 1.0 { framed + fixed / rows_per_record } else { row_bytes };
        RowSizes {
            plain_bytes: row_bytes,
            aggregated_bytes,
            rows_per_record,
            source: format!("{row_bytes} B per row as given; aggregation modeled"),
        }
    }
}

/// The load written both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    pub rows_per_sec: f64,
    pub sizes: RowSizes,
    pub plain: Estimate,
    pub aggregated: Estimate,
}

pub fn sizing(sizes: RowSizes, rows_per_sec: f64, consumers: u32) -> Sizing {
    let plain = estimate_bytes(sizes.plain_bytes, rows_per_sec, consumers);
    let aggregated =
        estimate_bytes(sizes.aggregated_bytes * sizes.rows_per_record, rows_per_sec / sizes.rows_per_record, consumers);
    Sizing { rows_per_sec, sizes, plain, aggregated }
}

fn size_text(bytes: f64) -> String {
    if bytes >= 1024.0 && (bytes / 1024.0).fract() == 0.0 {
        format!("{} KB", bytes / 1024.0)
    } else {
        format!("{bytes:.1} B")
    }
}

fn rate_text(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Incoming: {} x {} records/s = {:.0} KB/s ({:.2} MB/s)",
            size_text(self.record_bytes),
            rate_text(self.records_per_sec),
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
            rate_text(self.records_per_sec),
            self.by_write_records
        )?;
        write!(
            f,
            "  read bandwidth:  {:.0} KB/s / 2048 KB/s per shard  -> {} shard(s)",
            self.read_kib_s, self.by_read_bytes
        )
    }
}

impl fmt::Display for Sizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sizes;
        writeln!(f, "Rows: {} per second; {}", rate_text(self.rows_per_sec), s.source)?;
        writeln!(
            f,
            "  one row per record: {:.1} B per row; KPL aggregated: {:.1} B per row, {:.0} rows per record",
            s.plain_bytes, s.aggregated_bytes, s.rows_per_record
        )?;
        writeln!(f, "Without aggregation (produce --no-aggregate):")?;
        writeln!(f, "{}", self.plain)?;
        writeln!(f, "  -> {} shard(s)", self.plain.shards)?;
        writeln!(f, "With KPL aggregation (produce's default):")?;
        writeln!(f, "{}", self.aggregated)?;
        writeln!(f, "  -> {} shard(s)", self.aggregated.shards)?;
        let saved = self.plain.shards.saturating_sub(self.aggregated.shards);
        writeln!(
            f,
            "Aggregation saves {saved} shard(s) ({} instead of {}).",
            self.aggregated.shards, self.plain.shards
        )?;
        write!(f, "Estimated shards: {} (with aggregation; over-provision slightly for bursts)", self.aggregated.shards)
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
        assert!(s.contains("2 KB x 1000 records/s = 2000 KB/s"), "{s}");
        assert!(s.contains("write records:   1000 rec/s"), "{s}");
    }

    #[test]
    fn aggregation_makes_the_byte_limit_bind_for_small_rows() {
        // The article's ~110-byte rows at 9,000 rows/s: 9 shards by records alone, ~1 MB/s of
        // bytes, so aggregated they fit in 1 (or 2 with the framing).
        let s = sizing(RowSizes::modeled(110.0), 9000.0, 1);
        assert_eq!(s.plain.shards, 9);
        assert_eq!(s.plain.by_write_records, 9);
        assert_eq!(s.aggregated.by_write_records, 1);
        assert!(s.aggregated.shards <= 2, "{s}");
        assert!(s.sizes.aggregated_bytes > 110.0 && s.sizes.aggregated_bytes < 120.0, "{s}");
        let text = s.to_string();
        assert!(
            text.contains(&format!("Aggregation saves {} shard(s)", s.plain.shards - s.aggregated.shards)),
            "{text}"
        );
        // Large records: nothing to save.
        let s = sizing(RowSizes::modeled(1024.0 * 1024.0), 3.0, 1);
        assert_eq!(s.plain.shards, s.aggregated.shards);
        assert_eq!(s.sizes.rows_per_record, 1.0);
    }
}
