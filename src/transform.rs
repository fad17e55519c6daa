//! The Firehose data-transformation handler: one event (JSON bytes) in, one response (JSON
//! bytes) out, every recordId answered in order, and the response never over Lambda's payload
//! limit. Pure (the caller supplies the schema), shared by the Lambda `bootstrap` and `pipectl
//! invoke`, so what is tried locally is exactly what runs in Lambda.
//!
//! It reads and writes Firehose's JSON itself rather than through `aws_lambda_events`: the
//! event is parsed borrowing from the request body, each record's data is base64-decoded into
//! one reused buffer, typed into another, and base64-encoded straight into the response. That
//! is what makes a record cost well under a microsecond (README, Measurements).

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use crate::schema::{write_json_str, Compiled, Schema, Scratch, TypeError, WireError};

/// The environment variable that carries the pipeline's schema (compact JSON) to the Lambda.
/// Chosen over a file in the zip so one zip serves every pipeline and a schema change shows
/// in `plan` as an environment change; `validate` rejects a schema over Lambda's 4 KB limit.
pub const SCHEMA_ENV: &str = "PIPECTL_SCHEMA";
/// The schema's wire layout fingerprint ([`crate::schema::Layout`]), beside the schema: `plan`
/// shows a layout change as a change of this variable, and the Lambda refuses to start if it
/// does not match the schema it was given.
pub const LAYOUT_ENV: &str = "PIPECTL_LAYOUT";

pub const RESULT_OK: &str = "Ok";
pub const RESULT_FAILED: &str = "ProcessingFailed";

/// Lambda: "Invocation payload (request and response): 6 MB each for synchronous" (Lambda
/// quotas page). Firehose invokes the transform synchronously, and a response over the limit
/// fails the whole invocation: Firehose retries every record, then sends them all to the failed
/// prefix. Lambda's error message puts the limit at 6,291,556 bytes; this stays at 6 MiB.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// Kinesis: a record's data is at most 1 MiB (so is a Firehose record).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Firehose record ids are 56-64 ASCII characters in the events seen (Kinesis sources); the
/// size bounds assume at most this many bytes. At run time the real ids are counted.
pub const MAX_RECORD_ID: usize = 128;

/// A record that could not be typed: its position in the event, its id and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub position: usize,
    pub record_id: String,
    pub reason: TypeError,
}

impl fmt::Display for Failure {
    /// The one log line per failed record: position, id and reason, never the payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} ({}) failed: {}", self.position, self.record_id, self.reason)
    }
}

/// Records answered ProcessingFailed only to keep the response under the payload limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The response's size had every typed record been sent.
    pub would_be: usize,
    /// How many records were failed for it, and their positions in the event.
    pub positions: Vec<usize>,
}

/// The answer to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The response body, as Firehose expects it.
    pub response: Vec<u8>,
    pub records: usize,
    /// Records that could not be typed (ProcessingFailed, original data).
    pub failures: Vec<Failure>,
    /// Typed records failed to keep the response within the limit, if any.
    pub oversize: Option<Oversize>,
}

impl Outcome {
    pub fn ok(&self) -> usize {
        self.records - self.failures.len() - self.oversize.as_ref().map_or(0, |o| o.positions.len())
    }
}

impl fmt::Display for Outcome {
    /// The invocation's summary line; with oversize records, the counts that explain them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "processed {} records: {} ok, {} failed", self.records, self.ok(), self.records - self.ok())?;
        if let Some(o) = &self.oversize {
            write!(
                f,
                "; the response would have been {} bytes, over Lambda's {RESPONSE_LIMIT}-byte limit: {} typed \
                 records answered ProcessingFailed with their original data instead ({} bytes sent)",
                o.would_be,
                o.positions.len(),
                self.response.len()
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a Firehose transformation event: {0}")]
    Json(#[from] serde_json::Error),
}

/// The parts of a Firehose transformation event the transform reads; the rest
/// (`kinesisRecordMetadata`, ARNs, …) is skipped without being stored.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    records: Vec<InRecord<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InRecord<'a> {
    #[serde(borrow)]
    record_id: Cow<'a, str>,
    /// Milliseconds since the epoch.
    #[serde(default, deserialize_with = "millis")]
    approximate_arrival_timestamp: i64,
    /// Base64; borrowed unless the JSON escapes a character of it (`\/`).
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Firehose sends the arrival time as an integer; a float is accepted too.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Millis;
    impl serde::de::Visitor<'_> for Millis {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds since the epoch")
        }
        fn visit_i64<E>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(E::custom)
        }
        fn visit_f64<E>(self, v: f64) -> Result<i64, E> {
            Ok(v as i64)
        }
    }
    d.deserialize_any(Millis)
}

