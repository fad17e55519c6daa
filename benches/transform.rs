//! Transform throughput and cost: records/s of `transform::process` on Firehose events of 500
//! and 10,000 article rows (event JSON in → response JSON out, the Lambda's own work per
//! invocation, excluding the runtime's HTTP), Lambda milliseconds per 1 MB Firehose buffer,
//! the article's Node.js transform on the same events when `node` and the seed are present,
//! the whole `pipectl invoke --event` process on 100,000 rows, the `bootstrap`'s cold start,
//! and the zip size. Prints figures; asserts nothing. Run: `cargo bench --bench transform`
//! (after `cargo build --release` for the process and cold-start figures).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipectl::schema::encode_record;
use pipectl::transform::{event_json, process, RESPONSE_LIMIT};

const ARRIVAL_MS: i64 = 1_136_073_600_000;

/// The article's rows as the producer writes them: the layout header, then the values.
fn rows(header: &[u8]) -> Vec<Vec<u8>> {
    let csv = std::fs::read_to_string(root().join("tests/fixtures/sacramento-crime-2006-01.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let mut out = header.to_vec();
            encode_record(&v, '|', &mut out);
            out
        })
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let spec = pipectl::spec::parse("s.yaml", include_str!("../stacks/crime-data.yaml")).unwrap().spec;
    let schema_json = serde_json::to_string(&spec.pipelines[0].schema).unwrap();
    let schema = &pipectl::schema::Compiled::new(&spec.pipelines[0].schema);
    let all = rows(&schema.layout().header());
    let bare = rows(&[]);
    println!("transform benchmark (release build, one core)");
    for n in [500usize, 10_000] {
        let records: Vec<Vec<u8>> = all.iter().cycle().take(n).cloned().collect();
        let wire: usize = records.iter().map(Vec::len).sum();
        let json = event_json(&records, ARRIVAL_MS);
        // Warm up, then run for at least 2 s.
        let _ = process(schema, &json, RESPONSE_LIMIT).unwrap();
        let start = Instant::now();
        let mut iters = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            // Parses the event JSON and writes the response JSON, as the Lambda does.
            let outcome = process(schema, &json, RESPONSE_LIMIT).unwrap();
            assert_eq!(outcome.ok(), n);
            std::hint::black_box(outcome.response);
            iters += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let per_event_ms = secs * 1000.0 / iters as f64;
        let per_mb = per_event_ms * (1 << 20) as f64 / wire as f64;
        println!(
            "  event of {n:>6} rows: {:>10.0} records/s  ({per_event_ms:.2} ms per event, {per_mb:.2} ms per 1 MB \
             Firehose buffer of these rows, {iters} events timed)",
            (iters as f64 * n as f64) / secs,
        );
        glue(&json);
        let bare_records: Vec<Vec<u8>> = bare.iter().cycle().take(n).cloned().collect();
        node_baseline(n, &event_json(&bare_records, ARRIVAL_MS), bare_records.iter().map(Vec::len).sum());
    }
    whole_process(&all);
    cold_start(&schema_json);
    let zip = root().join("dist/transform.zip");
    match std::fs::metadata(&zip) {
        Ok(m) => println!("  zip: {} ({} bytes)", zip.display(), m.len()),
        Err(_) => println!("  zip: run `pipectl bundle -f stacks/crime-data.yaml` to measure its size"),
    }
}

/// What the `bootstrap` adds around `process`: lambda_runtime hands the body over as a
/// `Box<RawValue>` (parsed once to find its end, copied) and takes the response back as one
/// (checked once more); `process` then parses the event itself.
fn glue(json: &[u8]) {
    let response = process(&compiled(), json, RESPONSE_LIMIT).unwrap().response;
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        let body: Box<serde_json::value::RawValue> = serde_json::from_slice(json).unwrap();
        std::hint::black_box(body);
        let back = serde_json::value::RawValue::from_string(String::from_utf8(response.clone()).unwrap()).unwrap();
        std::hint::black_box(serde_json::to_vec(&back).unwrap());
        iters += 1;
    }
    println!(
        "    + the bootstrap's runtime glue (raw JSON in and out): {:.2} ms per event",
        start.elapsed().as_secs_f64() * 1000.0 / iters as f64
    );
}

