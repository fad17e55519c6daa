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
}

// ---------------------------------------------------------------------------------------------
// Wire layout
// ---------------------------------------------------------------------------------------------

/// What the positions of a wire record mean: the delimiter and, for each wire field in order,
/// its column, type and date format. Rows are positional, so a schema edit that changes this
/// (reordering or retyping `from` fields) would make the transform read rows already in the
/// stream into the wrong fields. The producer therefore starts every record with the layout's
/// fingerprint ([`Layout::header`]), and the transform refuses a record whose fingerprint is not
/// its own (see the README, "Schema changes while records are in flight"). Field names are not
/// part of it: renaming a field relabels every row the same way, old or new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout(u32);

/// The first byte of a record that carries its layout: ASCII RS (record separator), which no
/// CSV text starts with; then 8 lowercase hex digits.
pub const LAYOUT_MARK: u8 = 0x1e;
pub const LAYOUT_HEADER_LEN: usize = 9;

impl Layout {
    /// The 9 bytes the producer puts before each record.
    pub fn header(self) -> [u8; LAYOUT_HEADER_LEN] {
        let mut h = [LAYOUT_MARK; LAYOUT_HEADER_LEN];
        h[1..].copy_from_slice(format!("{:08x}", self.0).as_bytes());
        h
    }

    /// The record without its layout header. A record with another layout is an error; a
    /// record without a header (the article's producer, or rows written before pipectl 0.1
    /// put one) is read positionally, as before.
    pub fn strip(self, data: &[u8]) -> Result<&[u8], TypeError> {
        match data.first() {
            Some(&LAYOUT_MARK) => {
                let (head, rest) = data.split_at(data.len().min(LAYOUT_HEADER_LEN));
                if head == self.header() {
                    Ok(rest)
                } else {
                    Err(TypeError::Layout { found: String::from_utf8_lossy(&head[1..]).into_owned(), expected: self })
                }
            }
            _ => Ok(data),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl Schema {
    /// The wire layout's fingerprint: FNV-1a (64-bit, folded to 32) of a canonical text of the
    /// layout. Stable across pipectl versions: changing it would refuse every record in flight.
    pub fn layout(&self) -> Layout {
        let mut text = format!("pipectl-layout-1\n{}\n", self.delimiter_char());
        for f in self.wire_fields() {
            let ty = FieldType::ALL[f.ty as usize];
            let from = f.from.as_deref().unwrap_or_default();
            text.push_str(&format!("{from}\u{1f}{ty}\u{1f}{}\n", f.format.as_deref().unwrap_or_default()));
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Layout((h >> 32) as u32 ^ h as u32)
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
    #[error("record data is not valid base64")]
    Base64,
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
    /// The record was written for another wire layout (the schema changed since).
    Layout {
        found: String,
        expected: Layout,
    },
    Arity {
        expected: usize,
        got: usize,
    },
    Value {
        field: String,
        value: String,
        reason: &'static str,
    },
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeError::Wire(e) => write!(f, "{e}"),
            TypeError::Layout { found, expected } => write!(
                f,
                "record has wire layout {found:?}, this transform reads layout {expected} \
                 (the schema changed while the record was in the stream); kept whole for replay"
            ),
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
    date: Option<DateFormat>,
}

/// A schema prepared for typing many records: formats parsed and field sources resolved once
/// (at the Lambda's cold start), so each record costs one pass.
#[derive(Debug, Clone)]
pub struct Compiled {
    delimiter: char,
    nulls: Vec<String>,
    /// The longest null marker: a longer value is not one, without comparing.
    longest_null: usize,
    wire_count: usize,
    fields: Vec<CompiledField>,
    layout: Layout,
}

/// Reusable buffers for [`Compiled::write_document_with`]: with one per event, typing a record
/// allocates nothing once the buffers have grown to the largest record.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Where each wire value lies: in the record, or (quoted values) in `unquoted`.
    spans: Vec<Span>,
    unquoted: String,
    typed: Vec<Typed>,
    /// The last arrival time written, as (seconds, nanoseconds) and its RFC 3339 text: records of
    /// one event mostly share their arrival millisecond.
    arrival: Option<((i64, u32), Vec<u8>)>,
}

/// One wire value: a byte range of the record text, or of `Scratch::unquoted` when it was quoted.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    quoted: bool,
}

/// One typed value; strings stay where they are (a [`Span`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Typed {
    Null,
    Str(usize),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(DateTime<Utc>),
    Geo(f64, f64),
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
            let mut key = Vec::new();
            write_json_str(&mut key, &f.name);
            key.push(b':');
            fields.push(CompiledField {
                name: f.name.clone(),
                key,
                ty: f.ty,
                source,
                date: (f.ty == FieldType::Date).then(|| DateFormat::new(f.format.as_deref().unwrap_or("%+"))),
            });
        }
        Compiled {
            delimiter: schema.delimiter_char(),
            nulls: schema.nulls.clone(),
            longest_null: schema.nulls.iter().map(String::len).max().unwrap_or(0),
            wire_count: schema.wire_fields().count(),
            fields,
            layout: schema.layout(),
        }
    }