/// Transforms every record of the event `json`. A record that cannot be typed is answered
/// `ProcessingFailed` with its original data (Firehose then routes it to the failed-documents
/// prefix) and reported in the failures; it never fails the invocation. If the response would
/// exceed `limit` bytes, as few typed records as possible are answered the same way instead
/// (see [`Oversize`]). Only an event that is not a Firehose event at all is an error.
pub fn process(schema: &Compiled, json: &[u8], limit: usize) -> Result<Outcome, EventError> {
    let event: Event<'_> = serde_json::from_slice(json)?;
    let records = &event.records;
    // The article's rows answer ≈2.6 bytes per byte of event (README); reserve once.
    let mut out = Vec::with_capacity(json.len() * 3 + 64);
    out.extend_from_slice(b"{\"records\":[");
    let mut ends = Vec::with_capacity(records.len());
    let mut failures = Vec::new();
    let (mut wire, mut doc, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
    for (position, r) in records.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        wire.clear();
        let typed = match STANDARD.decode_vec(r.data.as_bytes(), &mut wire) {
            Ok(()) => {
                schema.write_document_with(&wire, arrival(r.approximate_arrival_timestamp), &mut doc, &mut scratch)
            }
            Err(_) => Err(TypeError::Wire(WireError::Base64)),
        };
        match typed {
            Ok(()) => write_ok(&mut out, &r.record_id, &doc),
            Err(reason) => {
                write_failed(&mut out, &r.record_id, &r.data);
                failures.push(Failure { position, record_id: r.record_id.clone().into_owned(), reason });
            }
        }
        ends.push(out.len());
    }
    out.extend_from_slice(b"]}");
    let mut outcome = Outcome { response: out, records: records.len(), failures, oversize: None };
    if outcome.response.len() > limit {
        shrink(&mut outcome, records, &ends, limit);
    }
    Ok(outcome)
}

/// (seconds, nanoseconds) of an arrival time in milliseconds.
fn arrival(ms: i64) -> (i64, u32) {
    (ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as u32)
}

fn write_ok(out: &mut Vec<u8>, id: &str, doc: &[u8]) {
    out.extend_from_slice(b"{\"recordId\":");
    write_json_str(out, id);
    out.extend_from_slice(b",\"result\":\"Ok\",\"data\":\"");
    base64_encode(out, doc);
    out.extend_from_slice(b"\"}");
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two base64 characters of every 12-bit value.
static BASE64_PAIRS: [[u8; 2]; 4096] = {
    let mut t = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = [BASE64[i >> 6], BASE64[i & 63]];
        i += 1;
    }
    t
};

/// Appends standard padded base64 (RFC 4648, as Firehose expects) of `input`: two table
/// lookups per 3 bytes. It was the largest single cost of a record with the base64 crate
/// (14% of the instructions of `process`, callgrind); the output is the same (tested).
fn base64_encode(out: &mut Vec<u8>, input: &[u8]) {
    let at = out.len();
    out.resize(at + input.len().div_ceil(3) * 4, b'=');
    let dst = &mut out[at..];
    let whole = input.len() / 3;
    for (d, s) in dst.chunks_exact_mut(4).zip(input.chunks_exact(3)) {
        let n = (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]);
        let (a, b) = (BASE64_PAIRS[n >> 12], BASE64_PAIRS[n & 0xfff]);
        d.copy_from_slice(&[a[0], a[1], b[0], b[1]]);
    }
    // The last 1 or 2 bytes: 2 or 3 characters, then `=` (already there).
    let rest = &input[whole * 3..];
    if !rest.is_empty() {
        let n = (usize::from(rest[0]) << 16) | (usize::from(rest.get(1).copied().unwrap_or(0)) << 8);
        let d = &mut dst[whole * 4..];
        d[0] = BASE64[n >> 18];
        d[1] = BASE64[(n >> 12) & 63];
        if rest.len() == 2 {
            d[2] = BASE64[(n >> 6) & 63];
        }
    }
}

