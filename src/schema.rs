//! The record schema of a pipeline: its types, the wire encoding shared by the producer and the
//! transform, the typing of wire values into a JSON document, and the derived index mapping.
//!
//! This module is pure (no I/O, no clock, no AWS) and is compiled into the Lambda `bootstrap`,
//! so it must not depend on anything behind the `cli` feature.

use std::collections::BTreeMap;
use std::fmt;

use std::borrow::Cow;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How one pipeline's records look on the wire and in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// One character that separates the values of a record on the wire.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Values (after trimming) that become JSON null, whatever the field's type.
    #[serde(default = "default_nulls")]
    pub nulls: Vec<String>,
    pub fields: Vec<Field>,
}

fn default_delimiter() -> String {
    "|".to_string()
}

fn default_nulls() -> Vec<String> {
    vec![String::new(), "null".to_string()]
}

/// One field of the JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// The CSV column this field is read from; fields with `from` are the wire values, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// strftime format of a `date` read from the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// For `geo_point`: the names of the two float fields holding latitude and longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<String>,
    /// A value computed by the transform instead of read from the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Computed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Keyword,
    Text,
    Integer,
    Float,
    Boolean,
    Date,
    GeoPoint,
}

impl FieldType {
    pub const ALL: [&'static str; 7] = ["keyword", "text", "integer", "float", "boolean", "date", "geo_point"];

    /// The OpenSearch/Elasticsearch mapping type.
    pub fn mapping_type(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Text => "text",
            FieldType::Integer => "long",
            FieldType::Float => "double",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::GeoPoint => "geo_point",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Computed {
    /// The record's approximateArrivalTimestamp.
    ArrivalTime,
}

impl Schema {
    /// The fields that travel on the wire, in wire order.
    pub fn wire_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.from.is_some())
    }

    pub fn delimiter_char(&self) -> char {
        self.delimiter.chars().next().unwrap_or('|')
    }

    /// The index mapping derived from the schema: without an explicit `geo_point` mapping a
    /// location is indexed as two floats and never becomes a map field in Kibana/Dashboards.
    pub fn index_mapping(&self) -> Value {
        let mut props = Map::new();
        for f in &self.fields {
            let mut m = Map::new();
            m.insert("type".into(), Value::String(f.ty.mapping_type().into()));
            if f.ty == FieldType::Date {
                // The transform always writes RFC 3339.
                m.insert("format".into(), Value::String("strict_date_optional_time".into()));
            }
            props.insert(f.name.clone(), Value::Object(m));
        }
        serde_json::json!({ "mappings": { "dynamic": "strict", "properties": Value::Object(props) } })
    }

    /// An index template for `index` (and its rotated forms `index-*`).
    pub fn index_template(&self, index: &str) -> Value {
        let mapping = self.index_mapping();
        serde_json::json!({
            "index_patterns": [index, format!("{index}-*")],
            "template": { "mappings": mapping["mappings"].clone() }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Wire encoding
// ---------------------------------------------------------------------------------------------

/// Encodes one record: values joined by `delim`; a value containing the delimiter, `"`, CR or LF
/// is quoted RFC-4180 style with `"` doubled inside. Plain values pass unchanged, so the
/// article's pipe-joined output is valid input.
pub fn encode_record<S: AsRef<str>>(values: &[S], delim: char, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    let d = delim.encode_utf8(&mut buf).as_bytes();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(d);
        }
        let v = v.as_ref();
        if v.contains([delim, '"', '\r', '\n']) {
            out.push(b'"');
            for ch in v.chars() {
                if ch == '"' {
                    out.extend_from_slice(b"\"\"");
                } else {
                    out.extend_from_slice(ch.encode_utf8(&mut [0u8; 4]).as_bytes());
                }
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(v.as_bytes());
        }
    }
}

/// Why a wire record could not be split into values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record is not valid UTF-8 (byte {0})")]
    Utf8(usize),
    #[error("unterminated quoted value starting at byte {0}")]
    Unterminated(usize),
    #[error("unexpected character after closing quote at byte {0}")]
    AfterQuote(usize),
}

/// Splits a wire record into its values (the inverse of [`encode_record`]). A `"` that does
/// not start a value is taken literally, which keeps unquoted legacy input readable.
pub fn decode_record(data: &[u8], delim: char) -> Result<Vec<String>, WireError> {
    let text = std::str::from_utf8(data).map_err(|e| WireError::Utf8(e.valid_up_to()))?;
    Ok(decode_str(text, delim)?.into_iter().map(Cow::into_owned).collect())
}

/// [`decode_record`] without copying: unquoted values borrow from `text`.
pub fn decode_str(text: &str, delim: char) -> Result<Vec<Cow<'_, str>>, WireError> {
    // A trailing newline is a record terminator some producers add, not part of the last value.
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    let mut values = Vec::with_capacity(16);
    let mut rest = text;
    let mut offset = 0;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices().peekable();
            let end = loop {
                match chars.next() {
                    None => return Err(WireError::Unterminated(offset)),
                    Some((i, '"')) => {
                        if let Some(&(_, '"')) = chars.peek() {
                            chars.next();
                            value.push('"');
                        } else {
                            break i + 1;
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            };
            values.push(Cow::Owned(value));
            // `end` indexes `quoted`: the byte after the closing quote.
            let after = &quoted[end..];
            let consumed = 1 + end;
            match after.chars().next() {
                None => return Ok(values),
                Some(c) if c == delim => {
                    rest = &after[c.len_utf8()..];
                    offset += consumed + c.len_utf8();
                }
                Some(_) => return Err(WireError::AfterQuote(offset + consumed)),
            }
        } else {
            match rest.find(delim) {
                None => {
                    values.push(Cow::Borrowed(rest));
                    return Ok(values);
                }
                Some(i) => {
                    values.push(Cow::Borrowed(&rest[..i]));
                    rest = &rest[i + delim.len_utf8()..];
                    offset += i + delim.len_utf8();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typing
// ---------------------------------------------------------------------------------------------

/// Why a record could not be typed. Carries the field and the offending value, never the
/// whole payload (which may be large or sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeError {
    Wire(WireError),
    Arity { expected: usize, got: usize },
    Value { field: String, value: String, reason: &'static str },
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeError::Wire(e) => write!(f, "{e}"),
            TypeError::Arity { expected, got } => {
                write!(f, "expected {expected} values, got {got}")
            }
            TypeError::Value { field, value, reason } => {
                let shown: String = value.chars().take(64).collect();
                let more = if value.chars().count() > 64 { "…" } else { "" };
                write!(f, "field `{field}`: {reason}: {shown:?}{more}")
            }
        }
    }
}

impl std::error::Error for TypeError {}

/// Where a document field's value comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The n-th wire value.
    Wire(usize),
    Arrival,
    /// A point from two wire values (latitude, longitude).
    Geo(usize, usize),
    Null,
}

#[derive(Debug, Clone)]
struct CompiledField {
    name: String,
    /// `"name":`, escaped once.
    key: Vec<u8>,
    ty: FieldType,
    source: Source,
    /// The date format, parsed once (strftime parsing per record is most of a date's cost).
    date: Option<Vec<Item<'static>>>,
}

/// A schema prepared for typing many records: formats parsed and field sources resolved once
/// (at the Lambda's cold start), so each record costs one pass.
#[derive(Debug, Clone)]
pub struct Compiled {
    delimiter: char,
    nulls: Vec<String>,
    wire_count: usize,
    fields: Vec<CompiledField>,
}

/// One typed value, borrowing from the record where it can.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(DateTime<Utc>),
    Geo(f64, f64),
}

fn date_items(fmt: &str) -> Vec<Item<'static>> {
    StrftimeItems::new(fmt).parse_to_owned().unwrap_or_default()
}

impl Compiled {
    pub fn new(schema: &Schema) -> Compiled {
        let wire_index: BTreeMap<&str, usize> =
            schema.wire_fields().enumerate().map(|(i, f)| (f.name.as_str(), i)).collect();
        let mut fields = Vec::with_capacity(schema.fields.len());
        for f in &schema.fields {
            let source = if f.from.is_some() {
                Source::Wire(wire_index[f.name.as_str()])
            } else if f.value == Some(Computed::ArrivalTime) {
                Source::Arrival
            } else if f.ty == FieldType::GeoPoint {
                let idx = |n: &Option<String>| n.as_deref().and_then(|n| wire_index.get(n).copied());
                match (idx(&f.lat), idx(&f.lon)) {
                    (Some(a), Some(b)) => Source::Geo(a, b),
                    _ => Source::Null,
                }
            } else {
                Source::Null
            };
            let mut key = serde_json::to_vec(&f.name).expect("a string serialises");
            key.push(b':');
            fields.push(CompiledField {
                name: f.name.clone(),
                key,
                ty: f.ty,
                source,
                date: (f.ty == FieldType::Date).then(|| date_items(f.format.as_deref().unwrap_or("%+"))),
            });
        }
        Compiled {
            delimiter: schema.delimiter_char(),
            nulls: schema.nulls.clone(),
            wire_count: schema.wire_fields().count(),
            fields,
        }
    }

    /// Types one wire record and writes its JSON document to `out` (cleared first).
    pub fn write_document(&self, data: &[u8], arrival: DateTime<Utc>, out: &mut Vec<u8>) -> Result<(), TypeError> {
        out.clear();
        let text = std::str::from_utf8(data).map_err(|e| TypeError::Wire(WireError::Utf8(e.valid_up_to())))?;
        let raw = decode_str(text, self.delimiter).map_err(TypeError::Wire)?;
        if raw.len() != self.wire_count {
            return Err(TypeError::Arity { expected: self.wire_count, got: raw.len() });
        }
        let mut typed: Vec<Val<'_>> = vec![Val::Null; raw.len()];
        for f in &self.fields {
            if let Source::Wire(i) = f.source {
                typed[i] = type_one(&self.nulls, f, &raw[i])?;
            }
        }
        out.push(b'{');
        for (n, f) in self.fields.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&f.key);
            match &f.source {
                Source::Wire(i) => write_val(out, &typed[*i]),
                Source::Arrival => write_val(out, &Val::Date(arrival)),
                Source::Geo(a, b) => match (&typed[*a], &typed[*b]) {
                    (Val::Float(lat), Val::Float(lon)) => {
                        if !(-90.0..=90.0).contains(lat) {
                            return Err(bad(&f.name, &lat.to_string(), "latitude outside -90..90"));
                        }
                        if !(-180.0..=180.0).contains(lon) {
                            return Err(bad(&f.name, &lon.to_string(), "longitude outside -180..180"));
                        }
                        write_val(out, &Val::Geo(*lat, *lon));
                    }
                    _ => write_val(out, &Val::Null),
                },
                Source::Null => write_val(out, &Val::Null),
            }
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_val(out: &mut Vec<u8>, v: &Val<'_>) {
    // Writing into a Vec cannot fail.
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Str(s) => serde_json::to_writer(&mut *out, s.as_ref()).expect("write to Vec"),
        Val::Int(i) => serde_json::to_writer(&mut *out, i).expect("write to Vec"),
        Val::Float(x) => serde_json::to_writer(&mut *out, x).expect("write to Vec"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Date(d) => {
            out.push(b'"');
            out.extend_from_slice(d.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
            out.push(b'"');
        }
        Val::Geo(lat, lon) => {
            out.extend_from_slice(b"{\"lat\":");
            serde_json::to_writer(&mut *out, lat).expect("write to Vec");
            out.extend_from_slice(b",\"lon\":");
            serde_json::to_writer(&mut *out, lon).expect("write to Vec");
            out.push(b'}');
        }
    }
}

fn bad(field: &str, value: &str, reason: &'static str) -> TypeError {
    TypeError::Value { field: field.to_string(), value: value.to_string(), reason }
}

/// Types one wire value: trimmed; a null marker becomes null whatever the type.
fn type_one<'a>(nulls: &[String], f: &CompiledField, raw: &Cow<'a, str>) -> Result<Val<'a>, TypeError> {
    let v = raw.trim();
    if nulls.iter().any(|n| n == v) {
        return Ok(Val::Null);
    }
    match f.ty {
        FieldType::Keyword | FieldType::Text => Ok(Val::Str(match raw {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(_) => Cow::Owned(v.to_string()),
        })),
        FieldType::Integer => v.parse::<i64>().map(Val::Int).map_err(|_| bad(&f.name, raw, "not an integer")),
        FieldType::Float => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Val::Float(x)),
            _ => Err(bad(&f.name, raw, "not a finite number")),
        },
        FieldType::Boolean => {
            if v.eq_ignore_ascii_case("true") || v == "1" {
                Ok(Val::Bool(true))
            } else if v.eq_ignore_ascii_case("false") || v == "0" {
                Ok(Val::Bool(false))
            } else {
                Err(bad(&f.name, raw, "not a boolean (true/false/1/0)"))
            }
        }
        FieldType::Date => parse_date_items(v, f.date.as_deref().unwrap_or(&[]))
            .map(Val::Date)
            .ok_or_else(|| bad(&f.name, raw, "does not match the date format")),
        // A geo_point read from the wire directly is written "lat,lon".
        FieldType::GeoPoint => {
            let mut it = v.split(',').map(|p| p.trim().parse::<f64>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(lat)), Some(Ok(lon)), None)
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Ok(Val::Geo(lat, lon))
                }
                _ => Err(bad(&f.name, raw, "not a \"lat,lon\" point in range")),
            }
        }
    }
}

