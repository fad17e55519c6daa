//! Commands that need no AWS: validate, estimate, invoke (event, CSV, mapping), driven through
//! the real binary; and the article's 7,584 rows through the transform, all Ok and typed.

mod common;

use common::Scratch;
use serde_json::Value;

fn pipectl(args: &[&str]) -> common::Run {
    // Any AWS call would go to a closed port and fail loudly.
    common::run_bin(env!("CARGO_BIN_EXE_pipectl"), args, "http://127.0.0.1:9")
}

#[test]
fn example_stacks_validate() {
    for s in ["stacks/crime-data.yaml", "stacks/two-feeds-es.yaml"] {
        let out = pipectl(&["validate", "-f", s]).ok();
        assert!(out.stdout.contains("valid"), "{}", out.stdout);
    }
}

#[test]
fn bad_spec_reports_file_line_column_and_exits_1() {
    let dir = Scratch::new("cli-bad");
    let text = common::stack_text("crime-data.yaml")
        .replace("retention_hours: 24", "retention_hour: 24")
        .replace("domain: kinesis", "domain: K");
    let f = dir.write("bad.yaml", &text);
    let out = pipectl(&["validate", "-f", &f]).code(1);
    assert!(
        out.stderr.contains("bad.yaml:24:44: error:") && out.stderr.contains("did you mean the key `retention_hours`?"),
        "{}",
        out.stderr
    );
    let f = dir.write("empty.yaml", "");
    let out = pipectl(&["validate", "-f", &f]).code(1);
    assert!(out.stderr.contains("empty.yaml:1:1: error: the spec is empty"), "{}", out.stderr);
    let out = pipectl(&["validate", "-f", "/nonexistent/stack.yaml"]).code(1);
    assert!(out.stderr.contains("reading spec file /nonexistent/stack.yaml"), "{}", out.stderr);
}

#[test]
fn estimate_shows_its_reasoning() {
    let out = pipectl(&["estimate", "--record-kb", "2", "--records-per-sec", "1000"]).ok();
    assert!(out.stdout.contains("Estimated shards: 2"), "{}", out.stdout);
    let out = pipectl(&["estimate", "--record-kb", "1", "--records-per-sec", "1000", "--consumers", "5"]).ok();
    assert!(out.stdout.contains("Estimated shards: 3"), "{}", out.stdout);
    pipectl(&["estimate", "--record-kb", "0", "--records-per-sec", "1"]).code(2);
    // The article's ~0.1 KB rows, in bytes: the record limit binds without aggregation only.
    let out = pipectl(&["estimate", "--record-bytes", "110", "--rows-per-sec", "9000"]).ok();
    assert!(out.stdout.contains("Aggregation saves 8 shard(s) (1 instead of 9)"), "{}", out.stdout);
}

