//! The producer against a private moto server: the article's 7,584 rows arrive byte-exact, spread
//! over the shards, plain or KPL-aggregated (checked with AWS's own deaggregator); through a
//! fault-injecting proxy (failed records, connections dropped before forwarding, replies dropped
//! or stalled after the records were stored) nothing is lost, duplicates come only from unknown
//! outcomes and are counted, and per-key order holds; an exhausted retry budget and Ctrl-C end
//! non-zero with exactly the rows not delivered on disk.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::{Moto, Scratch};
use pipectl::producer::aggregate;
use pipectl::testkit::{put_records_proxy, read_stream, After, Before, PutRecordsHooks};
use serde_json::Value;

async fn create_stream(m: &Moto, name: &str, shards: i32) {
    let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
    k.create_stream().stream_name(name).shard_count(shards).send().await.unwrap();
}

/// Every record in the stream, per shard, read back with GetRecords from TRIM_HORIZON.
async fn read_all(m: &Moto, stream: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    read_stream(&aws_sdk_kinesis::Client::new(&m.sdk().await), stream).await
}

/// The user records in the stream, per shard: aggregated records decoded (pipectl's decoder),
/// plain ones as they are.
fn user_records(got: &BTreeMap<String, Vec<Vec<u8>>>) -> BTreeMap<String, Vec<Vec<u8>>> {
    got.iter()
        .map(|(s, recs)| {
            let rows = recs
                .iter()
                .flat_map(|r| match aggregate::decode(r) {
                    Ok(users) => users.into_iter().map(|(_, d)| d).collect(),
                    Err(_) => vec![r.clone()],
                })
                .collect();
            (s.clone(), rows)
        })
        .collect()
}

/// What the producer must send for each data row of the fixture.
fn expected_wire() -> Vec<Vec<u8>> {
    expected_wire_of(&common::data_csv())
}

fn expected_wire_of(path: &std::path::Path) -> Vec<Vec<u8>> {
    let spec = pipectl::spec::parse("s.yaml", &common::stack_text("crime-data.yaml")).unwrap().spec;
    let schema = &spec.pipelines[0].schema;
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.byte_headers().unwrap().clone();
    let enc = pipectl::producer::encode::RowEncoder::new(schema, &headers, None).unwrap();
    rdr.byte_records()
        .enumerate()
        .map(|(i, r)| {
            let mut out = Vec::new();
            enc.encode(i as u64 + 1, &r.unwrap(), &mut out).unwrap();
            out
        })
        .collect()
}

