//! Transform throughput: records/s of `transform::handle` on Firehose events of 500 and 10,000
//! article rows (the Lambda's own work per invocation, excluding the runtime's HTTP), the zip
//! size, and the article's Node.js transform on the same events when `node` and the seed are
//! present. Prints figures; asserts nothing. Run: `cargo bench --bench transform`.

use std::time::{Duration, Instant};

use pipectl::schema::encode_record;
use pipectl::transform::{event_from_records, handle};

fn rows() -> Vec<Vec<u8>> {
    let csv =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sacramento-crime-2006-01.csv"))
            .unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let mut out = Vec::new();
            encode_record(&v, '|', &mut out);
            out
        })
        .collect()
}

fn main() {
    let spec = pipectl::spec::parse("s.yaml", include_str!("../stacks/crime-data.yaml")).unwrap().spec;
    let schema = &pipectl::schema::Compiled::new(&spec.pipelines[0].schema);
    let all = rows();
    println!("transform benchmark (release build, one core)");
    for n in [500usize, 10_000] {
        let records: Vec<Vec<u8>> = all.iter().cycle().take(n).cloned().collect();
        let event = event_from_records(records, 1_136_073_600_000);
        let json = serde_json::to_string(&event).unwrap();
        // Warm up, then run for at least 2 s.
        let _ = handle(schema, &event);
        let start = Instant::now();
        let mut iters = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            // Includes parsing the event JSON and writing the response JSON, as Lambda does.
            let ev: aws_lambda_events::event::firehose::KinesisFirehoseEvent = serde_json::from_str(&json).unwrap();
            let (resp, failures) = handle(schema, &ev);
            assert!(failures.is_empty());
            std::hint::black_box(serde_json::to_vec(&resp).unwrap());
            iters += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = (iters as f64 * n as f64) / secs;
        println!(
            "  event of {n:>6} rows: {:>10.0} records/s  ({:.2} ms per event, {} events timed)",
            rate,
            secs * 1000.0 / iters as f64,
            iters
        );
        node_baseline(n, &json);
    }
    let zip = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/transform.zip");
    match std::fs::metadata(&zip) {
        Ok(m) => println!("  zip: {} ({} bytes)", zip.display(), m.len()),
        Err(_) => println!("  zip: run `pipectl bundle -f stacks/crime-data.yaml` to measure its size"),
    }
}

/// The article's Node.js Lambda on the same event, if node and the seed are at hand.
fn node_baseline(n: usize, event_json: &str) {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/transform-data-kinesis.js");
    if !seed.exists() {
        println!("  (article baseline: {} not found)", seed.display());
        return;
    }
    let dir = std::env::temp_dir().join(format!("pipectl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ev = dir.join("event.json");
    std::fs::write(&ev, event_json).unwrap();
    // Like the Rust loop: parse the event JSON, run the handler, serialise the response. The
    // handler answers synchronously through its callback; console.log is silenced (the article
    // logs every payload, which would dominate) before the module loads.
    let script = format!(
        "console.log=()=>{{}};const h=require({seed:?}).handler;\
         const ev=JSON.parse(require('fs').readFileSync({ev:?}));let it=0;const t=process.hrtime.bigint();let s=0;\
         const text=JSON.stringify(ev);\
         while(s<2){{h(JSON.parse(text),{{}},(e,r)=>{{JSON.stringify(r)}});it++;s=Number(process.hrtime.bigint()-t)/1e9;}}\
         process.stdout.write(String(it*{n}/s)+' '+String(s*1000/it));",
        seed = seed.display().to_string(),
        ev = ev.display().to_string()
    );
    match std::process::Command::new("node").arg("-e").arg(script).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            let rate: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let ms: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            println!("  article's Node.js transform, same event: {rate:>10.0} records/s  ({ms:.2} ms per event; its console.log calls silenced)");
        }
        _ => println!("  (article baseline: node not available or failed)"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