/// A failed record carries its data back exactly as it came (still base64).
fn write_failed(out: &mut Vec<u8>, id: &str, data: &str) {
    out.extend_from_slice(b"{\"recordId\":");
    write_json_str(out, id);
    out.extend_from_slice(b",\"result\":\"ProcessingFailed\",\"data\":");
    write_json_str(out, data);
    out.push(b'}');
}

/// Brings the response under `limit` by answering typed records ProcessingFailed with their
/// original data, largest saving first: that fails the fewest records. A failed record still
/// costs its original data (4/3 of its bytes, base64) and its id, so failing every record gives
/// a response smaller than the request, which Lambda already accepted under the same limit.
fn shrink(outcome: &mut Outcome, records: &[InRecord<'_>], ends: &[usize], limit: usize) {
    let starts = |i: usize| if i == 0 { b"{\"records\":[".len() } else { ends[i - 1] + 1 };
    let failed_already: std::collections::HashSet<usize> = outcome.failures.iter().map(|f| f.position).collect();
    let mut scratch = Vec::new();
    let mut savings: Vec<(usize, usize)> = (0..records.len())
        .filter(|i| !failed_already.contains(i))
        .map(|i| {
            scratch.clear();
            write_failed(&mut scratch, &records[i].record_id, &records[i].data);
            ((ends[i] - starts(i)).saturating_sub(scratch.len()), i)
        })
        .collect();
    // Largest saving first; ties in event order, so the choice is deterministic.
    savings.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let would_be = outcome.response.len();
    let mut size = would_be;
    let mut fail = vec![false; records.len()];
    let mut positions = Vec::new();
    for (saving, i) in savings {
        if size <= limit || saving == 0 {
            break;
        }
        size -= saving;
        fail[i] = true;
        positions.push(i);
    }
    positions.sort_unstable();
    let old = std::mem::take(&mut outcome.response);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"{\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if fail[i] {
            write_failed(&mut out, &r.record_id, &r.data);
        } else {
            out.extend_from_slice(&old[starts(i)..ends[i]]);
        }
    }
    out.extend_from_slice(b"]}");
    debug_assert_eq!(out.len(), size);
    outcome.response = out;
    outcome.oversize = Some(Oversize { would_be, positions });
}

/// Reads the schema from the Lambda environment value and prepares it.
pub fn schema_from_env(value: &str) -> Result<Compiled, serde_json::Error> {
    serde_json::from_str::<Schema>(value).map(|s| Compiled::new(&s))
}

/// Builds a Firehose event (JSON) from raw wire records, ids `00000000000000000000`, … (used
/// by `invoke --csv`, the benchmark and tests).
pub fn event_json(records: &[Vec<u8>], arrival_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() * 4 / 3 + 96).sum::<usize>() + 64);
    out.extend_from_slice(b"{\"invocationId\":\"pipectl-local\",\"records\":[");
    for (i, data) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!("{{\"recordId\":\"{i:020}\",\"approximateArrivalTimestamp\":{arrival_ms},\"data\":\"").as_bytes(),
        );
        out.extend_from_slice(STANDARD.encode(data).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// How large a response can get for a schema: per record, at most `per_byte` × its wire bytes
/// + `per_record` (`per_byte_printable` when its text values hold no control characters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseBound {
    pub per_byte: f64,
    pub per_byte_printable: f64,
    pub per_record: usize,
}

/// `{"recordId":,"result":"ProcessingFailed","data":""},` around a record's id and data.
const RECORD_FRAMING: usize = r#"{"recordId":"","result":"ProcessingFailed","data":""},"#.len();
/// `{"records":[` … `]}`.
const ENVELOPE: usize = r#"{"records":[]}"#.len();

