//! The bundle as Lambda runs it: `pipectl bundle` is reproducible and within provided.al2023's
//! glibc, and the built `bootstrap` answers events fed by a local Lambda Runtime API server.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{bundle_dir, Scratch};
use pipectl::testkit::{serve, Message};
use serde_json::{json, Value};

fn unzip_bootstrap(zip: &std::path::Path, dir: &Scratch) -> String {
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    assert_eq!(z.len(), 1, "the zip holds only bootstrap");
    let mut f = z.by_name("bootstrap").expect("bootstrap at the root of the zip");
    assert_eq!(f.unix_mode().unwrap() & 0o777, 0o755);
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    let path = dir.path("bootstrap");
    std::fs::write(&path, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn bundle_is_reproducible_and_fits_lambda() {
    let first = std::fs::read(bundle_dir().join("transform.zip")).unwrap();
    let again = Scratch::new("bundle2");
    let out = common::run_bin(
        env!("CARGO_BIN_EXE_pipectl"),
        &["bundle", "-f", "stacks/crime-data.yaml", "--out", &again.0.display().to_string()],
        "http://127.0.0.1:9",
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let second = std::fs::read(again.0.join("transform.zip")).unwrap();
    assert_eq!(first, second, "two bundles of the same source differ");
    let sha = pipectl::bundle::code_sha256(&second);
    assert!(out.stdout.contains(&sha), "bundle prints the CodeSha256 Lambda will report: {}", out.stdout);
    let dir = Scratch::new("glibc");
    let exe = std::fs::read(unzip_bootstrap(&again.0.join("transform.zip"), &dir)).unwrap();
    let glibc = pipectl::bundle::newest_glibc(&exe);
    assert!(glibc.is_none_or(|v| v <= pipectl::bundle::LAMBDA_GLIBC), "needs {glibc:?}");
    // scripts/moto-venv.sh installs cargo-zigbuild, so the test suite's bundle targets glibc 2.17.
    assert!(out.stdout.contains("cargo zigbuild (glibc 2.17)"), "{}", out.stdout);
    assert!(glibc.is_none_or(|v| v <= (2, 17)), "needs {glibc:?}");
    // The Lambda links no AWS SDK crate.
    let text = String::from_utf8_lossy(&exe);
    assert!(!text.contains("aws-sdk-kinesis") && !text.contains("aws_sdk_"), "the bootstrap links the AWS SDK");
}

/// (request path, body) of every POST the bootstrap made.
type Posted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A Lambda Runtime API stand-in: hands out `events` one by one, records what comes back.
struct RuntimeApi {
    addr: std::net::SocketAddr,
    posted: Posted,
}

async fn runtime_api(events: Vec<String>) -> RuntimeApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let posted: Posted = Arc::default();
    let queue = Arc::new(Mutex::new(events.into_iter().enumerate().collect::<std::collections::VecDeque<_>>()));
    let log = posted.clone();
    tokio::spawn(serve(listener, move |req| {
        if req.start.starts_with("GET") && req.path().ends_with("/runtime/invocation/next") {
            let next = queue.lock().unwrap().pop_front();
            match next {
                Some((i, body)) => {
                    let mut m = Message::response(200, "application/json", body);
                    m.headers.push(("lambda-runtime-aws-request-id".into(), format!("req-{i}")));
                    m.headers.push((
                        "lambda-runtime-deadline-ms".into(),
                        (chrono::Utc::now().timestamp_millis() + 60_000).to_string(),
                    ));
                    m.headers.push((
                        "lambda-runtime-invoked-function-arn".into(),
                        "arn:aws:lambda:eu-west-1:123456789012:function:t".into(),
                    ));
                    m.headers.push(("lambda-runtime-trace-id".into(), "Root=1-0-0".into()));
                    m
                }
                // No more events: hold the long poll, as Lambda does, until the test ends.
                None => {
                    std::thread::sleep(Duration::from_secs(3));
                    Message::response(500, "text/plain", "")
                }
            }
        } else {
            log.lock().unwrap().push((req.path().to_string(), req.body.clone()));
            Message::response(202, "application/json", "{}")
        }
    }));
    RuntimeApi { addr, posted }
}

fn spawn_bootstrap(exe: &str, api: &RuntimeApi, schema: Option<String>) -> std::process::Child {
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "t")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "s")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "g")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(s) = schema {
        cmd.env(pipectl::transform::SCHEMA_ENV, s);
    }
    cmd.spawn().unwrap()
}