fn produce(endpoint: &str, csv: &str, extra: &[&str]) -> common::Run {
    let mut args = vec!["produce", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", csv];
    args.extend_from_slice(extra);
    common::run_bin(env!("CARGO_BIN_EXE_pipectl"), &args, endpoint)
}

fn assert_exactly_once(got: &BTreeMap<String, Vec<Vec<u8>>>, want: &[Vec<u8>]) {
    let mut all: Vec<&Vec<u8>> = got.values().flatten().collect();
    assert_eq!(all.len(), want.len(), "record count");
    all.sort();
    let mut want_sorted: Vec<&Vec<u8>> = want.iter().collect();
    want_sorted.sort();
    assert!(all == want_sorted, "the records in the stream are not exactly the rows, once each");
}

/// The value after `label` on the report line starting with it.
fn figure(out: &str, label: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no `{label}` in:\n{out}"));
    line[label.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn article_rows_arrive_exactly_once_spread_over_shards() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 4).await;
    let out = produce(&m.endpoint(), common::data_csv().to_str().unwrap(), &["--no-aggregate"]).ok();
    assert_eq!(figure(&out.stdout, "rows delivered:"), 7584, "{}", out.stdout);
    assert_eq!(figure(&out.stdout, "Kinesis records:"), 7584, "{}", out.stdout);
    let got = read_all(&m, "DataStream").await;
    assert_exactly_once(&got, &expected_wire());
    // Spread evenly: each of the 4 shards holds a quarter (round-robin by explicit hash key).
    for (shard, recs) in &got {
        assert!((1890..=1902).contains(&recs.len()), "{shard}: {} records", recs.len());
    }
}

/// AWS's deaggregator (aws-kinesis-agg, in the test venv) on the records as stored.
fn deaggregate_with_aws(records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD;
    let input: Vec<String> = records.iter().map(|r| b64.encode(r)).collect();
    let venv = std::env::var_os("PIPECTL_VENV").map(std::path::PathBuf::from).unwrap_or(common::root().join(".venv"));
    let mut child = std::process::Command::new(venv.join("bin/python"))
        .arg(common::root().join("tests/support/deaggregate.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python in the test venv (scripts/moto-venv.sh installs aws-kinesis-agg)");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "aws-kinesis-agg failed");
    let users: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    users.iter().map(|u| b64.decode(u).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_records_decode_with_aws_kinesis_agg_to_the_rows() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 2).await;
    let out = produce(&m.endpoint(), common::data_csv().to_str().unwrap(), &[]).ok();
    assert_eq!(figure(&out.stdout, "rows delivered:"), 7584, "{}", out.stdout);
    assert!(out.stdout.contains("KPL aggregated"), "{}", out.stdout);
    let got = read_all(&m, "DataStream").await;
    let stored: Vec<Vec<u8>> = got.values().flatten().cloned().collect();
    // ~110-byte rows, aggregates closed at 64 KiB: hundreds of rows per Kinesis record.
    assert!(stored.len() < 30, "{} Kinesis records", stored.len());
    assert_eq!(figure(&out.stdout, "Kinesis records:"), stored.len() as u64);
    assert!(stored.iter().all(|r| r.starts_with(&aggregate::MAGIC)));
    let by_aws = deaggregate_with_aws(&stored);
    let ours: Vec<Vec<u8>> = stored.iter().flat_map(|r| aggregate::decode(r).unwrap()).map(|(_, d)| d).collect();
    assert_eq!(by_aws.len(), 7584);
    assert!(by_aws == ours, "AWS's deaggregator reads what pipectl's decoder reads");
    let mut want = expected_wire();
    let mut by_aws = by_aws;
    want.sort();
    by_aws.sort();
    assert!(by_aws == want, "the user records are exactly the rows, once each");
    // Both shards are used.
    assert!(got.values().all(|r| !r.is_empty()));
}

/// In each shard, the rows of one district appear in file order, and each district stays on one
/// shard. Identical rows exist in the data: each copy takes the next file position of its bytes.
fn assert_district_order(got: &BTreeMap<String, Vec<Vec<u8>>>, want: &[Vec<u8>]) {
    let mut positions: BTreeMap<&Vec<u8>, std::collections::VecDeque<usize>> = BTreeMap::new();
    for (i, w) in want.iter().enumerate() {
        positions.entry(w).or_default().push_back(i);
    }
    let district = |r: &Vec<u8>| String::from_utf8_lossy(r).split('|').nth(2).unwrap().to_string();
    for recs in got.values() {
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for r in recs {
            let p = positions.get_mut(r).unwrap().pop_front().unwrap();
            if let Some(prev) = last.insert(district(r), p) {
                assert!(prev < p, "district {} out of order", district(r));
            }
        }
    }
    let mut shard_of: BTreeMap<String, &String> = BTreeMap::new();
    for (shard, recs) in got {
        for r in recs {
            assert_eq!(*shard_of.entry(district(r)).or_insert(shard), shard);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_records_keep_per_key_order_under_record_failures() {
    for mode in ["--no-aggregate", "--aggregate-default"] {
        let m = Moto::start();
        create_stream(&m, "DataStream", 3).await;
        // Every 3rd record fails: later records of the same batch succeed around it.
        let faults = Arc::new(Faults { fail_every: 3, ..Faults::none() });
        let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), faults.clone()).await;
        let mut args = vec!["--partition-key", "district", "--retry-base-ms", "1"];
        if mode == "--no-aggregate" {
            args.push(mode);
        }
        let out = produce(&proxy, common::data_csv().to_str().unwrap(), &args).ok();
        assert!(faults.failed.load(Ordering::SeqCst) > 0, "{mode}: the proxy failed records");
        assert_eq!(figure(&out.stdout, "rows delivered:"), 7584, "{}", out.stdout);
        let got = user_records(&read_all(&m, "DataStream").await);
        let want = expected_wire();
        assert_exactly_once(&got, &want);
        assert_district_order(&got, &want);
    }
}

/// A proxy in front of moto that fails a share of the records of every PutRecords (they are not
/// forwarded, as Kinesis does not store failed records), drops some connections before
/// forwarding anything, drops some replies after moto stored the records (the case that makes
/// duplicates), stalls some replies (the call times out) and can delay every PutRecords.
/// `fail_every`: fail records whose running index is a multiple of it (1 = all); `drop_every`
/// counts PutRecords calls.
struct Faults {
    fail_every: u64,
    drop_every: u64,
    /// PutRecords calls (1-based) whose reply is dropped / stalled after moto stored them.
    drop_reply_on: &'static [u64],
    stall_on: &'static [u64],
    delay_ms: u64,
    counter: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    replies_dropped: AtomicU64,
    stalled: AtomicU64,
}

impl Faults {
    fn none() -> Faults {
        Faults {
            fail_every: u64::MAX,
            drop_every: 0,
            drop_reply_on: &[],
            stall_on: &[],
            delay_ms: 0,
            counter: AtomicU64::new(1),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            replies_dropped: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
        }
    }
}

fn every(n: u64, call: u64) -> bool {
    n > 0 && call % n == 0
}

impl PutRecordsHooks for Faults {
    fn before(&self, call: u64) -> Before {
        if every(self.drop_every, call) {
            // Drop the connection before forwarding: nothing is stored.
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return Before::Drop;
        }
        Before::Forward(Duration::from_millis(self.delay_ms))
    }
    fn admit(&self, _record: &Value) -> bool {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let fail = n % self.fail_every == 0;
        if fail {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        !fail
    }
    fn after(&self, call: u64) -> After {
        if self.drop_reply_on.contains(&call) {
            self.replies_dropped.fetch_add(1, Ordering::SeqCst);
            After::DropReply
        } else if self.stall_on.contains(&call) {
            self.stalled.fetch_add(1, Ordering::SeqCst);
            After::Stall
        } else {
            After::Reply
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_records_and_dropped_connections_lose_nothing() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 2).await;
    let faults = Arc::new(Faults { fail_every: 7, drop_every: 5, ..Faults::none() });
    let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), faults.clone()).await;
    let out = produce(&proxy, common::data_csv().to_str().unwrap(), &["--retry-base-ms", "1", "--no-aggregate"]).ok();
    assert!(faults.failed.load(Ordering::SeqCst) > 1000, "the proxy failed records");
    assert!(faults.dropped.load(Ordering::SeqCst) >= 3, "the proxy dropped connections");
    assert_eq!(figure(&out.stdout, "rows delivered:"), 7584, "{}", out.stdout);
    assert!(figure(&out.stdout, "retries:") >= faults.failed.load(Ordering::SeqCst), "{}", out.stdout);
    // A dropped connection is an unknown outcome to the client (it cannot tell the request was
    // not forwarded): counted as possible duplicates, though here none were stored twice.
    assert!(figure(&out.stdout, "possibly duplicated:") > 0, "{}", out.stdout);
    assert_exactly_once(&read_all(&m, "DataStream").await, &expected_wire());
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_and_stalled_replies_duplicate_only_rows_the_report_counts() {
    for mode in ["--no-aggregate", "--aggregate-default"] {
        let m = Moto::start();
        create_stream(&m, "DataStream", 2).await;
        // Aggregated, the 7,584 rows take one or two calls: fault the first ones (their retries
        // are later calls); plain, they take 16 calls.
        let (drop_reply_on, stall_on): (&[u64], &[u64]) =
            if mode == "--no-aggregate" { (&[2, 5, 9, 10], &[3, 7]) } else { (&[1, 3], &[2]) };
        let faults = Arc::new(Faults { drop_reply_on, stall_on, ..Faults::none() });
        let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), faults.clone()).await;
        let mut args = vec!["--retry-base-ms", "1", "--request-timeout-ms", "1500"];
        if mode == "--no-aggregate" {
            args.push(mode);
        }
        let started = std::time::Instant::now();
        let out = produce(&proxy, common::data_csv().to_str().unwrap(), &args).ok();
        assert!(started.elapsed() < Duration::from_secs(50), "a stalled call hung the run");
        assert!(faults.replies_dropped.load(Ordering::SeqCst) >= 1, "{mode}: the proxy dropped replies");
        assert!(faults.stalled.load(Ordering::SeqCst) >= 1, "{mode}: the proxy stalled replies");
        assert_eq!(figure(&out.stdout, "rows delivered:"), 7584, "{}", out.stdout);
        let counted = figure(&out.stdout, "possibly duplicated:");
        let got = user_records(&read_all(&m, "DataStream").await);
        let mut all: Vec<&Vec<u8>> = got.values().flatten().collect();
        all.sort();
        let want = expected_wire();
        let mut want_sorted: Vec<&Vec<u8>> = want.iter().collect();
        want_sorted.sort();
        all.dedup();
        want_sorted.dedup();
        assert!(all == want_sorted, "{mode}: every row is in the stream");
        // "possibly duplicated" counts rows; a row resent after two unknown outcomes can be
        // stored three times, so compare the rows stored more than once.
        let mut copies: BTreeMap<&Vec<u8>, usize> = BTreeMap::new();
        for r in got.values().flatten() {
            *copies.entry(r).or_default() += 1;
        }
        let mut in_input: BTreeMap<&Vec<u8>, usize> = BTreeMap::new();
        for w in &want {
            *in_input.entry(w).or_default() += 1;
        }
        let duplicated: u64 =
            copies.iter().map(|(r, n)| n.saturating_sub(in_input[r]) as u64).filter(|n| *n > 0).count() as u64;
        assert!(duplicated > 0, "{mode}: a dropped reply after storing duplicates rows");
        assert!(
            duplicated <= counted,
            "{mode}: {duplicated} rows duplicated but only {counted} counted:\n{}",
            out.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retry_budget_fails_and_keeps_the_rows() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 1).await;
    let faults = Arc::new(Faults { fail_every: 1, ..Faults::none() });
    let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), faults).await;
    let dir = Scratch::new("budget");
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let small: String = csv.lines().take(51).map(|l| format!("{l}\n")).collect();
    let input = dir.write("rows.csv", &small);
    let undelivered = dir.path("left.csv");
    for mode in ["--no-aggregate", "--aggregate-default"] {
        let mut args = vec!["--max-retries", "2", "--retry-base-ms", "1", "--failed-out", &undelivered];
        if mode == "--no-aggregate" {
            args.push(mode);
        }
        let out = produce(&proxy, &input, &args).code(1);
        assert!(out.stderr.contains("50 row(s) undelivered") && out.stderr.contains(&undelivered), "{}", out.stderr);
        let left = std::fs::read_to_string(&undelivered).unwrap();
        assert_eq!(left, small, "{mode}: the undelivered file holds the header and every row, in order");
    }
    assert!(read_all(&m, "DataStream").await.values().all(Vec::is_empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_with_missing_or_extra_columns_are_rejected_by_line() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 1).await;
    let dir = Scratch::new("missing");
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let mut lines: Vec<String> = csv.lines().take(11).map(str::to_string).collect();
    lines[5] = "1/1/06 0:00,SHORT ROW".to_string();
    lines[7] = format!("{},EXTRA", lines[7]);
    let input = dir.write("rows.csv", &(lines.join("\n") + "\n"));
    let out = produce(&m.endpoint(), &input, &[]).code(1);
    assert!(out.stderr.contains("rejected (line 6): row 5: missing column `district`"), "{}", out.stderr);
    assert!(out.stderr.contains("rejected (line 8): row 7: 10 values, more than the header's 9"), "{}", out.stderr);
    assert_eq!(figure(&out.stdout, "rows delivered:"), 8, "{}", out.stdout);
    assert_eq!(figure(&out.stdout, "rows rejected:"), 2, "{}", out.stdout);
    let sent: usize = user_records(&read_all(&m, "DataStream").await).values().map(Vec::len).sum();
    assert_eq!(sent, 8);
    let left = std::fs::read_to_string(format!("{input}.undelivered.csv")).unwrap();
    assert_eq!(left, format!("{}\n{}\n{}\n", lines[0], lines[5], lines[7]));
    // The undelivered file may not be the input.
    let out = produce(&m.endpoint(), &input, &["--failed-out", &format!("{}/./rows.csv", dir.0.display())]).code(1);
    assert!(out.stderr.contains("is the input file"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_leaves_exactly_the_rows_not_delivered_in_the_file() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 2).await;
    // Every PutRecords takes 200 ms more: the run lasts seconds, and Ctrl-C lands mid-file.
    let faults = Arc::new(Faults { delay_ms: 200, ..Faults::none() });
    let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), faults.clone()).await;
    let dir = Scratch::new("interrupt");
    // 40,000 distinct rows (the address carries the row number).
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let mut lines = csv.lines();
    let mut text = format!("{}\n", lines.next().unwrap());
    let body: Vec<&str> = lines.collect();
    for i in 0..40_000 {
        let mut cols: Vec<String> = body[i % body.len()].split(',').map(str::to_string).collect();
        cols[1] = format!("ROW {i}");
        text.push_str(&cols.join(","));
        text.push('\n');
    }
    let input = dir.write("big.csv", &text);
    let left = dir.path("left.csv");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pipectl"))
        .args(["produce", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", &input])
        .args(["--no-aggregate", "--failed-out", &left])
        .current_dir(common::root())
        .env("AWS_ENDPOINT_URL", &proxy)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", common::REGION)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped: interrupted"), "{stdout}");
    let delivered = figure(&stdout, "rows delivered:");
    let undelivered = figure(&stdout, "undelivered:");
    assert!(delivered > 0 && undelivered > 0, "interrupted mid-file:\n{stdout}");
    assert_eq!(figure(&stdout, "possibly duplicated:"), 0, "{stdout}");
    // The file + the delivered rows = the input, exactly.
    let mut got: Vec<Vec<u8>> = user_records(&read_all(&m, "DataStream").await).into_values().flatten().collect();
    assert_eq!(got.len() as u64, delivered);
    let in_file = expected_wire_of(std::path::Path::new(&left));
    assert_eq!(in_file.len() as u64, undelivered);
    got.extend(in_file);
    got.sort();
    let mut want = expected_wire_of(std::path::Path::new(&input));
    want.sort();
    assert!(got == want, "stream + undelivered file != input");
}

#[test]
fn dry_run_encodes_without_sending() {
    let out = common::run_bin(
        env!("CARGO_BIN_EXE_pipectl"),
        &[
            "produce",
            "-f",
            "stacks/crime-data.yaml",
            "--pipeline",
            "crime",
            "--csv",
            common::data_csv().to_str().unwrap(),
            "--dry-run",
        ],
        "http://127.0.0.1:9",
    )
    .ok();
    assert_eq!(figure(&out.stdout, "rows read:"), 7584, "{}", out.stdout);
    assert_eq!(figure(&out.stdout, "PutRecords calls:"), 0, "{}", out.stdout);
}
