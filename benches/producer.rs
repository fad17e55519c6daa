//! Producer throughput: the article's 7,584 rows against a private moto server (1 and 4
//! shards), and the producer's own CPU time and peak memory per 100,000 rows against a local
//! endpoint that accepts everything (its cost, independent of moto). Prints figures; asserts
//! nothing. Run: `cargo bench --bench producer`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use pipectl::testkit::{serve, Message};
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
        let m = common::Moto::start();
        let k = aws_sdk_kinesis::Client::new(&m.sdk().await);
        k.create_stream().stream_name("DataStream").shard_count(shards).send().await.unwrap();
        let start = Instant::now();
        let out = common::run_bin(
            env!("CARGO_BIN_EXE_pipectl"),
            &["produce", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--csv", csv.to_str().unwrap()],
            &m.endpoint(),
        );
        assert_eq!(out.status, 0, "{}", out.stderr);
        let wall = start.elapsed().as_secs_f64();
        println!(
            "  moto, {shards} shard(s), 7,584 rows: {:.0} rows/s over the run ({}); process wall time {:.2} s",
            7584.0 / wall,
            line_value(&out.stdout, "elapsed:"),
            wall
        );
    }

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