/// Turns one record into its typed JSON document (convenience over [`Compiled`]; a caller
/// typing many records should compile the schema once).
pub fn type_record(schema: &Schema, data: &[u8], arrival: DateTime<Utc>) -> Result<Map<String, Value>, TypeError> {
    let mut out = Vec::new();
    Compiled::new(schema).write_document(data, arrival, &mut out)?;
    Ok(serde_json::from_slice(&out).expect("the document writer emits JSON"))
}

/// Types one wire value according to its field (as in a record).
pub fn type_value(schema: &Schema, field: &Field, raw: &str) -> Result<Value, TypeError> {
    let compiled = CompiledField {
        name: field.name.clone(),
        key: Vec::new(),
        ty: field.ty,
        source: Source::Null,
        date: (field.ty == FieldType::Date).then(|| date_items(field.format.as_deref().unwrap_or("%+"))),
    };
    let v = type_one(&schema.nulls, &compiled, &Cow::Borrowed(raw))?;
    let mut out = Vec::new();
    write_val(&mut out, &v);
    Ok(serde_json::from_slice(&out).expect("the value writer emits JSON"))
}

fn parse_date_items(v: &str, items: &[Item<'static>]) -> Option<DateTime<Utc>> {
    let mut p = Parsed::new();
    chrono::format::parse(&mut p, v, items.iter()).ok()?;
    if p.offset().is_some() {
        return p.to_datetime().ok().map(|d| d.with_timezone(&Utc));
    }
    if let Ok(d) = p.to_naive_datetime_with_offset(0) {
        return Some(d.and_utc());
    }
    p.to_naive_date().ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

/// Parses `v` with a strftime `fmt`: with an offset if the format has one, otherwise as UTC
/// date-time, otherwise as a UTC date at midnight.
pub fn parse_date(v: &str, fmt: &str) -> Option<DateTime<Utc>> {
    parse_date_items(v, &date_items(fmt))
}

/// True when `fmt` is a strftime format chrono understands.
pub fn valid_date_format(fmt: &str) -> bool {
    !fmt.is_empty() && StrftimeItems::new(fmt).all(|i| !matches!(i, Item::Error))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn crime_schema() -> Schema {
        let f = |name: &str, ty, from: Option<&str>| Field {
            name: name.into(),
            ty,
            from: from.map(Into::into),
            format: None,
            lat: None,
            lon: None,
            value: None,
        };
        let mut date = f("crime_time", FieldType::Date, Some("cdatetime"));
        date.format = Some("%m/%d/%y %H:%M".into());
        let mut loc = f("location", FieldType::GeoPoint, None);
        loc.lat = Some("latitude".into());
        loc.lon = Some("longitude".into());
        let mut load = f("load_time", FieldType::Date, None);
        load.value = Some(Computed::ArrivalTime);
        Schema {
            delimiter: "|".into(),
            nulls: vec!["".into(), "null".into(), "N/A".into(), "NaN".into()],
            fields: vec![
                date,
                f("address", FieldType::Keyword, Some("address")),
                f("district", FieldType::Integer, Some("district")),
                f("beat", FieldType::Keyword, Some("beat")),
                f("grid", FieldType::Integer, Some("grid")),
                f("description", FieldType::Text, Some("crimedescr")),
                f("crime_id", FieldType::Integer, Some("ucr_ncic_code")),
                f("latitude", FieldType::Float, Some("latitude")),
                f("longitude", FieldType::Float, Some("longitude")),
                loc,
                load,
            ],
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_136_073_600, 0).unwrap()
    }

    #[test]
    fn encode_decode_roundtrip_edge_cases() {
        let cases: Vec<Vec<&str>> = vec![
            vec!["a", "b", "c"],
            vec!["", "", ""],
            vec!["with|pipe", "x"],
            vec!["say \"hi\"", "y"],
            vec!["line\nbreak", "cr\rhere", "crlf\r\n"],
            vec!["ünïcödé ✓", "日本"],
            vec!["\"", "\"\"", "|"],
            vec!["trailing|"],
        ];
        for values in cases {
            let mut out = Vec::new();
            encode_record(&values, '|', &mut out);
            let back = decode_record(&out, '|').unwrap();
            assert_eq!(back, values, "wire: {:?}", String::from_utf8_lossy(&out));
        }
    }

    /// A small deterministic generator, so property tests need no extra crate.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn property_encode_decode_roundtrip_and_decoder_never_panics() {
        let alphabet: Vec<char> = "ab |\"\r\n,;é✓日\t0".chars().collect();
        let mut rng = Rng(0x9E3779B97F4A7C15);
        for _ in 0..20_000 {
            let n = (rng.next() % 6 + 1) as usize;
            let values: Vec<String> = (0..n)
                .map(|_| (0..rng.next() % 8).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect())
                .collect();
            for delim in ['|', ',', ';'] {
                let mut out = Vec::new();
                encode_record(&values, delim, &mut out);
                assert_eq!(decode_record(&out, delim).unwrap(), values, "{:?}", String::from_utf8_lossy(&out));
            }
        }
        // Arbitrary bytes: an answer (Ok or Err), never a panic.
        let (compiled, mut doc) = (Compiled::new(&crime_schema()), Vec::new());
        for _ in 0..50_000 {
            let len = (rng.next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| b"|\"a\r\n\xff\xc3\xa9"[(rng.next() % 8) as usize]).collect();
            let _ = decode_record(&bytes, '|');
            let _ = compiled.write_document(&bytes, t0(), &mut doc);
        }
    }

    #[test]
    fn plain_values_are_not_quoted() {
        let mut out = Vec::new();
        encode_record(&["1/1/06 0:00", "3108 OCCIDENTAL DR", "3"], '|', &mut out);
        assert_eq!(out, b"1/1/06 0:00|3108 OCCIDENTAL DR|3");
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode_record(b"\"abc", '|'), Err(WireError::Unterminated(0)));
        assert_eq!(decode_record(b"\"a\"b|c", '|'), Err(WireError::AfterQuote(3)));
        assert_eq!(decode_record(&[b'a', 0xff, b'b'], '|'), Err(WireError::Utf8(1)));
        // A quote inside an unquoted value is literal.
        assert_eq!(decode_record(b"12 \"A\" ST|x", '|').unwrap(), vec!["12 \"A\" ST", "x"]);
        // One trailing newline terminates the record.
        assert_eq!(decode_record(b"a|b\r\n", '|').unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn types_an_article_row() {
        let s = crime_schema();
        let row =
            b"1/1/06 0:00|3108 OCCIDENTAL DR|3|3C|1115|10851(A)VC TAKE VEH W/O OWNER|2404|38.55042047|-121.3914158";
        let doc = type_record(&s, row, t0()).unwrap();
        let want = serde_json::json!({
            "crime_time": "2006-01-01T00:00:00Z",
            "address": "3108 OCCIDENTAL DR",
            "district": 3,
            "beat": "3C",
            "grid": 1115,
            "description": "10851(A)VC TAKE VEH W/O OWNER",
            "crime_id": 2404,
            "latitude": 38.55042047,
            "longitude": -121.3914158,
            "location": { "lat": 38.55042047, "lon": -121.3914158 },
            "load_time": "2006-01-01T00:00:00Z"
        });
        assert_eq!(Value::Object(doc), want);
    }

    #[test]
    fn every_type_and_nulls() {
        let s = crime_schema();
        let field = |ty, fmt: Option<&str>| Field {
            name: "f".into(),
            ty,
            from: Some("c".into()),
            format: fmt.map(Into::into),
            lat: None,
            lon: None,
            value: None,
        };
        let ok = |ty, fmt, raw: &str| type_value(&s, &field(ty, fmt), raw).unwrap();
        let err = |ty, fmt, raw: &str| type_value(&s, &field(ty, fmt), raw).is_err();
        assert_eq!(ok(FieldType::Keyword, None, "  abc "), Value::from("abc"));
        assert_eq!(ok(FieldType::Text, None, "a b"), Value::from("a b"));
        assert_eq!(ok(FieldType::Integer, None, " -42 "), Value::from(-42));
        assert!(err(FieldType::Integer, None, "4.2"));
        assert!(err(FieldType::Integer, None, "x"));
        assert_eq!(ok(FieldType::Float, None, "1.5"), Value::from(1.5));
        assert!(err(FieldType::Float, None, "inf"));
        assert!(err(FieldType::Float, None, "nan"));
        assert!(err(FieldType::Float, None, "1,5"));
        for t in ["true", "TRUE", "1", "True"] {
            assert_eq!(ok(FieldType::Boolean, None, t), Value::Bool(true));
        }
        for t in ["false", "False", "0"] {
            assert_eq!(ok(FieldType::Boolean, None, t), Value::Bool(false));
        }
        assert!(err(FieldType::Boolean, None, "yes"));
        assert_eq!(ok(FieldType::Date, Some("%m/%d/%y %H:%M"), "12/31/06 23:59"), Value::from("2006-12-31T23:59:00Z"));
        assert_eq!(ok(FieldType::Date, Some("%Y-%m-%d"), "2006-01-02"), Value::from("2006-01-02T00:00:00Z"));
        assert_eq!(
            ok(FieldType::Date, Some("%Y-%m-%d %H:%M:%S %z"), "2006-01-02 10:00:00 +0200"),
            Value::from("2006-01-02T08:00:00Z")
        );
        assert!(err(FieldType::Date, Some("%m/%d/%y %H:%M"), "13/45/06 0:00"));
        assert_eq!(ok(FieldType::GeoPoint, None, "1.5, 2"), serde_json::json!({"lat":1.5,"lon":2.0}));
        assert!(err(FieldType::GeoPoint, None, "91,0"));
        for n in ["", " ", "null", "N/A", "NaN"] {
            for ty in [FieldType::Integer, FieldType::Float, FieldType::Date, FieldType::Keyword] {
                assert_eq!(ok(ty, Some("%Y"), n), Value::Null, "{n:?} as {ty:?}");
            }
        }
    }

    #[test]
    fn failure_reasons() {
        let s = crime_schema();
        let t = |row: &[u8]| type_record(&s, row, t0()).unwrap_err();
        assert_eq!(t(b"a|b"), TypeError::Arity { expected: 9, got: 2 });
        match t(b"1/1/06 0:00|A|x|3C|1115|D|2404|38.5|-121.3") {
            TypeError::Value { field, value, .. } => assert_eq!((field.as_str(), value.as_str()), ("district", "x")),
            e => panic!("{e:?}"),
        }
        match t(b"1/1/06 0:00|A|3|3C|1115|D|2404|95.5|-121.3") {
            TypeError::Value { field, reason, .. } => {
                assert_eq!(field, "location");
                assert!(reason.contains("latitude"));
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(t(b"1/1/06 0:00|A|3|3C|1115|D|2404|38.5|-191.3"), TypeError::Value { .. }));
        assert!(matches!(t(b"99/1/06|A|3|3C|1115|D|2404|38.5|-121.3"), TypeError::Value { .. }));
        assert!(matches!(t(&[0xc3, 0x28]), TypeError::Wire(WireError::Utf8(0))));
        // Null latitude makes the point null, not a failure.
        let doc = type_record(&s, b"1/1/06 0:00|A|3|3C|1115|D|2404||-121.3", t0()).unwrap();
        assert_eq!(doc["location"], Value::Null);
        assert_eq!(doc["latitude"], Value::Null);
    }

    #[test]
    fn mapping_has_geo_point_and_dates() {
        let m = crime_schema().index_mapping();
        let p = &m["mappings"]["properties"];
        assert_eq!(p["location"]["type"], "geo_point");
        assert_eq!(p["crime_time"]["type"], "date");
        assert_eq!(p["district"]["type"], "long");
        assert_eq!(p["latitude"]["type"], "double");
        assert_eq!(p["description"]["type"], "text");
        assert_eq!(p["beat"]["type"], "keyword");
        let t = crime_schema().index_template("crime-data");
        assert_eq!(t["index_patterns"][1], "crime-data-*");
    }

    #[test]
    fn date_formats_are_checked() {
        assert!(valid_date_format("%m/%d/%y %H:%M"));
        assert!(!valid_date_format("%Q"));
        assert!(!valid_date_format(""));
    }
}