fn compiled() -> pipectl::schema::Compiled {
    let spec = pipectl::spec::parse("s.yaml", include_str!("../stacks/crime-data.yaml")).unwrap().spec;
    pipectl::schema::Compiled::new(&spec.pipelines[0].schema)
}

/// `pipectl invoke --event` on one 100,000-row event, as a whole process (best of 5).
fn whole_process(all: &[Vec<u8>]) {
    let exe = root().join("target/release/pipectl");
    if !exe.exists() {
        println!("  (invoke: build target/release/pipectl first)");
        return;
    }
    let records: Vec<Vec<u8>> = all.iter().cycle().take(100_000).cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, event_json(&records, ARRIVAL_MS)).unwrap();
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            let out = std::process::Command::new(&exe)
                .args(["invoke", "-f", "stacks/crime-data.yaml", "--pipeline", "crime", "--event"])
                .arg(&ev)
                .current_dir(root())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(out.success());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    println!(
        "  pipectl invoke --event, 100,000 rows ({} MB event), whole process: {:.3} s, {:.0} rows/s",
        std::fs::metadata(&ev).unwrap().len() / 1_000_000,
        best,
        100_000.0 / best
    );
}

/// The `bootstrap`'s init: from spawning the process to its first request to the Runtime API
/// (schema read and compiled, runtime started), against a local stand-in (median of 11).
fn cold_start(schema_json: &str) {
    let exe = root().join("target/release/pipectl-transform");
    if !exe.exists() {
        println!("  (cold start: build target/release/pipectl-transform first)");
        return;
    }
    let mut times: Vec<f64> = (0..11)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let t = Instant::now();
            let mut child = std::process::Command::new(&exe)
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", "t")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env(pipectl::transform::SCHEMA_ENV, schema_json)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let (conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(conn).read_line(&mut line).unwrap();
            let elapsed = t.elapsed().as_secs_f64();
            assert!(line.contains("/runtime/invocation/next"), "{line}");
            let _ = child.kill();
            let _ = child.wait();
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("  bootstrap cold start (spawn → first Runtime API request): {:.2} ms (median of 11)", times[5] * 1000.0);
}

/// The article's Node.js Lambda on the same event, if node and the seed are at hand.
fn node_baseline(n: usize, event_json: &[u8], wire: usize) {
    let seed = root().join("../shared/seed/transform-data-kinesis.js");
    if !seed.exists() {
        println!("  (article baseline: {} not found)", seed.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, event_json).unwrap();
    // Like the Rust loop: parse the event JSON, run the handler, serialise the response. The
    // handler answers synchronously through its callback; console.log is silenced (the article
    // logs every payload, which would dominate) before the module loads.
    let script = format!(
        "console.log=()=>{{}};const h=require({seed:?}).handler;\
         const text=require('fs').readFileSync({ev:?},'utf8');let it=0;const t=process.hrtime.bigint();let s=0;\
         while(s<2){{h(JSON.parse(text),{{}},(e,r)=>{{JSON.stringify(r)}});it++;s=Number(process.hrtime.bigint()-t)/1e9;}}\
         process.stdout.write(String(it*{n}/s)+' '+String(s*1000/it));",
        seed = seed.display().to_string(),
        ev = Path::new(&ev).display().to_string()
    );
    match std::process::Command::new("node").arg("-e").arg(script).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            let rate: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let ms: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let per_mb = ms * (1 << 20) as f64 / wire as f64;
            println!(
                "  article's Node.js transform, same rows: {rate:>10.0} records/s  ({ms:.2} ms per event, {per_mb:.2} ms \
                 per 1 MB buffer; its console.log calls silenced)"
            );
        }
        _ => println!("  (article baseline: node not available or failed)"),
    }
}
