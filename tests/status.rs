//! `pipectl status` end to end on the emulator: the article's stack applied, the CloudWatch
//! metrics each scenario needs seeded with PutMetricData (the emulator publishes none by
//! itself; the SDK's Smithy RPC v2 CBOR goes through the shim's bridge both ways), failed
//! documents put in S3 in Firehose's failed-record format, then the verdict, the evidence
//! line, the JSON and the exit code checked.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_smithy_types::DateTime;
use common::{bundle_dir, Moto, Scratch};
use serde_json::Value;

const ACCOUNT: &str = "123456789012"; // moto's default account

fn deploy(m: &Moto, dir: &Scratch) -> String {
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    let art = bundle_dir().display().to_string();
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).ok();
    spec
}

/// One metric's datapoints, `(minutes ago, value)`, with dimensions in the order pipectl asks
/// for them (moto matches dimensions only in the order they were put).
async fn put(m: &Moto, namespace: &str, metric: &str, dims: &[(&str, &str)], points: &[(u64, f64)]) {
    let aws = m.aws().await;
    let now = SystemTime::now();
    let data: Vec<MetricDatum> = points
        .iter()
        .map(|(ago, v)| {
            MetricDatum::builder()
                .metric_name(metric)
                .set_dimensions(Some(
                    dims.iter().map(|(n, v)| Dimension::builder().name(*n).value(*v).build()).collect(),
                ))
                .timestamp(DateTime::from(now - Duration::from_secs(ago * 60)))
                .value(*v)
                .build()
        })
        .collect();
    aws.cloudwatch.put_metric_data().namespace(namespace).set_metric_data(Some(data)).send().await.unwrap();
}

const STREAM: &[(&str, &str)] = &[("StreamName", "DataStream")];
const FUNCTION: &[(&str, &str)] = &[("FunctionName", "transform-firehose-data")];
const DELIVERY: &[(&str, &str)] = &[("DeliveryStreamName", "firehose")];

/// 7,584 rows written to the stream and read by Firehose over a few minutes.
async fn seed_incoming(m: &Moto) {
    let split = [(12, 2000.0), (10, 2000.0), (8, 2000.0), (6, 1584.0)];
    put(m, "AWS/Kinesis", "IncomingRecords", STREAM, &split).await;
    put(m, "AWS/Kinesis", "IncomingBytes", STREAM, &[(12, 300_000.0), (6, 250_000.0)]).await;
    put(m, "AWS/Kinesis", "WriteProvisionedThroughputExceeded", STREAM, &[(12, 0.0)]).await;
    put(m, "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", STREAM, &[(12, 800.0), (6, 1200.0)]).await;
    put(m, "AWS/Firehose", "DataReadFromKinesisStream.Records", DELIVERY, &split).await;
}

async fn seed_domain(m: &Moto, red: f64) {
    let dims: &[(&str, &str)] = &[("DomainName", "kinesis"), ("ClientId", ACCOUNT)];
    put(m, "AWS/ES", "ClusterStatus.red", dims, &[(10, red)]).await;
    put(m, "AWS/ES", "ClusterStatus.yellow", dims, &[(10, 0.0)]).await;
    put(m, "AWS/ES", "FreeStorageSpace", dims, &[(10, 9800.0)]).await;
    put(m, "AWS/ES", "JVMMemoryPressure", dims, &[(10, 31.0)]).await;
}

async fn seed_lambda_ok(m: &Moto) {
    put(m, "AWS/Lambda", "Invocations", FUNCTION, &[(11, 4.0), (7, 4.0)]).await;
    put(m, "AWS/Lambda", "Errors", FUNCTION, &[(11, 0.0), (7, 0.0)]).await;
    put(m, "AWS/Lambda", "Throttles", FUNCTION, &[(11, 0.0)]).await;
    put(m, "AWS/Lambda", "Duration", FUNCTION, &[(11, 120.0), (11, 340.0), (7, 150.0)]).await;
    put(m, "AWS/Firehose", "ExecuteProcessing.Success", DELIVERY, &[(11, 1.0), (7, 1.0)]).await;
    put(m, "AWS/Firehose", "SucceedProcessing.Records", DELIVERY, &[(11, 4000.0), (7, 3584.0)]).await;
}

