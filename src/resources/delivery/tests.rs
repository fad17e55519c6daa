//! Delivery stream tests: the diff table, the update shape, and both destination requests as they
//! reach the SDK boundary (a local capture server records what the SDK sends).

use std::sync::{Arc, Mutex};

use super::*;
use crate::testkit::{serve, Message};

fn want(family: EngineFamily) -> Desired {
    let role = "arn:aws:iam::123456789012:role/pipectl/s-firehose".to_string();
    let function = "arn:aws:lambda:eu-west-1:123456789012:function:transform-firehose-data";
    Desired {
        name: "firehose".into(),
        family,
        stream_name: "DataStream".into(),
        stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/DataStream".into(),
        role_name: "s-firehose".into(),
        role_arn: role.clone(),
        domain_name: "kinesis".into(),
        domain_arn: "arn:aws:es:eu-west-1:123456789012:domain/kinesis".into(),
        index: "crime-data".into(),
        buffer_mb: 1,
        buffer_s: 60,
        retry_s: 300,
        bucket_name: "b".into(),
        bucket_arn: "arn:aws:s3:::b".into(),
        failed_prefix: "failed/".into(),
        function_name: "transform-firehose-data".into(),
        processor: processor_params(function, &role, processor_buffer(1, 60)),
        tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
    }
}

fn live(family: EngineFamily) -> Live {
    let w = want(family);
    let mut processor = w.processor.clone();
    // AWS may add processor parameters of its own; they are not drift.
    processor.insert("SomethingAwsAdds".into(), "x".into());
    Live {
        name: w.name.clone(),
        arn: "arn:aws:firehose:eu-west-1:123456789012:deliverystream/firehose".into(),
        status: "ACTIVE".into(),
        failure: None,
        version_id: "3".into(),
        destination_id: "destinationId-000000000001".into(),
        source_stream_arn: Some(w.stream_arn.clone()),
        source_role_arn: Some(w.role_arn.clone()),
        family: Some(family),
        role_arn: Some(w.role_arn.clone()),
        domain_arn: Some(w.domain_arn.clone()),
        index: Some(w.index.clone()),
        buffer_mb: Some(1),
        buffer_s: Some(60),
        retry_s: Some(300),
        backup_mode: Some("FailedDocumentsOnly".into()),
        bucket_arn: Some(w.bucket_arn.clone()),
        failed_prefix: Some("failed/".into()),
        processing_enabled: true,
        processor,
        created: None,
        tags: w.tags.clone(),
    }
}

