//! CSV row → wire record: maps the schema's `from` columns by header name and encodes the
//! values exactly as the transform decodes them: the schema's layout header
//! (`schema::Layout::header`, so a transform with another layout refuses the record instead of
//! mislabelling it), then `schema::encode_record`.

use crate::schema::{encode_record, Schema, LAYOUT_HEADER_LEN};

/// Kinesis: a record (data plus partition key) is at most 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("row {row}: missing column `{column}` (the row has {got} values, the header {want})")]
    MissingColumn { row: u64, column: String, got: usize, want: usize },
    #[error("row {row}: {got} values, more than the header's {want} (a stray delimiter?)")]
    ExtraColumns { row: u64, got: usize, want: usize },
    #[error("row {row}: record is {size} bytes, over Kinesis's 1 MiB record limit")]
    TooLarge { row: u64, size: usize },
    #[error("row {row}: value of `{column}` is not valid UTF-8")]
    Utf8 { row: u64, column: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the CSV has no column `{column}` (needed by field `{field}`); its columns are: {columns}")]
    MissingColumn { column: String, field: String, columns: String },
    #[error("the CSV has no column `{0}` for --partition-key")]
    MissingKey(String),
}

/// Encodes rows of one CSV file for one schema.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    columns: Vec<(usize, String)>,
    key: Option<usize>,
    header_len: usize,
    delimiter: char,
    layout: [u8; LAYOUT_HEADER_LEN],
}

impl RowEncoder {
    pub fn new(schema: &Schema, headers: &csv::ByteRecord, partition_key: Option<&str>) -> Result<Self, HeaderError> {
        let names: Vec<String> = headers.iter().map(|h| String::from_utf8_lossy(h).trim().to_string()).collect();
        let find = |c: &str| names.iter().position(|n| n == c);
        let mut columns = Vec::new();
        for f in schema.wire_fields() {
            let col = f.from.as_deref().unwrap_or_default();
            let i = find(col).ok_or_else(|| HeaderError::MissingColumn {
                column: col.to_string(),
                field: f.name.clone(),
                columns: names.join(", "),
            })?;
            columns.push((i, col.to_string()));
        }
        let key = match partition_key {
            Some(k) => Some(find(k).ok_or_else(|| HeaderError::MissingKey(k.to_string()))?),
            None => None,
        };
        Ok(RowEncoder {
            columns,
            key,
            header_len: names.len(),
            delimiter: schema.delimiter_char(),
            layout: schema.layout().header(),
        })
    }

    /// Encodes `record` (data row number `row`, 1-based) into `out`; returns the partition-key
    /// value when keyed by a column.
    pub fn encode(&self, row: u64, record: &csv::ByteRecord, out: &mut Vec<u8>) -> Result<Option<String>, RowError> {
        out.clear();
        // Extra values would shift nothing here (columns are found by header name), but they
        // mean the row is not what its header says: reject it rather than guess.
        if record.len() > self.header_len {
            return Err(RowError::ExtraColumns { row, got: record.len(), want: self.header_len });
        }
        let mut values: Vec<&str> = Vec::with_capacity(self.columns.len());
        for (i, name) in &self.columns {
            let raw = record.get(*i).ok_or_else(|| RowError::MissingColumn {
                row,
                column: name.clone(),
                got: record.len(),
                want: self.header_len,
            })?;
            values.push(std::str::from_utf8(raw).map_err(|_| RowError::Utf8 { row, column: name.clone() })?);
        }
        out.extend_from_slice(&self.layout);
        encode_record(&values, self.delimiter, out);
        let key = self.key.map(|k| String::from_utf8_lossy(record.get(k).unwrap_or_default()).into_owned());
        if out.len() + key.as_ref().map_or(0, String::len) > MAX_RECORD_BYTES {
            return Err(RowError::TooLarge { row, size: out.len() });
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::crime_schema;

    /// The article CSV's header.
    const ARTICLE_HEADER: [&str; 9] =
        ["cdatetime", "address", "district", "beat", "grid", "crimedescr", "ucr_ncic_code", "latitude", "longitude"];

    fn rec(v: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(v.to_vec())
    }

    #[test]
    fn maps_columns_by_header_name() {
        let s = crime_schema();
        // Columns in another order, with an extra one and padded header names.
        let h = rec(&[
            "extra",
            "longitude",
            "latitude",
            "ucr_ncic_code",
            "crimedescr",
            "grid",
            "beat",
            "district",
            "address",
            " cdatetime ",
        ]);
        let e = RowEncoder::new(&s, &h, None).unwrap();
        let mut out = Vec::new();
        let r = rec(&[
            "x",
            "-121.39",
            "38.55",
            "2404",
            "TAKE | VEH",
            "1115",
            "3C        ",
            "3",
            "3108 OCCIDENTAL DR",
            "1/1/06 0:00",
        ]);
        e.encode(1, &r, &mut out).unwrap();
        let (header, row) = out.split_at(LAYOUT_HEADER_LEN);
        assert_eq!(header, s.layout().header());
        assert_eq!(
            String::from_utf8(row.to_vec()).unwrap(),
            "1/1/06 0:00|3108 OCCIDENTAL DR|3|3C        |1115|\"TAKE | VEH\"|2404|38.55|-121.39"
        );
    }

    #[test]
    fn missing_columns_are_reported() {
        let s = crime_schema();
        let h = rec(&["cdatetime", "address"]);
        let err = RowEncoder::new(&s, &h, None).unwrap_err();
        assert!(err.to_string().contains("no column `district`"), "{err}");
        let h = rec(&ARTICLE_HEADER);
        let e = RowEncoder::new(&s, &h, Some("beat")).unwrap();
        let mut out = Vec::new();
        let err = e.encode(7, &rec(&["a", "b"]), &mut out).unwrap_err();
        assert_eq!(err, RowError::MissingColumn { row: 7, column: "district".into(), got: 2, want: 9 });
        assert!(RowEncoder::new(&s, &h, Some("nope")).is_err());
        let long = rec(&["1/1/06 0:00", "a", "3", "b", "1", "d", "1", "1", "1", "extra"]);
        assert_eq!(e.encode(8, &long, &mut out).unwrap_err(), RowError::ExtraColumns { row: 8, got: 10, want: 9 });
    }

    #[test]
    fn oversize_rows_are_errors() {
        let s = crime_schema();
        let h = rec(&ARTICLE_HEADER);
        let e = RowEncoder::new(&s, &h, None).unwrap();
        let big = "x".repeat(MAX_RECORD_BYTES);
        let mut out = Vec::new();
        let err = e.encode(3, &rec(&["a", &big, "1", "b", "1", "d", "1", "1", "1"]), &mut out).unwrap_err();
        assert!(matches!(err, RowError::TooLarge { row: 3, .. }));
    }
}
