//! Producer throughput: the article's 7,584 rows against a private moto server (1 and 4
//! shards, aggregated and one row per record); against the **physical limit** of one shard: a
//! proxy in front of moto enforces Kinesis's per-shard write limits (1,000 records/s and
//! 1 MiB/s of data plus partition keys, ProvisionedThroughputExceededException per record beyond
//! them, records mapped to shards by explicit hash key or MD5 of the partition key), 60,000
//! distinct rows are sent, and the rate is reported as a share of the limit that binds (bytes
//! when aggregated, records when not), with the rows read back, de-aggregated and counted (lost,
//! duplicated); and the producer's own CPU time and peak memory per 100,000 rows against a local
//! endpoint that accepts everything. Prints figures; asserts nothing.
//! Run: `cargo bench --bench producer`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use pipectl::producer::{aggregate, shard};
use pipectl::testkit::{put_records_proxy, read_stream, serve, Message, PutRecordsHooks};
use serde_json::{json, Value};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

fn line_value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(key)).map(|l| l[key.len()..].trim()).unwrap_or("?")
}

async fn run() {
    let csv = common::data_csv();
    println!("producer benchmark (release build)");
    for shards in [1, 4] {
        for mode in ["aggregated", "--no-aggregate"] {
            let m = common::Moto::start();
            let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
            k.create_stream().stream_name("DataStream").shard_count(shards).send().await.unwrap();
            let mut args =
                vec!["produce", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", csv.to_str().unwrap()];
            if mode != "aggregated" {
                args.push(mode);
            }
            let start = Instant::now();
            let out = common::run_bin(env!("CARGO_BIN_EXE_pipectl"), &args, &m.endpoint());
            assert_eq!(out.status, 0, "{}", out.stderr);
            let wall = start.elapsed().as_secs_f64();
            println!(
                "  moto, {shards} shard(s), 7,584 rows, {mode:<14}: {:.0} rows/s over the process's wall time {:.2} s ({}; {} Kinesis records)",
                7584.0 / wall,
                wall,
                line_value(&out.stdout, "elapsed:"),
                line_value(&out.stdout, "Kinesis records:").split(' ').next().unwrap_or("?"),
            );
        }
    }
    physical_limit(&csv).await;

    // A local endpoint that accepts every record, answering PutRecords and ListShards.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, |req| {
        let target = req.header("x-amz-target").unwrap_or("").to_string();
        let body = if target.ends_with("ListShards") {
            json!({"Shards": [{"ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"}}]})
        } else {
            let req: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let n = req["Records"].as_array().map_or(0, Vec::len);
            let recs: Vec<Value> =
                (0..n).map(|i| json!({"SequenceNumber": i.to_string(), "ShardId": "shardId-000000000000"})).collect();
            json!({"FailedRecordCount": 0, "Records": recs})
        };
        Message::response(200, "application/x-amz-json-1.1", body.to_string())
    }));
    // 100,000 rows: the article's rows repeated.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    let mut big = format!("{header}\n");
    for i in 0..100_000 {
        big.push_str(body[i % body.len()]);
        big.push('\n');
    }
    let dir = common::Scratch::new("bench-producer");
    let path = dir.write("rows.csv", &big);
    let script = format!(
        "TIMEFORMAT='%U %S %R'; time {} produce -f stacks/crime-data.yaml --pipeline crime --csv {path} >{out} 2>/dev/null",
        env!("CARGO_BIN_EXE_pipectl"),
        out = dir.path("out.txt")
    );
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(common::root())
        .env("AWS_ENDPOINT_URL", format!("http://{addr}"))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .unwrap();
    let times = String::from_utf8_lossy(&o.stderr);
    let t: Vec<f64> = times.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let report = std::fs::read_to_string(dir.path("out.txt")).unwrap_or_default();
    if t.len() == 3 {
        println!(
            "  accept-all endpoint, 100,000 rows: CPU {:.3} s (user {:.3} + sys {:.3}) per 100,000 rows; wall {:.2} s ({:.0} rows/s); {}",
            t[0] + t[1],
            t[0],
            t[1],
            t[2],
            100_000.0 / t[2],
            line_value(&report, "peak memory:")
        );
    } else {
        println!("  accept-all endpoint: could not time the run: {times}\n{report}");
    }
}

/// A token bucket per shard for records and bytes, starting empty (so 100% of the limit is the
/// ceiling: no initial burst credit).
struct Bucket {
    records: f64,
    bytes: f64,
    at: Instant,
}

const LIMIT_RECORDS: f64 = 1000.0;
const LIMIT_BYTES: f64 = 1024.0 * 1024.0;

struct Limits {
    shards: Vec<shard::Shard>,
    buckets: Mutex<Vec<Bucket>>,
    accepted_bytes: Mutex<u64>,
    accepted_records: Mutex<u64>,
    throttled: Mutex<u64>,
}

impl Limits {
    /// Takes one record of `size` bytes from its shard's bucket, if there is room.
    fn take(&self, shard: usize, size: usize) -> bool {
        let mut bs = self.buckets.lock().unwrap();
        let b = &mut bs[shard];
        let now = Instant::now();
        let dt = (now - b.at).as_secs_f64();
        b.at = now;
        b.records = (b.records + dt * LIMIT_RECORDS).min(LIMIT_RECORDS);
        b.bytes = (b.bytes + dt * LIMIT_BYTES).min(LIMIT_BYTES);
        if b.records >= 1.0 && b.bytes >= size as f64 {
            b.records -= 1.0;
            b.bytes -= size as f64;
            true
        } else {
            false
        }
    }
}