#[test]
fn diff_table() {
    type Case = (&'static str, fn(&mut Live), &'static [&'static str], bool);
    let cases: &[Case] = &[
        ("nothing to do", |_| {}, &[], false),
        ("status is not compared", |l| l.status = "UPDATING".into(), &[], false),
        ("buffer size", |l| l.buffer_mb = Some(5), &["buffering.size_mb"], false),
        ("buffer interval", |l| l.buffer_s = Some(300), &["buffering.interval_s"], false),
        ("index", |l| l.index = Some("other".into()), &["index"], false),
        ("prefix", |l| l.failed_prefix = Some("x/".into()), &["failed_prefix"], false),
        ("processing off", |l| l.processing_enabled = false, &["processing.enabled"], false),
        (
            "lambda arn",
            |l| {
                l.processor.insert("LambdaArn".into(), "arn:other".into());
            },
            &["processing.LambdaArn"],
            false,
        ),
        ("other source stream", |l| l.source_stream_arn = Some("arn:x".into()), &["source_stream"], true),
        ("other destination type", |l| l.family = Some(EngineFamily::Elasticsearch), &["destination_type"], true),
        // A stream Firehose failed to create is never "No changes.": it is replaced.
        (
            "creation failed",
            |l| {
                l.status = "CREATING_FAILED".into();
                l.failure = Some("KMS_ACCESS_DENIED: no grant".into());
            },
            &["status"],
            true,
        ),
        ("deletion failed", |l| l.status = "DELETING_FAILED".into(), &["status"], true),
    ];
    for (name, f, attrs, replace) in cases {
        let mut l = live(EngineFamily::OpenSearch);
        f(&mut l);
        let d = diff(&want(EngineFamily::OpenSearch), &l);
        let got: Vec<_> = d.iter().map(|c| c.attr.clone()).collect();
        assert_eq!(got, *attrs, "{name}");
        assert_eq!(d.iter().any(|c| c.forces_replace), *replace, "{name}");
    }
}

#[test]
fn update_carries_version_and_whole_destination() {
    let mut l = live(EngineFamily::Elasticsearch);
    l.buffer_mb = Some(5);
    let Op::Update(u) = update_op(&want(EngineFamily::Elasticsearch), &l) else { panic!() };
    assert_eq!(u.version_id, "3");
    assert_eq!(u.destination_id, "destinationId-000000000001");
    let d = u.destination.unwrap();
    assert_eq!((d.buffer_mb, d.buffer_s), (1, 60));
}

/// Runs a Create op against a local capture server and returns the CreateDeliveryStream body.
async fn captured_create(family: EngineFamily) -> serde_json::Value {
    let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(serve(listener, move |req| {
        let target = req.header("x-amz-target").unwrap_or("").to_string();
        log.lock().unwrap().push(req);
        let body = if target.ends_with("CreateDeliveryStream") {
            r#"{"DeliveryStreamARN":"arn:aws:firehose:eu-west-1:123456789012:deliverystream/firehose"}"#.to_string()
        } else {
            r#"{"DeliveryStreamDescription":{"DeliveryStreamName":"firehose","DeliveryStreamARN":"arn:aws:firehose:eu-west-1:123456789012:deliverystream/firehose","DeliveryStreamStatus":"ACTIVE","DeliveryStreamType":"KinesisStreamAsSource","VersionId":"1","Destinations":[],"HasMoreDestinations":false}}"#.to_string()
        };
        Message::response(200, "application/x-amz-json-1.1", body)
    }));
    let cfg = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(aws_sdk_firehose::config::SharedCredentialsProvider::new(
            aws_sdk_firehose::config::Credentials::new("AKID", "SECRET", None, None, "test"),
        ))
        .build();
    let aws = Aws::from_config(&cfg, true);
    let obs = crate::events::Quiet;
    let ctx = Ctx { aws: &aws, obs: &obs, id: "delivery_stream.firehose" };
    execute(&ctx, &Op::Create(want(family))).await.unwrap();
    let reqs = seen.lock().unwrap();
    let create =
        reqs.iter().find(|r| r.header("x-amz-target").unwrap_or("").ends_with("CreateDeliveryStream")).unwrap();
    serde_json::from_slice(&create.body).unwrap()
}

#[tokio::test]
async fn opensearch_destination_request_shape() {
    let body = captured_create(EngineFamily::OpenSearch).await;
    assert_eq!(body["DeliveryStreamType"], "KinesisStreamAsSource");
    assert!(body.get("ElasticsearchDestinationConfiguration").is_none());
    let d = &body["AmazonopensearchserviceDestinationConfiguration"];
    assert_eq!(d["DomainARN"], "arn:aws:es:eu-west-1:123456789012:domain/kinesis");
    assert_eq!(d["IndexName"], "crime-data");
    assert_eq!(d["IndexRotationPeriod"], "NoRotation");
    assert_eq!(d["BufferingHints"], serde_json::json!({"IntervalInSeconds": 60, "SizeInMBs": 1}));
    assert_eq!(d["RetryOptions"]["DurationInSeconds"], 300);
    assert_eq!(d["S3BackupMode"], "FailedDocumentsOnly");
    assert_eq!(d["S3Configuration"]["Prefix"], "failed/");
    assert_eq!(d["S3Configuration"]["BucketARN"], "arn:aws:s3:::b");
    let p = &d["ProcessingConfiguration"];
    assert_eq!(p["Enabled"], true);
    assert_eq!(p["Processors"][0]["Type"], "Lambda");
    let params = p["Processors"][0]["Parameters"].as_array().unwrap();
    assert!(params.iter().any(|x| x["ParameterName"] == "LambdaArn"
        && x["ParameterValue"] == "arn:aws:lambda:eu-west-1:123456789012:function:transform-firehose-data:$LATEST"));
    assert_eq!(
        body["KinesisStreamSourceConfiguration"]["KinesisStreamARN"],
        "arn:aws:kinesis:eu-west-1:123456789012:stream/DataStream"
    );
    assert_eq!(body["Tags"][0]["Key"], "pipectl:stack");
}

#[tokio::test]
async fn elasticsearch_destination_request_shape() {
    let body = captured_create(EngineFamily::Elasticsearch).await;
    assert!(body.get("AmazonopensearchserviceDestinationConfiguration").is_none());
    let d = &body["ElasticsearchDestinationConfiguration"];
    assert_eq!(d["IndexName"], "crime-data");
    assert_eq!(d["S3BackupMode"], "FailedDocumentsOnly");
}

#[test]
fn processor_buffer_follows_the_spec_within_its_limits() {
    assert_eq!(processor_buffer(1, 60), (1, 60));
    assert_eq!(processor_buffer(2, 120), (2, 120));
    // Over the processor's 3 MB, and under its 60 s: the nearest the processor allows.
    assert_eq!(processor_buffer(64, 30), (3, 60));
    assert_eq!(processor_buffer(5, 0), (3, 60));
    assert_eq!(processor_buffer(1, 900), (1, 900));
}