/// The worst-case expansion of a row, wire bytes → response bytes: the typed document's bound
/// ([`crate::schema::DocBound`]) through base64 (4 bytes per 3, rounded up), plus the record's
/// framing and id. A ProcessingFailed record costs 4/3 of its wire bytes, within the bound.
pub fn response_bound(schema: &Compiled) -> ResponseBound {
    let doc = schema.doc_bound();
    let b64 = |x: usize| x as f64 * 4.0 / 3.0;
    ResponseBound {
        per_byte: b64(doc.per_byte.max(1)),
        per_byte_printable: b64(doc.per_byte_printable.max(1)),
        // +2: base64 pads the last group to 4 bytes.
        per_record: (b64(doc.fixed + 2)).ceil() as usize + RECORD_FRAMING + MAX_RECORD_ID,
    }
}

impl ResponseBound {
    /// The most a response can take for `bytes` of wire data in records of the maximum size
    /// (1 MiB, so the per-record part is smallest): `printable` for text without control
    /// characters.
    pub fn buffer(&self, bytes: usize, printable: bool) -> usize {
        let per_byte = if printable { self.per_byte_printable } else { self.per_byte };
        let records = bytes.div_ceil(MAX_RECORD_BYTES);
        (per_byte * bytes as f64).ceil() as usize + records * self.per_record + ENVELOPE
    }
}

impl fmt::Display for ResponseBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "response ≤ {:.1}× wire bytes + {} B per record ({:.1}× for text without control characters)",
            self.per_byte, self.per_record, self.per_byte_printable
        )
    }
}

