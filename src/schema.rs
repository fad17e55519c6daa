//! The record schema of a pipeline: its types, the wire encoding shared by the producer and the
//! transform, the typing of wire values into a JSON document, and the derived index mapping.
//!
//! This module is pure (no I/O, no clock, no AWS) and is compiled into the Lambda `bootstrap`,
//! so it must not depend on anything behind the `cli` feature.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
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
    pub const ALL: [&'static str; 7] =
        ["keyword", "text", "integer", "float", "boolean", "date", "geo_point"];

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
        if v.contains(|c| c == delim || c == '"' || c == '\r' || c == '\n') {
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
    // A trailing newline is a record terminator some producers add, not part of the last value.
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    let mut values = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        let mut value = String::new();
        match chars.peek() {
            Some(&(start, '"')) => {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(WireError::Unterminated(start)),
                        Some((_, '"')) => {
                            if let Some(&(_, '"')) = chars.peek() {
                                chars.next();
                                value.push('"');
                            } else {
                                break;
                            }
                        }
                        Some((_, c)) => value.push(c),
                    }
                }
                match chars.next() {
                    None => {
                        values.push(value);
                        return Ok(values);
                    }
                    Some((_, c)) if c == delim => values.push(value),
                    Some((i, _)) => return Err(WireError::AfterQuote(i)),
                }
            }
            _ => loop {
                match chars.next() {
                    None => {
                        values.push(value);
                        return Ok(values);
                    }
                    Some((_, c)) if c == delim => {
                        values.push(value);
                        break;
                    }
                    Some((_, c)) => value.push(c),
                }
            },
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

/// Turns one wire record into its typed JSON document. `arrival` feeds `value: arrival_time`.
pub fn type_record(
    schema: &Schema,
    data: &[u8],
    arrival: DateTime<Utc>,
) -> Result<Map<String, Value>, TypeError> {
    let values = decode_record(data, schema.delimiter_char()).map_err(TypeError::Wire)?;
    let expected = schema.wire_fields().count();
    if values.len() != expected {
        return Err(TypeError::Arity { expected, got: values.len() });
    }
    let mut typed: BTreeMap<&str, Value> = BTreeMap::new();
    for (field, raw) in schema.wire_fields().zip(values.iter()) {
        typed.insert(&field.name, type_value(schema, field, raw)?);
    }
    let mut doc = Map::new();
    for field in &schema.fields {
        let v = if field.from.is_some() {
            typed.remove(field.name.as_str()).unwrap_or(Value::Null)
        } else if field.value == Some(Computed::ArrivalTime) {
            Value::String(arrival.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        } else if field.ty == FieldType::GeoPoint {
            geo_point(schema, field, &doc, &typed)?
        } else {
            Value::Null
        };
        doc.insert(field.name.clone(), v);
    }
    Ok(doc)
}

fn geo_point(
    schema: &Schema,
    field: &Field,
    doc: &Map<String, Value>,
    typed: &BTreeMap<&str, Value>,
) -> Result<Value, TypeError> {
    let get = |name: &Option<String>| -> Option<f64> {
        let name = name.as_deref()?;
        doc.get(name).or_else(|| typed.get(name)).and_then(Value::as_f64)
    };
    let _ = schema;
    match (get(&field.lat), get(&field.lon)) {
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(bad(&field.name, &lat.to_string(), "latitude outside -90..90"));
            }
            if !(-180.0..=180.0).contains(&lon) {
                return Err(bad(&field.name, &lon.to_string(), "longitude outside -180..180"));
            }
            Ok(serde_json::json!({ "lat": lat, "lon": lon }))
        }
        _ => Ok(Value::Null),
    }
}

fn bad(field: &str, value: &str, reason: &'static str) -> TypeError {
    TypeError::Value { field: field.to_string(), value: value.to_string(), reason }
}

/// Types one wire value according to its field.
pub fn type_value(schema: &Schema, field: &Field, raw: &str) -> Result<Value, TypeError> {
    let v = raw.trim();
    if schema.nulls.iter().any(|n| n == v) {
        return Ok(Value::Null);
    }
    match field.ty {
        FieldType::Keyword | FieldType::Text => Ok(Value::String(v.to_string())),
        FieldType::Integer => v
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad(&field.name, raw, "not an integer")),
        FieldType::Float => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            _ => Err(bad(&field.name, raw, "not a finite number")),
        },
        FieldType::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(bad(&field.name, raw, "not a boolean (true/false/1/0)")),
        },
        FieldType::Date => {
            let fmt = field.format.as_deref().unwrap_or("%+");
            parse_date(v, fmt)
                .map(|d| Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
                .ok_or_else(|| bad(&field.name, raw, "does not match the date format"))
        }
        // A geo_point is computed from two other fields, never read from the wire directly;
        // a wire geo_point is accepted as "lat,lon".
        FieldType::GeoPoint => {
            let mut it = v.split(',').map(|p| p.trim().parse::<f64>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(lat)), Some(Ok(lon)), None)
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Ok(serde_json::json!({ "lat": lat, "lon": lon }))
                }
                _ => Err(bad(&field.name, raw, "not a \"lat,lon\" point in range")),
            }
        }
    }
}

/// Parses `v` with a strftime `fmt`: with an offset if the format has one, otherwise as UTC
/// date-time, otherwise as a UTC date at midnight.
pub fn parse_date(v: &str, fmt: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_str(v, fmt) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(v, fmt) {
        return Some(d.and_utc());
    }
    NaiveDate::parse_from_str(v, fmt).ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

/// True when `fmt` is a strftime format chrono understands.
pub fn valid_date_format(fmt: &str) -> bool {
    use chrono::format::{Item, StrftimeItems};
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
        for _ in 0..50_000 {
            let len = (rng.next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| b"|\"a\r\n\xff\xc3\xa9"[(rng.next() % 8) as usize]).collect();
            let _ = decode_record(&bytes, '|');
            let _ = type_record(&crime_schema(), &bytes, t0());
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
        let row = b"1/1/06 0:00|3108 OCCIDENTAL DR|3|3C|1115|10851(A)VC TAKE VEH W/O OWNER|2404|38.55042047|-121.3914158";
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
        assert_eq!(
            ok(FieldType::Date, Some("%m/%d/%y %H:%M"), "12/31/06 23:59"),
            Value::from("2006-12-31T23:59:00Z")
        );
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