/// The per-shard limit: admitted records are forwarded to moto, the others answered with
/// ProvisionedThroughputExceededException in their slot, as Kinesis answers.
impl PutRecordsHooks for Limits {
    fn admit(&self, r: &Value) -> bool {
        let b64 = base64::engine::general_purpose::STANDARD;
        let pk = r["PartitionKey"].as_str().unwrap_or("");
        let size = b64.decode(r["Data"].as_str().unwrap_or("")).unwrap().len() + pk.len();
        let h = match r["ExplicitHashKey"].as_str() {
            Some(e) => e.parse::<u128>().unwrap(),
            None => shard::hash_key(pk),
        };
        if self.take(shard::shard_for_hash(&self.shards, h), size) {
            *self.accepted_bytes.lock().unwrap() += size as u64;
            *self.accepted_records.lock().unwrap() += 1;
            true
        } else {
            *self.throttled.lock().unwrap() += 1;
            false
        }
    }
}

/// 60,000 distinct rows on one shard behind the limit proxy, aggregated and plain.
async fn physical_limit(csv: &std::path::Path) {
    const ROWS: usize = 60_000;
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    let mut big = format!("{header}\n");
    for i in 0..ROWS {
        // The address column carries the row number, so every row is distinct.
        let mut cols: Vec<String> = body[i % body.len()].split(',').map(str::to_string).collect();
        cols[1] = format!("{} #{i}", cols[1]);
        big.push_str(&cols.join(","));
        big.push('\n');
    }
    let dir = common::Scratch::new("bench-limit");
    let path = dir.write("rows.csv", &big);
    // The wire bytes of each row, as the producer encodes it.
    let spec = pipectl::spec::parse("s.yaml", &common::stack_text("crime-data.yaml")).unwrap().spec;
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let headers = rdr.byte_headers().unwrap().clone();
    let enc = pipectl::producer::encode::RowEncoder::new(&spec.pipelines[0].schema, &headers, None).unwrap();
    let want: Vec<Vec<u8>> = rdr
        .byte_records()
        .enumerate()
        .map(|(i, r)| {
            let mut out = Vec::new();
            enc.encode(i as u64 + 1, &r.unwrap(), &mut out).unwrap();
            out
        })
        .collect();
    let wire: usize = want.iter().map(Vec::len).sum();
    println!(
        "  physical limit of 1 shard (proxy enforcing 1,000 records/s and 1 MiB/s, buckets starting empty), {ROWS} distinct rows, {:.1} B per row on the wire:",
        wire as f64 / ROWS as f64
    );
    for mode in ["aggregated", "--no-aggregate"] {
        let m = common::Moto::start();
        let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
        k.create_stream().stream_name("DataStream").shard_count(1).send().await.unwrap();
        let listed = pipectl::producer::open_shards(&k, "DataStream").await.unwrap();
        let limits = Arc::new(Limits {
            buckets: Mutex::new(
                listed.iter().map(|_| Bucket { records: 0.0, bytes: 0.0, at: Instant::now() }).collect(),
            ),
            shards: listed,
            accepted_bytes: Mutex::new(0),
            accepted_records: Mutex::new(0),
            throttled: Mutex::new(0),
        });
        let proxy = put_records_proxy(format!("127.0.0.1:{}", m.port), limits.clone()).await;
        let mut args = vec!["produce", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", &path];
        if mode != "aggregated" {
            args.push(mode);
        }
        let start = Instant::now();
        let out = common::run_bin(env!("CARGO_BIN_EXE_pipectl"), &args, &proxy);
        let wall = start.elapsed().as_secs_f64();
        // Read back, de-aggregate, count.
        let stored: Vec<Vec<u8>> = read_stream(&k, "DataStream").await.into_values().flatten().collect();
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        for w in &want {
            *counts.entry(w.clone()).or_default() -= 1;
        }
        for r in &stored {
            match aggregate::decode(r) {
                Ok(users) => users.into_iter().for_each(|(_, d)| *counts.entry(d).or_default() += 1),
                Err(_) => *counts.entry(r.clone()).or_default() += 1,
            }
        }
        let lost: i64 = counts.values().filter(|c| **c < 0).map(|c| -c).sum();
        let dup: i64 = counts.values().filter(|c| **c > 0).sum();
        let rows_s = ROWS as f64 / wall;
        let bytes = *limits.accepted_bytes.lock().unwrap() as f64;
        let recs = *limits.accepted_records.lock().unwrap() as f64;
        let (share, of) = if mode == "aggregated" {
            (bytes / wall / LIMIT_BYTES, "of the byte limit")
        } else {
            (recs / wall / LIMIT_RECORDS, "of the record limit")
        };
        println!(
            "    {mode:<14}: {rows_s:.0} rows/s, {:.0} KiB/s, {:.0} records/s over {wall:.1} s = {:.1}% {of}; {} throttled records retried; lost {lost}, duplicated {dup}; exit {}",
            bytes / wall / 1024.0,
            recs / wall,
            share * 100.0,
            limits.throttled.lock().unwrap(),
            out.status
        );
    }
    let _ = Duration::ZERO;
}
