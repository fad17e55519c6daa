//! The producer against a private moto server: the article's 7,584 rows arrive exactly once and
//! byte-exact, spread over the shards; through a fault-injecting proxy (failed records,
//! dropped connections) every row still arrives exactly once; an exhausted retry budget ends
//! non-zero with the undelivered rows on disk.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{Moto, Scratch};
use pipectl::testkit::{read_message, write_message, Message};
use serde_json::{json, Value};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

async fn create_stream(m: &Moto, name: &str, shards: i32) {
    let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
    k.create_stream().stream_name(name).shard_count(shards).send().await.unwrap();
}

/// Every record in the stream, per shard, read back with GetRecords from TRIM_HORIZON.
async fn read_all(m: &Moto, stream: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
    let shards = k.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = BTreeMap::new();
    for s in shards.shards() {
        let mut it = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        let mut recs = Vec::new();
        while let Some(i) = it {
            let r = k.get_records().shard_iterator(i).limit(10_000).send().await.unwrap();
            if r.records().is_empty() {
                break;
            }
            recs.extend(r.records().iter().map(|x| x.data().as_ref().to_vec()));
            it = r.next_shard_iterator().map(str::to_string);
        }
        out.insert(s.shard_id().to_string(), recs);
    }
    out
}

/// What the producer must send for each data row of the fixture.
fn expected_wire() -> Vec<Vec<u8>> {
    let spec = pipectl::spec::parse("s.yaml", &common::stack_text("crime-data.yaml")).unwrap().spec;
    let schema = &spec.pipelines[0].schema;
    let mut rdr = csv::Reader::from_path(common::data_csv()).unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn article_rows_arrive_exactly_once_spread_over_shards() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 4).await;
    let out = produce(&m.endpoint(), common::data_csv().to_str().unwrap(), &[]).ok();
    assert!(out.stdout.contains("records delivered:  7584"), "{}", out.stdout);
    let got = read_all(&m, "DataStream").await;
    assert_exactly_once(&got, &expected_wire());
    // Spread evenly: each of the 4 shards holds a quarter (round-robin by explicit hash key).
    for (shard, recs) in &got {
        assert!((1890..=1902).contains(&recs.len()), "{shard}: {} records", recs.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_records_keep_per_key_order() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 3).await;
    produce(&m.endpoint(), common::data_csv().to_str().unwrap(), &["--partition-key", "district"]).ok();
    let got = read_all(&m, "DataStream").await;
    let want = expected_wire();
    assert_exactly_once(&got, &want);
    // Within each shard, the rows of one district appear in file order.
    // Identical rows exist in the data: each copy takes the next file position of its bytes.
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
    // All rows of a district landed on one shard.
    let mut shard_of: BTreeMap<String, &String> = BTreeMap::new();
    for (shard, recs) in &got {
        for r in recs {
            assert_eq!(*shard_of.entry(district(r)).or_insert(shard), shard);
        }
    }
}