    /// The wire layout this schema types (see [`Layout`]).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Types one wire record and writes its JSON document to `out` (cleared first).
    pub fn write_document(&self, data: &[u8], arrival: DateTime<Utc>, out: &mut Vec<u8>) -> Result<(), TypeError> {
        let arrival = (arrival.timestamp(), arrival.timestamp_subsec_nanos());
        self.write_document_with(data, arrival, out, &mut Scratch::default())
    }

    /// [`Compiled::write_document`] with reusable buffers; `arrival` is (seconds, nanoseconds)
    /// since the epoch.
    pub fn write_document_with(
        &self,
        data: &[u8],
        arrival: (i64, u32),
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), TypeError> {
        out.clear();
        let data = self.layout.strip(data)?;
        let text = std::str::from_utf8(data).map_err(|e| TypeError::Wire(WireError::Utf8(e.valid_up_to())))?;
        split(text, self.delimiter, &mut scratch.spans, &mut scratch.unquoted).map_err(TypeError::Wire)?;
        if scratch.spans.len() != self.wire_count {
            return Err(TypeError::Arity { expected: self.wire_count, got: scratch.spans.len() });
        }
        let Scratch { spans, unquoted, typed, arrival: last_arrival } = scratch;
        let value = |i: usize| {
            let s = spans[i];
            if s.quoted {
                &unquoted[s.start..s.end]
            } else {
                &text[s.start..s.end]
            }
        };
        // Every wire value is typed before anything is written, so the first error in field
        // order is the one reported.
        typed.clear();
        typed.resize(spans.len(), Typed::Null);
        for f in &self.fields {
            if let Source::Wire(i) = f.source {
                typed[i] = type_one(&self.nulls, self.longest_null, f, value(i), i)?;
            }
        }
        out.push(b'{');
        for (n, f) in self.fields.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&f.key);
            match &f.source {
                Source::Wire(i) => match typed[*i] {
                    Typed::Str(j) => write_json_str(out, value(j).trim()),
                    other => write_typed(out, other),
                },
                Source::Arrival => {
                    let cached = last_arrival.as_ref().filter(|(at, _)| *at == arrival);
                    match cached {
                        Some((_, text)) => out.extend_from_slice(text),
                        None => {
                            let mut text = Vec::with_capacity(32);
                            let at = DateTime::from_timestamp(arrival.0, arrival.1).unwrap_or_default();
                            write_date(&mut text, &at);
                            out.extend_from_slice(&text);
                            *last_arrival = Some((arrival, text));
                        }
                    }
                }
                Source::Geo(a, b) => match (typed[*a], typed[*b]) {
                    (Typed::Float(lat), Typed::Float(lon)) => {
                        if !(-90.0..=90.0).contains(&lat) {
                            return Err(bad(&f.name, &lat.to_string(), "latitude outside -90..90"));
                        }
                        if !(-180.0..=180.0).contains(&lon) {
                            return Err(bad(&f.name, &lon.to_string(), "longitude outside -180..180"));
                        }
                        write_typed(out, Typed::Geo(lat, lon));
                    }
                    _ => out.extend_from_slice(b"null"),
                },
                Source::Null => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// An upper bound of the document's size from the wire record's size (see [`DocBound`]).
    pub fn doc_bound(&self) -> DocBound {
        let (mut per_byte, mut per_byte_printable) = (0, 0);
        // Braces and commas, then each field's key and the most its value can take beyond its
        // share of the wire bytes.
        let mut fixed = 2 + self.fields.len().saturating_sub(1);
        for f in &self.fields {
            fixed += f.key.len();
            fixed += match (&f.source, f.ty) {
                (Source::Wire(_), FieldType::Keyword | FieldType::Text) => {
                    // Each byte escapes to at most 6 (`\u001f`), printable text to 2 (`\"`, `\\`,
                    // `\n`); quotes around it, or `null`.
                    per_byte = per_byte.max(6);
                    per_byte_printable = per_byte_printable.max(2);
                    NULL_LEN
                }
                (Source::Wire(_), FieldType::Integer) => {
                    // Digits and sign never outnumber the input's; `null` from an empty value.
                    per_byte = per_byte.max(1);
                    per_byte_printable = per_byte_printable.max(1);
                    NULL_LEN
                }
                (_, FieldType::Float) => MAX_FLOAT_LEN,
                (_, FieldType::Boolean) => "false".len(),
                (_, FieldType::Date) => MAX_DATE_LEN,
                (_, FieldType::GeoPoint) => MAX_GEO_LEN,
                (_, _) => NULL_LEN,
            };
        }
        DocBound { per_byte, per_byte_printable, fixed }
    }
}

/// `null`.
const NULL_LEN: usize = 4;
/// The longest finite f64 zmij (serde_json's float writer) writes, e.g. `-2.2250738585072014e-308`.
const MAX_FLOAT_LEN: usize = 24;
/// A quoted RFC 3339 date of chrono's widest year: `"+262142-12-31T23:59:59.999999999Z"`.
const MAX_DATE_LEN: usize = 35;
/// `{"lat":…,"lon":…}` with two of the longest floats.
const MAX_GEO_LEN: usize = 15 + 2 * MAX_FLOAT_LEN;

/// An upper bound of a typed document's size for a wire record of `w` bytes:
/// `per_byte × w + fixed` (or `per_byte_printable × w + fixed` when the record's text values
/// hold no control characters, which JSON escapes as six bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocBound {
    pub per_byte: usize,
    pub per_byte_printable: usize,
    pub fixed: usize,
}