fn status(m: &Moto, spec: &str, json: bool) -> (i32, String, String) {
    let mut args = vec!["status", "-f", spec];
    if json {
        args.push("--json");
    }
    let r = m.pipectl(&args);
    (r.status, r.stdout, r.stderr)
}

fn only_pipeline(json: &str) -> Value {
    let doc: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(doc["pipelines"].as_array().unwrap().len(), 1, "{doc}");
    doc["pipelines"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_pipeline() {
    let m = Moto::start();
    let dir = Scratch::new("status-healthy");
    let spec = deploy(&m, &dir);
    seed_incoming(&m).await;
    seed_lambda_ok(&m).await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.Records", DELIVERY, &[(9, 4000.0), (5, 3584.0)]).await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.Bytes", DELIVERY, &[(9, 900_000.0), (5, 800_000.0)])
        .await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.Success", DELIVERY, &[(9, 1.0), (5, 1.0)]).await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.DataFreshness", DELIVERY, &[(9, 70.0)]).await;
    seed_domain(&m, 0.0).await;

    let (code, out, err) = status(&m, &spec, false);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("pipeline crime: HEALTHY\n  healthy: 7,584 of 7,584 records delivered in the last hour\n"),
        "{out}"
    );
    assert!(out.contains("  stream     DataStream: ACTIVE, 1 shard(s); 7,584 records in (550.0 kB); 0 throttled writes; read lag max 1.2 s"), "{out}");
    assert!(out.contains("duration avg 0.2 s, max 0.3 s of 300 s timeout"), "{out}");
    assert!(out.contains("cluster green; free storage min 9,800 MB; JVM memory pressure max 31%"), "{out}");
    assert!(out.contains("  incoming  ") && out.contains("  delivered "), "{out}");
    assert!(err.contains("API calls: "), "{err}");

    let (code, out, _) = status(&m, &spec, true);
    assert_eq!(code, 0);
    let p = only_pipeline(&out);
    assert_eq!(p["verdict"]["state"], "healthy", "{p}");
    assert_eq!(p["stream"]["incoming_records"], 7584.0);
    assert_eq!(p["delivery"]["success_ratio"], 1.0);
    assert_eq!(p["domain"]["jvm_pressure_max"], 31.0);
    assert_eq!(p["series"]["incoming"].as_array().unwrap().len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_at_the_lambda() {
    let m = Moto::start();
    let dir = Scratch::new("status-lambda");
    let spec = deploy(&m, &dir);
    seed_incoming(&m).await;
    // Every invocation runs into the 300 s timeout; Firehose's processing calls all fail.
    put(&m, "AWS/Lambda", "Invocations", FUNCTION, &[(11, 3.0), (7, 2.0)]).await;
    put(&m, "AWS/Lambda", "Errors", FUNCTION, &[(11, 3.0), (7, 2.0)]).await;
    put(&m, "AWS/Lambda", "Duration", FUNCTION, &[(11, 300_000.0), (7, 300_000.0)]).await;
    put(&m, "AWS/Firehose", "ExecuteProcessing.Success", DELIVERY, &[(11, 0.0), (7, 0.0)]).await;
    seed_domain(&m, 0.0).await;

    let (code, out, err) = status(&m, &spec, false);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.contains(
            "pipeline crime: DEGRADED\n  transform: 5 of 5 invocations failed in the last hour; maximum duration 300.0 s of the 300 s timeout\n  likely fix: the function hits its timeout: raise transform.timeout_s"
        ),
        "{out}"
    );
    let (code, out, _) = status(&m, &spec, true);
    assert_eq!(code, 2);
    let p = only_pipeline(&out);
    assert_eq!((p["verdict"]["state"].as_str(), p["verdict"]["stage"].as_str()), (Some("degraded"), Some("transform")));
    assert_eq!(p["transform"]["errors"], 5.0);
    assert_eq!(p["delivery"]["processing_success"], 0.0);
    assert_eq!(p["delivery"]["delivered_records"], Value::Null, "no datapoint: null");
}