/// A proxy in front of moto that fails a share of the records of every PutRecords (they are not
/// forwarded, as Kinesis does not store failed records) and drops some connections before
/// forwarding anything. `fail_every`: fail records whose running index is a multiple of it
/// (1 = all).
struct Faults {
    fail_every: u64,
    drop_every: u64,
    counter: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

async fn fault_proxy(upstream: String, faults: Arc<Faults>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let (up, f) = (upstream.clone(), faults.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                while let Ok(Some(mut req)) = read_message(&mut rd).await {
                    let target = req.header("x-amz-target").unwrap_or("").to_string();
                    let is_put = target.ends_with("PutRecords");
                    if is_put {
                        let call = f.calls.fetch_add(1, Ordering::SeqCst) + 1;
                        if f.drop_every > 0 && call % f.drop_every == 0 {
                            // Drop the connection before forwarding: nothing is stored.
                            f.dropped.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                    let mut failed_slots = Vec::new();
                    if is_put {
                        let mut body: Value = serde_json::from_slice(&req.body).unwrap();
                        let records = body["Records"].as_array().unwrap().clone();
                        let mut keep = Vec::new();
                        for (i, r) in records.into_iter().enumerate() {
                            let n = f.counter.fetch_add(1, Ordering::SeqCst);
                            if n % f.fail_every == 0 {
                                failed_slots.push(i);
                            } else {
                                keep.push(r);
                            }
                        }
                        f.failed.fetch_add(failed_slots.len() as u64, Ordering::SeqCst);
                        let total = keep.len() + failed_slots.len();
                        if keep.is_empty() {
                            let recs: Vec<Value> = (0..total)
                                .map(|_| json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}))
                                .collect();
                            let resp = json!({"FailedRecordCount": total, "Records": recs}).to_string();
                            if write_message(&mut wr, &Message::response(200, "application/x-amz-json-1.1", resp))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            continue;
                        }
                        body["Records"] = Value::Array(keep);
                        req.body = body.to_string().into_bytes();
                    }
                    let Ok(conn) = TcpStream::connect(&up).await else { return };
                    let (urd, mut uwr) = conn.into_split();
                    if write_message(&mut uwr, &req).await.is_err() {
                        return;
                    }
                    let Ok(Some(mut resp)) = read_message(&mut BufReader::new(urd)).await else { return };
                    if is_put && resp.status() == 200 {
                        let body: Value = serde_json::from_slice(&resp.body).unwrap();
                        let mut stored = body["Records"].as_array().unwrap().clone().into_iter();
                        let total = stored.len() + failed_slots.len();
                        let recs: Vec<Value> = (0..total)
                            .map(|i| {
                                if failed_slots.contains(&i) {
                                    json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"})
                                } else {
                                    stored.next().unwrap()
                                }
                            })
                            .collect();
                        resp.body =
                            json!({"FailedRecordCount": failed_slots.len(), "Records": recs}).to_string().into_bytes();
                    }
                    if write_message(&mut wr, &resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_records_and_dropped_connections_still_arrive_exactly_once() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 2).await;
    let faults = Arc::new(Faults {
        fail_every: 7,
        drop_every: 5,
        counter: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let proxy = fault_proxy(format!("127.0.0.1:{}", m.port), faults.clone()).await;
    let out = produce(&proxy, common::data_csv().to_str().unwrap(), &["--retry-base-ms", "1"]).ok();
    assert!(faults.failed.load(Ordering::SeqCst) > 1000, "the proxy failed records");
    assert!(faults.dropped.load(Ordering::SeqCst) >= 3, "the proxy dropped connections");
    assert!(out.stdout.contains("records delivered:  7584"), "{}", out.stdout);
    let retries: u64 = out
        .stdout
        .lines()
        .find(|l| l.starts_with("retries:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retries >= faults.failed.load(Ordering::SeqCst), "{}", out.stdout);
    assert_exactly_once(&read_all(&m, "DataStream").await, &expected_wire());
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retry_budget_fails_and_keeps_the_rows() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 1).await;
    let faults = Arc::new(Faults {
        fail_every: 1,
        drop_every: 0,
        counter: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let proxy = fault_proxy(format!("127.0.0.1:{}", m.port), faults).await;
    let dir = Scratch::new("budget");
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let small: String = csv.lines().take(51).map(|l| format!("{l}\n")).collect();
    let input = dir.write("rows.csv", &small);
    let undelivered = dir.path("left.csv");
    let out =
        produce(&proxy, &input, &["--max-retries", "2", "--retry-base-ms", "1", "--failed-out", &undelivered]).code(1);
    assert!(out.stderr.contains("50 record(s) undelivered") && out.stderr.contains(&undelivered), "{}", out.stderr);
    let left = std::fs::read_to_string(&undelivered).unwrap();
    assert_eq!(left, small, "the undelivered file holds the header and every row, in order");
    assert!(read_all(&m, "DataStream").await.values().all(Vec::is_empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_with_missing_columns_are_reported_not_sent() {
    let m = Moto::start();
    create_stream(&m, "DataStream", 1).await;
    let dir = Scratch::new("missing");
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let mut lines: Vec<String> = csv.lines().take(11).map(str::to_string).collect();
    lines[5] = "1/1/06 0:00,SHORT ROW".to_string();
    let input = dir.write("rows.csv", &(lines.join("\n") + "\n"));
    let out = produce(&m.endpoint(), &input, &[]).code(1);
    assert!(out.stderr.contains("row 5: missing column `district`"), "{}", out.stderr);
    assert!(out.stdout.contains("records delivered:  9"), "{}", out.stdout);
    let sent: usize = read_all(&m, "DataStream").await.values().map(Vec::len).sum();
    assert_eq!(sent, 9);
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
    assert!(out.stdout.contains("rows read:          7584"), "{}", out.stdout);
    assert!(out.stdout.contains("PutRecords calls:   0"), "{}", out.stdout);
}