/// Splits a record into value spans (the allocation-free form of [`decode_str`], same rules).
fn split(text: &str, delim: char, spans: &mut Vec<Span>, unquoted: &mut String) -> Result<(), WireError> {
    spans.clear();
    unquoted.clear();
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    let bytes = text.as_bytes();
    // Without a quote anywhere, every value is plain: one vectorised pass over the delimiters.
    if delim.is_ascii() && memchr::memchr(b'"', bytes).is_none() {
        let mut start = 0;
        for i in memchr::memchr_iter(delim as u8, bytes) {
            spans.push(Span { start, end: i, quoted: false });
            start = i + 1;
        }
        spans.push(Span { start, end: bytes.len(), quoted: false });
        return Ok(());
    }
    let dlen = delim.len_utf8();
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let start = unquoted.len();
            let mut i = 0;
            let bytes = quoted.as_bytes();
            let end = loop {
                match bytes[i..].iter().position(|&b| b == b'"') {
                    None => return Err(WireError::Unterminated(pos)),
                    Some(q) => {
                        unquoted.push_str(&quoted[i..i + q]);
                        if bytes.get(i + q + 1) == Some(&b'"') {
                            unquoted.push('"');
                            i += q + 2;
                        } else {
                            break i + q + 1;
                        }
                    }
                }
            };
            spans.push(Span { start, end: unquoted.len(), quoted: true });
            let after = &quoted[end..];
            let consumed = 1 + end;
            match after.chars().next() {
                None => return Ok(()),
                Some(c) if c == delim => pos += consumed + dlen,
                Some(_) => return Err(WireError::AfterQuote(pos + consumed)),
            }
        } else {
            match rest.find(delim) {
                None => {
                    spans.push(Span { start: pos, end: text.len(), quoted: false });
                    return Ok(());
                }
                Some(i) => {
                    spans.push(Span { start: pos, end: pos + i, quoted: false });
                    pos += i + dlen;
                }
            }
        }
    }
}