/// One failed record as Firehose writes it for an OpenSearch destination (Firehose developer
/// guide, "Handle data delivery failures"), one JSON document per line.
fn failed_record(code: &str, message: &str, doc_id: &str) -> String {
    serde_json::json!({
        "attemptsMade": 4,
        "arrivalTimestamp": 1_764_500_000_000u64,
        "errorCode": code,
        "errorMessage": message,
        "attemptEndingTimestamp": 1_764_500_300_000u64,
        "rawData": "eyJkaXN0cmljdCI6M30=",
        "subsequenceNumber": 0,
        "esDocumentId": doc_id,
        "esIndexName": "crime-data",
        "esTypeName": ""
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_at_the_domain_with_failed_documents() {
    let m = Moto::start();
    let dir = Scratch::new("status-domain");
    let spec = deploy(&m, &dir);
    seed_incoming(&m).await;
    seed_lambda_ok(&m).await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.Records", DELIVERY, &[(9, 0.0), (5, 0.0)]).await;
    put(&m, "AWS/Firehose", "DeliveryToAmazonOpenSearchService.Success", DELIVERY, &[(9, 0.0), (5, 0.0)]).await;
    seed_domain(&m, 0.0).await;
    let denied = "User: arn:aws:sts::123456789012:assumed-role/crime-data-firehose/1764500000 is not authorized to perform: es:ESHttpPost";
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&m.sdk().await).force_path_style(true).build());
    let objects = [
        ("failed/AmazonOpenSearchService-failed/2026/01/01/10/firehose-1-2026-01-01-10-00-00-a", "403", denied),
        ("failed/AmazonOpenSearchService-failed/2026/01/01/10/firehose-1-2026-01-01-10-05-00-b", "403", denied),
    ];
    for (key, code, message) in objects {
        let body: String = (0..50).map(|i| failed_record(code, message, &format!("doc-{i}")) + "\n").collect();
        s3.put_object()
            .bucket("crime-data-firehose-backup")
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.into_bytes()))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct LastModified seconds
    }

    let (code, out, err) = status(&m, &spec, false);
    assert_eq!(code, 2, "{out}\n{err}");
    let evidence = format!(
        "  delivery: 0 of 7,584 records delivered in the last hour; 2 failed document object(s), latest: 403 {denied}\n"
    );
    assert!(out.contains(&evidence), "{out}");
    assert!(out.contains("  likely fix: the domain's access policy (or its fine-grained access control) must admit the Firehose role crime-data-firehose"), "{out}");
    assert!(
        out.contains("latest failed/AmazonOpenSearchService-failed/2026/01/01/10/firehose-1-2026-01-01-10-05-00-b"),
        "{out}"
    );
    // a few records shown, never the payload
    assert_eq!(out.matches("               403 User:").count(), 3, "{out}");
    assert!(!out.contains("eyJkaXN0cmljdCI6M30="), "{out}");

    let (code, out, _) = status(&m, &spec, true);
    assert_eq!(code, 2);
    let p = only_pipeline(&out);
    assert_eq!(p["verdict"]["stage"], "delivery", "{p}");
    assert_eq!(p["verdict"]["evidence"], evidence.trim());
    assert_eq!(p["failed"]["objects"], 2);
    assert_eq!(p["failed"]["latest"]["records"][0]["error_code"], "403");
    assert_eq!(p["delivery"]["success_ratio"], 0.0);
}

/// No metrics at all (what the emulator has by itself): "no data in the window", exit 0.
/// An unknown pipeline is refused before any AWS call.
#[tokio::test(flavor = "multi_thread")]
async fn no_metrics_is_no_data_not_broken() {
    let m = Moto::start();
    let dir = Scratch::new("status-nodata");
    let spec = deploy(&m, &dir);
    let (code, out, err) = status(&m, &spec, false);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("pipeline crime: NO DATA\n  no data in the window: nothing was written to stream DataStream in the last hour\n"), "{out}");
    let r = m.pipectl(&["status", "-f", &spec, "--pipeline", "nope"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no pipeline \"nope\" in the spec (it has: crime)"), "{}", r.stderr);
    assert!(!r.stderr.contains("API calls"), "{}", r.stderr);
}