#[test]
fn estimate_measures_a_csv_sample_as_produce_encodes_it() {
    let csv = common::data_csv();
    let out = pipectl(&[
        "estimate",
        "-f",
        "stacks/crime-data.yaml",
        "--pipeline",
        "crime",
        "--csv",
        csv.to_str().unwrap(),
        "--rows-per-sec",
        "8000",
    ])
    .ok();
    assert!(out.stdout.contains("measured on 7584 rows"), "{}", out.stdout);
    // Rows carry the 9-byte layout header: ~117 B each, so 8,000 rows/s is just under one
    // shard's 1 MiB/s when aggregated, and 8 shards by the record limit when not.
    assert!(out.stdout.contains("write records:   8000 rec/s / 1000 rec/s per shard -> 8 shard(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("Aggregation saves 7 shard(s) (1 instead of 8)"), "{}", out.stdout);
    // A sample needs the spec and the pipeline.
    pipectl(&["estimate", "--csv", csv.to_str().unwrap(), "--rows-per-sec", "1"]).code(2);
}

#[test]
fn invoke_csv_types_every_article_row() {
    let csv = common::data_csv();
    let out = pipectl(&[
        "invoke",
        "-f",
        "stacks/crime-data.yaml",
        "--pipeline",
        "crime",
        "--csv",
        csv.to_str().unwrap(),
        "--json",
    ])
    .ok();
    assert!(out.stderr.contains("7584 rows: 7584 Ok, 0 failed"), "{}", out.stderr);
    let docs: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 7584);
    for d in &docs {
        assert!(d["crime_time"].as_str().unwrap().starts_with("2006-01-"), "{d}");
        assert!(d["district"].is_i64() && d["grid"].is_i64() && d["crime_id"].is_i64(), "{d}");
        let (lat, lon) = (d["latitude"].as_f64().unwrap(), d["longitude"].as_f64().unwrap());
        assert_eq!(d["location"]["lat"].as_f64().unwrap(), lat);
        assert_eq!(d["location"]["lon"].as_f64().unwrap(), lon);
        assert!((38.0..39.0).contains(&lat) && (-122.0..-121.0).contains(&lon), "{d}");
        assert!(d["load_time"].as_str().unwrap().ends_with('Z'));
        // The article's padded beat ("3C        ") is trimmed; a blank one is null.
        match &d["beat"] {
            Value::String(b) => assert!(!b.is_empty() && b.trim() == b, "{d}"),
            other => assert!(other.is_null(), "{d}"),
        }
    }
    assert_eq!(docs[0]["address"], "3108 OCCIDENTAL DR");
    assert_eq!(docs[0]["description"], "10851(A)VC TAKE VEH W/O OWNER");
}

#[test]
fn invoke_csv_reports_each_failing_row() {
    let dir = Scratch::new("cli-rows");
    let text = std::fs::read_to_string(common::data_csv()).unwrap();
    let mut lines: Vec<String> = text.lines().take(6).map(str::to_string).collect();
    lines[2] = lines[2].replacen(",5,", ",five,", 1);
    lines[4] = lines[4].replace("38.", "98.");
    let f = dir.write("rows.csv", &(lines.join("\n") + "\n"));
    let out = pipectl(&["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", &f]).code(1);
    assert!(
        out.stdout.contains("row 2 (line 3): failed: field `district`: not an integer: \"five\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("row 4 (line 5): failed: field `location`: latitude outside -90..90"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("5 rows: 3 Ok, 2 failed"), "{}", out.stderr);
}

#[test]
fn invoke_event_prints_the_response() {
    let dir = Scratch::new("cli-event");
    let ev = r#"{"invocationId":"i","records":[{"recordId":"a","approximateArrivalTimestamp":1136073600000,
        "data":"MS8xLzA2IDA6MDB8QXwzfDNDfDExMTV8RHwyNDA0fDM4LjV8LTEyMS4z"}]}"#;
    let f = dir.write("event.json", ev);
    let out = pipectl(&["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--event", &f]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["records"][0]["recordId"], "a");
    assert_eq!(v["records"][0]["result"], "Ok");
    let f = dir.write("bad.json", "{\"nope\": 1}");
    let out = pipectl(&["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--event", &f]).code(1);
    assert!(out.stderr.contains("is not a Firehose transformation event"), "{}", out.stderr);
}

#[test]
fn invoke_mapping_has_geo_point() {
    let out = pipectl(&["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--mapping"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["index_patterns"][0], "crime-data");
    assert_eq!(v["template"]["mappings"]["properties"]["location"]["type"], "geo_point");
    assert_eq!(v["template"]["mappings"]["properties"]["crime_time"]["type"], "date");
}

#[test]
fn unknown_pipeline_is_an_error() {
    let out = pipectl(&["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "nope", "--mapping"]).code(1);
    assert!(out.stderr.contains("no pipeline named \"nope\""), "{}", out.stderr);
}

#[test]
fn standalone_producer_takes_the_same_options() {
    let csv = common::data_csv();
    let out = common::run_bin(
        env!("CARGO_BIN_EXE_pipectl-producer"),
        &["-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", csv.to_str().unwrap(), "--dry-run"],
        "http://127.0.0.1:9",
    )
    .ok();
    let read = out.stdout.lines().find(|l| l.starts_with("rows read:")).unwrap_or_default();
    assert_eq!(read.split_whitespace().last(), Some("7584"), "{}", out.stdout);
    let out = common::run_bin(env!("CARGO_BIN_EXE_pipectl-producer"), &["--help"], "http://127.0.0.1:9").ok();
    for opt in ["--partition-key", "--max-retries", "--failed-out", "--endpoint-url", "--concurrency"] {
        assert!(out.stdout.contains(opt), "{opt} missing from:\n{}", out.stdout);
    }
}

/// A reader that stops early (`pipectl invoke … --json | head -1`) ends the command quietly with
/// status 0, as for any Unix filter; no panic on the broken pipe.
#[test]
fn invoke_output_piped_into_a_reader_that_stops_early() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let csv = common::data_csv();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipectl"))
        .args(["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--json", "--csv"])
        .arg(&csv)
        .current_dir(common::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"crime_time\""), "{first}");
    // The reader is gone (dropped above); the rest of the 7,584 documents meet a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