/// What `plan` says when a function's wire layout changes (see README, "Schema changes while
/// records are in flight"). `headers`: the deployed version already had producers put the
/// layout in each record (it set [`LAYOUT_ENV`]).
pub fn layout_change_note(before: &str, after: &str, headers: bool) -> String {
    if headers {
        format!(
            "wire layout {before} -> {after}: records already in the stream with layout {before} (up to its \
             retention) are refused by the new transform (ProcessingFailed, original data kept) and land in the \
             failed prefix for replay; none is typed into the wrong fields"
        )
    } else {
        format!(
            "wire layout {before} -> {after}: records already in the stream carry no layout (written before pipectl \
             put one in each record) and will be read positionally with the new layout, into the wrong fields if \
             they are old rows; let the stream drain (stop producing, wait for the delivery) before applying"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::crime_schema;
    use serde_json::Value;

    fn results(o: &Outcome) -> Vec<(String, String, Vec<u8>)> {
        let v: Value = serde_json::from_slice(&o.response).unwrap();
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let data = STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
                (r["recordId"].as_str().unwrap().to_string(), r["result"].as_str().unwrap().to_string(), data)
            })
            .collect()
    }

    fn run(records: &[Vec<u8>], limit: usize) -> Outcome {
        process(&Compiled::new(&crime_schema()), &event_json(records, 1_136_073_600_000), limit).unwrap()
    }

    const ROW: &[u8] = b"1/1/06 0:00|A|3|3C|1115|D|2404|38.5|-121.3";

    #[test]
    fn answers_every_record_in_order() {
        let recs = vec![ROW.to_vec(), b"broken".to_vec(), b"1/1/06 0:00|\"B|C\"|4|3C|1115|D|2404|38.5|-121.3".to_vec()];
        let o = run(&recs, RESPONSE_LIMIT);
        let got = results(&o);
        let kinds: Vec<&str> = got.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(kinds, ["Ok", "ProcessingFailed", "Ok"]);
        let ids: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["00000000000000000000", "00000000000000000001", "00000000000000000002"]);
        assert_eq!(o.failures.len(), 1);
        assert_eq!(o.failures[0].position, 1);
        assert_eq!(o.ok(), 2);
        // The failed record keeps its original bytes.
        assert_eq!(got[1].2, b"broken");
        let doc: Value = serde_json::from_slice(&got[2].2).unwrap();
        assert_eq!(doc["address"], "B|C");
        assert_eq!(doc["load_time"], "2006-01-01T00:00:00Z");
        assert_eq!(o.to_string(), "processed 3 records: 2 ok, 1 failed");
    }

    #[test]
    fn base64_is_the_standard_one() {
        let mut rng = crate::schema::tests::Rng(99);
        for len in 0..300 {
            let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut out = b"x".to_vec();
            base64_encode(&mut out, &input);
            assert_eq!(out[1..], *STANDARD.encode(&input).as_bytes(), "{len}");
        }
    }

    #[test]
    fn response_is_what_firehose_expects() {
        let o = run(&[b"x".to_vec()], RESPONSE_LIMIT);
        assert_eq!(
            String::from_utf8(o.response).unwrap(),
            r#"{"records":[{"recordId":"00000000000000000000","result":"ProcessingFailed","data":"eA=="}]}"#
        );
    }

    #[test]
    fn parses_a_real_firehose_event() {
        let json = r#"{"invocationId":"inv","deliveryStreamArn":"arn:aws:firehose:eu-west-1:1:deliverystream/f",
            "sourceKinesisStreamArn":"arn:aws:kinesis:eu-west-1:1:stream/s","region":"eu-west-1",
            "records":[{"recordId":"49546986683135544286507457936321625675700192471156785154",
            "approximateArrivalTimestamp":1495072949453,
            "kinesisRecordMetadata":{"sequenceNumber":"1","subsequenceNumber":0,"partitionKey":"k","shardId":"shardId-000000000000","approximateArrivalTimestamp":1495072949453},
            "data":"MS8xLzA2IDA6MDB8QXwzfDNDfDExMTV8RHwyNDA0fDM4LjV8LTEyMS4z"},
            {"recordId":"2","approximateArrivalTimestamp":1495072949453.0,"data":"not base64!"},
            {"recordId":"3","approximateArrivalTimestamp":1495072949453,"data":"MS8xLzA2IDA6MDB8QXwzfDNDfDExMTV8RHwyNDA0fDM4LjV8LTEyMS4z\/"}]}"#;
        let o = process(&Compiled::new(&crime_schema()), json.as_bytes(), RESPONSE_LIMIT).unwrap();
        let v: Value = serde_json::from_slice(&o.response).unwrap();
        let doc: Value =
            serde_json::from_slice(&STANDARD.decode(v["records"][0]["data"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(doc["load_time"], "2017-05-18T02:02:29.453Z");
        // Undecodable data is one failed record, answered with the data as it came.
        assert_eq!(v["records"][1]["result"], "ProcessingFailed");
        assert_eq!(v["records"][1]["data"], "not base64!");
        assert_eq!(o.failures[0].reason, TypeError::Wire(WireError::Base64));
        // An escaped character in the data (JSON allows `\/`) is read like any other.
        assert_eq!(v["records"][2]["result"], "ProcessingFailed");
        assert!(process(&Compiled::new(&crime_schema()), b"{\"nope\":1}", RESPONSE_LIMIT).is_err());
    }

    /// A text value of control characters: each becomes six bytes of JSON, then base64.
    fn control_row(len: usize) -> Vec<u8> {
        let mut row = b"1/1/06 0:00|".to_vec();
        row.extend(std::iter::repeat_n(0x01u8, len));
        row.extend_from_slice(b"|3|3C|1115|D|2404|38.5|-121.3");
        row
    }

    #[test]
    fn a_response_at_the_limit_is_sent_whole() {
        let recs = vec![control_row(100_000), ROW.to_vec()];
        let full = run(&recs, RESPONSE_LIMIT);
        assert!(full.oversize.is_none());
        // Exactly at the limit: nothing changes.
        let at = run(&recs, full.response.len());
        assert_eq!(at, full);
        assert_eq!(results(&at).iter().filter(|r| r.1 == "Ok").count(), 2);
    }

    #[test]
    fn a_response_over_the_limit_fails_only_the_records_it_must() {
        // One row of control characters (~800 KB of response for 100 KB of wire) among small
        // rows: one byte over the limit fails that row alone, with its original data.
        let big = control_row(100_000);
        let recs = vec![ROW.to_vec(), big.clone(), ROW.to_vec(), b"broken".to_vec()];
        let full = run(&recs, RESPONSE_LIMIT);
        let o = run(&recs, full.response.len() - 1);
        assert!(o.response.len() < full.response.len() - 1);
        let got = results(&o);
        let kinds: Vec<&str> = got.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(kinds, ["Ok", "ProcessingFailed", "Ok", "ProcessingFailed"]);
        assert_eq!(got[1].2, big, "the oversize record carries its original data");
        assert_eq!(o.oversize.as_ref().unwrap().positions, [1]);
        assert_eq!(o.failures.len(), 1, "the broken row is a typing failure, not a size one");
        assert_eq!(o.ok(), 2);
        assert!(o.to_string().contains("1 typed records answered ProcessingFailed"), "{o}");
    }

    #[test]
    fn a_buffer_of_maximum_size_rows_stays_under_6_mb() {
        // 3 MiB of wire data (the processor's largest buffer) in 1 MiB rows of printable text
        // whose every byte escapes to two (`\` → `\\`): ≈ 8.4 MB of response if sent whole.
        let row = |c: u8| {
            let mut r = b"1/1/06 0:00|".to_vec();
            let rest = b"|3|3C|1115|D|2404|38.5|-121.3";
            r.extend(std::iter::repeat_n(c, MAX_RECORD_BYTES - r.len() - rest.len()));
            r.extend_from_slice(rest);
            r
        };
        let recs = vec![row(b'\\'), row(b'a'), row(b'\\')];
        assert!(recs.iter().all(|r| r.len() == MAX_RECORD_BYTES));
        let o = run(&recs, RESPONSE_LIMIT);
        assert!(o.response.len() <= RESPONSE_LIMIT, "{}", o.response.len());
        let o2 = o.oversize.as_ref().unwrap();
        assert!(o2.would_be > RESPONSE_LIMIT);
        // Failing one escaped row is enough; the bound predicted the overflow.
        assert_eq!(o2.positions.len(), 1);
        let bound = response_bound(&Compiled::new(&crime_schema()));
        assert!(bound.buffer(3 * MAX_RECORD_BYTES, true) >= o2.would_be);
        let kinds: Vec<String> = results(&o).into_iter().map(|r| r.1).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "Ok").count(), 2);
    }

    #[test]
    fn the_bound_holds_for_adversarial_rows() {
        let s = Compiled::new(&crime_schema());
        let bound = response_bound(&s);
        let mut rng = crate::schema::tests::Rng(7);
        for len in [0usize, 1, 10, 100, 1000] {
            for _ in 0..200 {
                let alphabet = b"\x01\x1f\"\\\n a9.-|";
                let text: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
                let mut row = b"12/31/99 23:59|".to_vec();
                let mut quoted = vec![b'"'];
                for &b in &text {
                    quoted.push(b);
                    if b == b'"' {
                        quoted.push(b'"');
                    }
                }
                quoted.push(b'"');
                row.extend_from_slice(&quoted);
                row.extend_from_slice(b"|-9223372036854775808|");
                row.extend_from_slice(&quoted);
                row.extend_from_slice(b"|1|");
                row.extend_from_slice(&quoted);
                row.extend_from_slice(b"|1|-2.2250738585072014e-308|1e-300");
                let latest = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
                let o = process(&s, &event_json(&[row.clone()], latest), RESPONSE_LIMIT).unwrap();
                assert!(o.failures.is_empty(), "{:?}", o.failures);
                let id_slack = MAX_RECORD_ID - 20;
                let limit = (bound.per_byte * row.len() as f64) as usize + bound.per_record + ENVELOPE;
                assert!(o.response.len() + id_slack <= limit, "{} > {limit} for {len}", o.response.len());
            }
        }
    }

    #[test]
    fn the_crime_schema_bound() {
        let b = response_bound(&Compiled::new(&crime_schema()));
        assert_eq!((b.per_byte, b.per_byte_printable), (8.0, 8.0 / 3.0));
        let mib = MAX_RECORD_BYTES;
        // Printable text: 1 and 2 MiB fit in 6 MiB, 3 MiB does not.
        assert!(b.buffer(2 * mib, true) <= RESPONSE_LIMIT);
        assert!(b.buffer(3 * mib, true) > RESPONSE_LIMIT);
        assert!(b.to_string().starts_with("response ≤ 8.0× wire bytes + "), "{b}");
    }
}