/// Writes `s` as a JSON string, escaping exactly as serde_json does (`\"`, `\\`, `\b`, `\f`,
/// `\n`, `\r`, `\t`, other control characters as `\u00XX`), so documents are byte-identical.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values need no escape: one branch-free pass (vectorised) tells, then one copy.
    if !bytes.iter().fold(false, |esc, &b| esc | (b < 0x20) | (b == b'"') | (b == b'\\')) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_float(out: &mut Vec<u8>, x: f64) {
    // serde_json writes finite floats with zmij; the same call gives the same bytes.
    out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
}

fn write_typed(out: &mut Vec<u8>, v: Typed) {
    match v {
        Typed::Null | Typed::Str(_) => out.extend_from_slice(b"null"),
        Typed::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Typed::Float(x) => write_float(out, x),
        Typed::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Typed::Date(d) => write_date(out, &d),
        Typed::Geo(lat, lon) => {
            out.extend_from_slice(b"{\"lat\":");
            write_float(out, lat);
            out.extend_from_slice(b",\"lon\":");
            write_float(out, lon);
            out.push(b'}');
        }
    }
}

/// Writes a date as a quoted RFC 3339 UTC string, exactly as chrono's
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)` does (checked by a test); years outside
/// 0..=9999 and leap seconds go through chrono itself.
fn write_date(out: &mut Vec<u8>, d: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (d.year(), d.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push(b'"');
        out.extend_from_slice(d.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        out.push(b'"');
        return;
    }
    let two = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    out.push(b'"');
    two(out, year as u32 / 100);
    two(out, year as u32 % 100);
    out.push(b'-');
    two(out, d.month());
    out.push(b'-');
    two(out, d.day());
    out.push(b'T');
    two(out, d.hour());
    out.push(b':');
    two(out, d.minute());
    out.push(b':');
    two(out, d.second());
    let (digits, value) = if nanos == 0 {
        (0, 0)
    } else if nanos % 1_000_000 == 0 {
        (3, nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        (6, nanos / 1_000)
    } else {
        (9, nanos)
    };
    if digits > 0 {
        out.push(b'.');
        let mut buf = [b'0'; 9];
        let mut v = value;
        for i in (0..digits).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..digits]);
    }
    out.extend_from_slice(b"Z\"");
}

fn bad(field: &str, value: &str, reason: &'static str) -> TypeError {
    TypeError::Value { field: field.to_string(), value: value.to_string(), reason }
}

/// Types one wire value (the `index`-th): trimmed; a null marker becomes null whatever the type.
fn type_one(
    nulls: &[String],
    longest_null: usize,
    f: &CompiledField,
    raw: &str,
    index: usize,
) -> Result<Typed, TypeError> {
    let v = raw.trim();
    if v.len() <= longest_null && nulls.iter().any(|n| n == v) {
        return Ok(Typed::Null);
    }
    match f.ty {
        FieldType::Keyword | FieldType::Text => Ok(Typed::Str(index)),
        FieldType::Integer => v.parse::<i64>().map(Typed::Int).map_err(|_| bad(&f.name, raw, "not an integer")),
        FieldType::Float => match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Typed::Float(x)),
            _ => Err(bad(&f.name, raw, "not a finite number")),
        },
        FieldType::Boolean => {
            if v.eq_ignore_ascii_case("true") || v == "1" {
                Ok(Typed::Bool(true))
            } else if v.eq_ignore_ascii_case("false") || v == "0" {
                Ok(Typed::Bool(false))
            } else {
                Err(bad(&f.name, raw, "not a boolean (true/false/1/0)"))
            }
        }
        FieldType::Date => f
            .date
            .as_ref()
            .and_then(|d| d.parse(v))
            .map(Typed::Date)
            .ok_or_else(|| bad(&f.name, raw, "does not match the date format")),
        // A geo_point read from the wire directly is written "lat,lon".
        FieldType::GeoPoint => {
            let mut it = v.split(',').map(|p| p.trim().parse::<f64>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(lat)), Some(Ok(lon)), None)
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Ok(Typed::Geo(lat, lon))
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
        date: (field.ty == FieldType::Date).then(|| DateFormat::new(field.format.as_deref().unwrap_or("%+"))),
    };
    let mut out = Vec::new();
    match type_one(&schema.nulls, usize::MAX, &compiled, raw, 0)? {
        Typed::Str(_) => write_json_str(&mut out, raw.trim()),
        v => write_typed(&mut out, v),
    }
    Ok(serde_json::from_slice(&out).expect("the value writer emits JSON"))
}

/// A date format parsed once: chrono's items, plus a fast parser when the format is made only
/// of numeric year/month/day/hour/minute/second fields, literals and spaces (the common
/// case). The fast parser answers only for clean input it is sure of, with chrono's exact
/// rules; anything else (and every error) goes through chrono, so both give the same result.
#[derive(Debug, Clone)]
struct DateFormat {
    items: Vec<Item<'static>>,
    fast: Option<Vec<FastItem>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FastItem {
    Literal(Box<str>),
    Space,
    /// A number of 1 to `width` digits, after optional whitespace (chrono's `scan::number`).
    Number(Part, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year,
    YearMod100,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl DateFormat {
    fn new(fmt: &str) -> DateFormat {
        let items = StrftimeItems::new(fmt).parse_to_owned().unwrap_or_default();
        let fast = fast_items(&items);
        DateFormat { items, fast }
    }

    fn parse(&self, v: &str) -> Option<DateTime<Utc>> {
        if let Some(d) = self.fast.as_deref().and_then(|f| parse_fast(v, f)) {
            return Some(d);
        }
        parse_date_items(v, &self.items)
    }
}

fn fast_items(items: &[Item<'static>]) -> Option<Vec<FastItem>> {
    use chrono::format::Numeric;
    let mut out = Vec::with_capacity(items.len());
    let mut seen: Vec<Part> = Vec::new();
    for item in items {
        out.push(match item {
            Item::Literal(l) => FastItem::Literal((*l).into()),
            Item::OwnedLiteral(l) => FastItem::Literal(l.clone()),
            Item::Space(_) | Item::OwnedSpace(_) => FastItem::Space,
            Item::Numeric(n, _) => {
                let (part, width) = match n {
                    Numeric::Year => (Part::Year, 4),
                    Numeric::YearMod100 => (Part::YearMod100, 2),
                    Numeric::Month => (Part::Month, 2),
                    Numeric::Day => (Part::Day, 2),
                    Numeric::Hour => (Part::Hour, 2),
                    Numeric::Minute => (Part::Minute, 2),
                    Numeric::Second => (Part::Second, 2),
                    _ => return None,
                };
                // A field given twice must agree in chrono; leave that to chrono.
                if seen.contains(&part) {
                    return None;
                }
                seen.push(part);
                FastItem::Number(part, width)
            }
            _ => return None,
        });
    }
    let has = |p| seen.contains(&p);
    let date = (has(Part::Year) != has(Part::YearMod100)) && has(Part::Month) && has(Part::Day);
    let time = (has(Part::Hour) && has(Part::Minute)) || !(has(Part::Hour) || has(Part::Minute) || has(Part::Second));
    (date && time).then_some(out)
}

/// chrono's whitespace (`str::trim_start`) for ASCII input.
fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t'..=b'\r')).count();
    &s[n..]
}

fn parse_fast(v: &str, items: &[FastItem]) -> Option<DateTime<Utc>> {
    if !v.is_ascii() {
        return None;
    }
    let mut s = v.as_bytes();
    let mut got = [None::<u32>; 7];
    for item in items {
        match item {
            FastItem::Literal(l) => s = s.strip_prefix(l.as_bytes())?,
            FastItem::Space => s = skip_space(s),
            FastItem::Number(part, width) => {
                s = skip_space(s);
                let n = s.iter().take(*width).take_while(|b| b.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                got[*part as usize] = Some(s[..n].iter().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')));
                s = &s[n..];
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    let [year, year_mod_100, month, day, hour, minute, second] = got;
    let year = match (year, year_mod_100) {
        (Some(y), None) => y as i32,
        // chrono: a two-digit year is 19xx from 70, 20xx below.
        (None, Some(y)) if y >= 70 => 1900 + y as i32,
        (None, Some(y)) => 2000 + y as i32,
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(year, month?, day?)?;
    // Out-of-range times (and leap seconds) are chrono's to judge.
    let time = chrono::NaiveTime::from_hms_opt(hour.unwrap_or(0), minute.unwrap_or(0), second.unwrap_or(0))?;
    Some(date.and_time(time).and_utc())
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
    DateFormat::new(fmt).parse(v)
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
    }

    #[test]
    fn a_reordered_schema_refuses_rows_of_the_old_layout() {
        // district and grid are both integers: read positionally, an old row would type
        // cleanly into the swapped fields. The layout header makes it a refusal instead.
        let old = crime_schema();
        let mut new = crime_schema();
        new.fields.swap(2, 4);
        assert_ne!(old.layout(), new.layout());
        let values = ["1/1/06 0:00", "A", "3", "3C", "1115", "D", "2404", "38.5", "-121.3"];
        let mut row = old.layout().header().to_vec();
        encode_record(&values, '|', &mut row);
        let (compiled, mut doc) = (Compiled::new(&new), Vec::new());
        match compiled.write_document(&row, t0(), &mut doc) {
            Err(TypeError::Layout { found, expected }) => {
                assert_eq!((found, expected), (old.layout().to_string(), new.layout()));
            }
            other => panic!("an old-layout row was typed: {other:?} {}", String::from_utf8_lossy(&doc)),
        }
        let reason = compiled.write_document(&row, t0(), &mut doc).unwrap_err().to_string();
        assert!(reason.contains("the schema changed while the record was in the stream"), "{reason}");
        // The old schema types it, into the right fields.
        let typed = type_record(&old, &row, t0()).unwrap();
        assert_eq!((typed["district"].clone(), typed["grid"].clone()), (Value::from(3), Value::from(1115)));
        // A row with the new layout is typed by the new schema.
        let mut row = new.layout().header().to_vec();
        encode_record(&values, '|', &mut row);
        let typed = type_record(&new, &row, t0()).unwrap();
        assert_eq!((typed["grid"].clone(), typed["district"].clone()), (Value::from(3), Value::from(1115)));
        // A truncated header is refused too, never read as data.
        assert!(matches!(compiled.write_document(&row[..5], t0(), &mut doc), Err(TypeError::Layout { .. })));
    }

    #[test]
    fn the_layout_is_the_wire_meaning_only() {
        let s = crime_schema();
        // Pinned: changing the fingerprint's recipe would refuse every record in flight.
        assert_eq!(s.layout().to_string(), "de74f012");
        let mut renamed = crime_schema();
        renamed.fields[1].name = "street".into();
        renamed.nulls.push("-".into());
        assert_eq!(renamed.layout(), s.layout(), "names and null markers do not move values");
        let mut retyped = crime_schema();
        retyped.fields[2].ty = FieldType::Keyword;
        assert_ne!(retyped.layout(), s.layout());
        let mut reformatted = crime_schema();
        reformatted.fields[0].format = Some("%d/%m/%y %H:%M".into());
        assert_ne!(reformatted.layout(), s.layout());
        let mut delimited = crime_schema();
        delimited.delimiter = ",".into();
        assert_ne!(delimited.layout(), s.layout());
        let header = s.layout().header();
        assert_eq!(header[0], LAYOUT_MARK);
        assert_eq!(&header[1..], s.layout().to_string().as_bytes());
    }

    #[test]
    fn the_fast_date_parser_agrees_with_chrono() {
        let formats = ["%m/%d/%y %H:%M", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M", "%Y%m%d%H%M%S", "%y-%m-%d"];
        let alphabet: Vec<char> = "0123456789 /-:.\t".chars().collect();
        let mut rng = Rng(0xD1B54A32D192ED03);
        for fmt in formats {
            let df = DateFormat::new(fmt);
            assert!(df.fast.is_some(), "{fmt} has a fast parser");
            // Well-formed values of every field range, then random strings near the format.
            let mut inputs: Vec<String> = Vec::new();
            for _ in 0..20_000 {
                let (y, m, d) = (rng.next() % 10_000, rng.next() % 14, rng.next() % 33);
                let (h, mi, sec) = (rng.next() % 26, rng.next() % 62, rng.next() % 62);
                let pad = rng.next() % 2 == 0;
                let n = |v: u64| if pad { format!("{v:02}") } else { v.to_string() };
                let text = fmt
                    .replace("%Y", &y.to_string())
                    .replace("%y", &n(y % 100))
                    .replace("%m", &n(m))
                    .replace("%d", &n(d))
                    .replace("%H", &n(h))
                    .replace("%M", &n(mi))
                    .replace("%S", &n(sec));
                inputs.push(text);
                let len = (rng.next() % 20) as usize;
                inputs.push((0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect());
            }
            inputs.extend(
                ["1/1/06 24:00", " 1/1/06 0:00", "1/1/06  0:00", "12/31/06 23:59:60", "2/29/00 1:2"].map(String::from),
            );
            for v in &inputs {
                assert_eq!(df.parse(v), parse_date_items(v, &df.items), "{fmt} on {v:?}");
            }
        }
        assert!(DateFormat::new("%Y-%m-%dT%H:%M:%S%z").fast.is_none());
        assert!(DateFormat::new("%+").fast.is_none());
        assert!(DateFormat::new("%Y-%m-%d %H").fast.is_none(), "an hour without minutes is chrono's to judge");
    }

    #[test]
    fn values_are_written_byte_for_byte_as_serde_json_and_chrono_would() {
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let len = (rng.next() % 12) as usize;
            let mut s: String =
                (0..len).map(|_| char::from_u32((rng.next() % 0x1_0000) as u32 % 0xd800).unwrap_or('x')).collect();
            s.push(char::from((rng.next() % 0x80) as u8));
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
            let x = f64::from_bits(rng.next());
            if x.is_finite() {
                let mut out = Vec::new();
                write_float(&mut out, x);
                assert_eq!(out, serde_json::to_vec(&x).unwrap());
            }
            let secs = (rng.next() % (400 * 366 * 86_400)) as i64 - 100 * 366 * 86_400;
            let nanos = [0, 123_000_000, 123_456_000, 123_456_789][(rng.next() % 4) as usize];
            let d = DateTime::from_timestamp(secs, nanos).unwrap();
            let mut out = Vec::new();
            write_date(&mut out, &d);
            assert_eq!(out, format!("\"{}\"", d.to_rfc3339_opts(SecondsFormat::AutoSi, true)).into_bytes());
        }
        for d in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let mut out = Vec::new();
            write_date(&mut out, &d);
            assert!(out.len() <= MAX_DATE_LEN, "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn date_formats_are_checked() {
        assert!(valid_date_format("%m/%d/%y %H:%M"));
        assert!(!valid_date_format("%Q"));
        assert!(!valid_date_format(""));
    }
}
