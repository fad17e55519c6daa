//! Measures what a CSV sample costs on the stream, encoding and packing it exactly as
//! `produce` does (same encoder, same packer, one shard): bytes per row sent alone and inside
//! KPL aggregated records, and rows per aggregated record. `estimate --csv` sizes a stream from it.

use std::path::Path;

use super::encode::RowEncoder;
use super::pack::{PackConfig, Packer, Row, Unit, AGGREGATE_TARGET, BATCH_BYTES_PER_SHARD};
use super::shard::Shard;
use super::ProduceError;

#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub rows: u64,
    pub rejected: u64,
    pub plain_bytes: u64,
    pub aggregated_bytes: u64,
    pub aggregated_records: u64,
}

pub fn measure(
    schema: &crate::schema::Schema,
    csv_path: &Path,
    partition_key: Option<&str>,
) -> Result<Measured, ProduceError> {
    let csv_err = |source| ProduceError::Csv { path: csv_path.display().to_string(), source };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(csv_path).map_err(csv_err)?;
    let headers = reader.byte_headers().map_err(csv_err)?.clone();
    let encoder = RowEncoder::new(schema, &headers, partition_key)?;
    let shard = vec![Shard { id: "sample".into(), start: 0, end: u128::MAX }];
    let cfg = |aggregate| PackConfig {
        aggregate,
        keyed: partition_key.is_some(),
        lanes: 1,
        aggregate_target: AGGREGATE_TARGET,
        batch_bytes_per_shard: BATCH_BYTES_PER_SHARD,
    };
    let (mut plain, mut agg) = (Packer::new(cfg(false), shard.clone()), Packer::new(cfg(true), shard));
    let mut m = Measured { rows: 0, rejected: 0, plain_bytes: 0, aggregated_bytes: 0, aggregated_records: 0 };
    let count = |batches: Vec<(usize, Vec<Unit>)>, bytes: &mut u64, records: &mut u64| {
        for u in batches.iter().flat_map(|(_, b)| b) {
            *bytes += u.size() as u64;
            *records += 1;
        }
    };
    let (mut plain_records, mut raw, mut row) = (0u64, csv::ByteRecord::new(), 0u64);
    while reader.read_byte_record(&mut raw).map_err(csv_err)? {
        row += 1;
        let mut data = Vec::new();
        match encoder.encode(row, &raw, &mut data) {
            Ok(key) => {
                m.rows += 1;
                let r = Row { row, raw: csv::ByteRecord::new() };
                count(plain.push(r.clone(), key.clone(), data.clone()), &mut m.plain_bytes, &mut plain_records);
                count(agg.push(r, key, data), &mut m.aggregated_bytes, &mut m.aggregated_records);
            }
            Err(_) => m.rejected += 1,
        }
    }
    count(plain.finish(), &mut m.plain_bytes, &mut plain_records);
    count(agg.finish(), &mut m.aggregated_bytes, &mut m.aggregated_records);
    Ok(m)
}