async fn wait_for(api: &RuntimeApi, n: usize) -> Vec<(String, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = api.posted.lock().unwrap().clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn crime_schema() -> String {
    let spec = pipectl::spec::parse("s.yaml", &common::stack_text("crime-data.yaml")).unwrap().spec;
    serde_json::to_string(&spec.pipelines[0].schema).unwrap()
}

fn event(records: &[&[u8]]) -> String {
    let recs: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"recordId": format!("r{i}"), "approximateArrivalTimestamp": 1_136_073_600_000i64,
                   "data": base64::engine::general_purpose::STANDARD.encode(d)})
        })
        .collect();
    json!({"invocationId": "inv", "deliveryStreamArn": "arn:aws:firehose:eu-west-1:1:deliverystream/f",
           "region": "eu-west-1", "records": recs})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_answers_firehose_events_over_the_runtime_api() {
    let dir = Scratch::new("runtime");
    let exe = unzip_bootstrap(&bundle_dir().join("transform.zip"), &dir);
    // The first 500 article rows, as the producer encodes them.
    let csv = std::fs::read_to_string(common::data_csv()).unwrap();
    let rows: Vec<Vec<u8>> = csv
        .lines()
        .skip(1)
        .take(500)
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let mut out = Vec::new();
            pipectl::schema::encode_record(&v, '|', &mut out);
            out
        })
        .collect();
    let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    let events = vec![
        event(&refs),
        event(&[
            b"1/1/06 0:00|A|3|3C|1115|D|2404|38.5|-121.3",
            b"not|enough",
            "1/1/06 0:00|\"Ünïcode | pipe\"|3|3C|1115|D|2404|38.5|-121.3".as_bytes(),
        ]),
        "{\"this is\": \"not a firehose event\"}".to_string(),
    ];
    let api = runtime_api(events).await;
    let mut child = spawn_bootstrap(&exe, &api, Some(crime_schema()));
    let posted = wait_for(&api, 3).await;
    let _ = child.kill();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let _ = child.wait();
    assert_eq!(posted.len(), 3, "posted: {posted:?}\nstderr: {stderr}");

    assert_eq!(posted[0].0, "/2018-06-01/runtime/invocation/req-0/response");
    let r0: Value = serde_json::from_slice(&posted[0].1).unwrap();
    let recs = r0["records"].as_array().unwrap();
    assert_eq!(recs.len(), 500);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["recordId"], format!("r{i}"));
        assert_eq!(r["result"], "Ok", "row {i}");
    }
    let doc: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(recs[0]["data"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["crime_time"], "2006-01-01T00:00:00Z");
    assert_eq!(doc["location"]["lat"], 38.55042047);

    let r1: Value = serde_json::from_slice(&posted[1].1).unwrap();
    let results: Vec<&str> = r1["records"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["Ok", "ProcessingFailed", "Ok"]);
    let doc: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(r1["records"][2]["data"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["address"], "Ünïcode | pipe");
    // The failure is logged once, with position and reason, never the payload.
    assert!(stderr.contains("record 1 (r1) failed: expected 9 values, got 2"), "{stderr}");
    assert!(!stderr.contains("not|enough"), "payload leaked into logs: {stderr}");

    // A malformed event is an invocation error, not a crash: the runtime keeps going.
    assert_eq!(posted[2].0, "/2018-06-01/runtime/invocation/req-2/error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_schema_is_an_init_error() {
    let dir = Scratch::new("initerr");
    let exe = unzip_bootstrap(&bundle_dir().join("transform.zip"), &dir);
    let api = runtime_api(vec![]).await;
    let mut child = spawn_bootstrap(&exe, &api, None);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
}
