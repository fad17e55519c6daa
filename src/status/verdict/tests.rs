use super::*;

fn k(v: f64) -> Val {
    Val::Known(Some(v))
}

const NONE: Val = Val::Known(None);

/// A pipeline that delivered everything it received.
fn healthy() -> PipelineFacts {
    PipelineFacts {
        name: "crime".into(),
        stream: StreamFacts {
            name: "DataStream".into(),
            status: Res::Found("ACTIVE".into()),
            shards: Some(1),
            incoming_records: k(7584.0),
            incoming_bytes: k(1_200_000.0),
            throttled_writes: k(0.0),
            read_lag_ms_max: k(1200.0),
        },
        transform: TransformFacts {
            name: "transform-firehose-data".into(),
            status: Res::Found("Active".into()),
            timeout_s: 300,
            invocations: k(13.0),
            errors: k(0.0),
            throttles: k(0.0),
            duration_ms_avg: k(120.0),
            duration_ms_max: k(340.0),
        },
        delivery: DeliveryFacts {
            name: "firehose".into(),
            status: Res::Found("ACTIVE".into()),
            buffer_s: 60,
            read_records: k(7584.0),
            processed_records: k(7584.0),
            processing_success: k(1.0),
            delivered_records: k(7584.0),
            delivered_bytes: k(2_500_000.0),
            success_ratio: k(1.0),
            freshness_s_max: k(75.0),
        },
        failed: FailedFacts {
            bucket: "b".into(),
            prefix: "failed/".into(),
            objects: Some(0),
            processing_objects: 0,
            truncated: false,
            latest: None,
            unknown_reason: None,
        },
        domain: DomainFacts {
            name: "kinesis".into(),
            status: Res::Found("active".into()),
            processing: Some(false),
            red: k(0.0),
            yellow: k(0.0),
            free_storage_mb_min: k(9800.0),
            jvm_pressure_max: k(31.0),
        },
        series: Series { period_s: 120, incoming: vec![], delivered: vec![] },
        metrics_unknown: None,
    }
}

fn failed_docs(n: u64, processing: bool, code: &str, msg: &str) -> FailedFacts {
    FailedFacts {
        objects: Some(n),
        processing_objects: if processing { n } else { 0 },
        latest: Some(LatestFailed {
            key: "failed/x".into(),
            last_modified: "t".into(),
            processing,
            records: vec![FailedRecord { error_code: code.into(), error_message: msg.into() }],
        }),
        ..healthy().failed
    }
}

#[test]
fn verdict_table() {
    type Edit = fn(&mut PipelineFacts);
    /// name, edit of the healthy facts, state, stage, evidence, a part of the fix.
    type Row = (&'static str, Edit, State, Option<Stage>, &'static str, Option<&'static str>);
    let rows: Vec<Row> = vec![
        ("healthy", |_| {}, State::Healthy, None, "healthy: 7,584 of 7,584 records delivered in the last hour", None),
        (
            "no data (the emulator: no datapoints at all)",
            |f| {
                for v in [
                    &mut f.stream.incoming_records,
                    &mut f.delivery.delivered_records,
                    &mut f.transform.invocations,
                    &mut f.transform.errors,
                    &mut f.delivery.read_records,
                ] {
                    *v = NONE;
                }
            },
            State::NoData,
            None,
            "no data in the window: nothing was written to stream DataStream in the last hour",
            Some("pipectl produce"),
        ),
        (
            "records came in, nothing downstream published (the emulator; or metrics not in yet)",
            |f| {
                for v in [
                    &mut f.delivery.read_records,
                    &mut f.delivery.processed_records,
                    &mut f.delivery.processing_success,
                    &mut f.delivery.delivered_records,
                    &mut f.delivery.delivered_bytes,
                    &mut f.delivery.success_ratio,
                    &mut f.delivery.freshness_s_max,
                    &mut f.transform.invocations,
                    &mut f.transform.errors,
                    &mut f.transform.throttles,
                    &mut f.transform.duration_ms_avg,
                    &mut f.transform.duration_ms_max,
                ] {
                    *v = NONE;
                }
            },
            State::NoData,
            None,
            "no delivery data in the window: 7,584 records came into stream DataStream in the last hour, but neither firehose nor transform-firehose-data published a metric",
            Some("metrics arrive late"),
        ),
        (
            "metrics not readable",
            |f| {
                f.stream.incoming_records = Val::Unknown;
                f.metrics_unknown = Some("AccessDenied".into());
            },
            State::Unknown,
            None,
            "unknown: the metrics could not be read (AccessDenied)",
            Some("cloudwatch:GetMetricData"),
        ),
        (
            "stream missing",
            |f| f.stream.status = Res::Missing,
            State::Degraded,
            Some(Stage::Stream),
            "stream: DataStream does not exist",
            Some("pipectl apply"),
        ),
        (
            "Firehose does not read the stream",
            |f| f.delivery.read_records = NONE,
            State::Degraded,
            Some(Stage::Delivery),
            "delivery: firehose read 0 of 7,584 records from stream DataStream in the last hour",
            Some("kinesis:GetRecords"),
        ),
        (
            "stalled at the Lambda: every invocation times out",
            |f| {
                f.transform.errors = k(13.0);
                f.transform.duration_ms_max = k(300_000.0);
                f.delivery.delivered_records = NONE;
            },
            State::Degraded,
            Some(Stage::Transform),
            "transform: 13 of 13 invocations failed in the last hour; maximum duration 300.0 s of the 300 s timeout",
            Some("raise transform.timeout_s"),
        ),
        (
            "Lambda throttled",
            |f| f.transform.throttles = k(4.0),
            State::Degraded,
            Some(Stage::Transform),
            "transform: 4 invocations throttled in the last hour",
            Some("concurrency"),
        ),
        (
            "records failed processing",
            |f| f.failed = failed_docs(2, true, "Lambda.FunctionError", "The Lambda function was successfully invoked but it returned an error result."),
            State::Degraded,
            Some(Stage::Transform),
            "transform: records failed processing in the last hour; 2 failed document object(s), latest: Lambda.FunctionError The Lambda function was successfully invoked but it returned an error result.",
            Some("pipectl invoke"),
        ),
        (
            "failing at the domain: 403",
            |f| {
                f.delivery.delivered_records = NONE;
                f.delivery.success_ratio = k(0.0);
                f.failed = failed_docs(12, false, "403", "User: arn:aws:sts::123456789012:assumed-role/crime-data-firehose/x is not authorized to perform: es:ESHttpPost");
            },
            State::Degraded,
            Some(Stage::Delivery),
            "delivery: 0 of 7,584 records delivered in the last hour; 12 failed document object(s), latest: 403 User: arn:aws:sts::123456789012:assumed-role/crime-data-firehose/x is not authorized to perform: es:ESHttpPost",
            Some("access policy"),
        ),
        (
            "mapping conflict on some documents",
            |f| {
                f.delivery.delivered_records = k(7000.0);
                f.failed = failed_docs(3, false, "400", "mapper_parsing_exception: failed to parse field [district] of type [integer]");
            },
            State::Degraded,
            Some(Stage::Delivery),
            "delivery: 7,000 of 7,584 records delivered in the last hour; 3 failed document object(s), latest: 400 mapper_parsing_exception: failed to parse field [district] of type [integer]",
            Some("mapping conflict"),
        ),
        (
            "domain red",
            |f| f.domain.red = k(1.0),
            State::Degraded,
            Some(Stage::Domain),
            "domain: kinesis cluster status red in the last hour",
            Some("primary shard"),
        ),
        (
            "domain missing",
            |f| f.domain.status = Res::Missing,
            State::Degraded,
            Some(Stage::Domain),
            "domain: kinesis does not exist",
            Some("pipectl apply"),
        ),
    ];
    for (name, edit, state, stage, evidence, fix) in rows {
        let mut f = healthy();
        edit(&mut f);
        let v = verdict(&f, "the last hour", "crime-data-firehose");
        assert_eq!((v.state, v.stage), (state, stage), "{name}: {v:?}");
        assert_eq!(v.evidence, evidence, "{name}");
        match fix {
            Some(want) => assert!(v.fix.as_deref().unwrap_or("").contains(want), "{name}: fix {:?}", v.fix),
            None => assert_eq!(v.fix, None, "{name}"),
        }
    }
}

#[test]
fn notes_do_not_change_a_healthy_verdict() {
    let mut f = healthy();
    f.stream.throttled_writes = k(25.0);
    f.transform.duration_ms_max = k(250_000.0);
    f.domain.yellow = k(1.0);
    let v = verdict(&f, "the last hour", "r");
    assert_eq!(v.state, State::Healthy);
    assert_eq!(v.notes.len(), 3, "{:?}", v.notes);
    assert!(v.notes[0].starts_with("stream: 25 writes throttled"));
}

#[test]
fn likely_fixes() {
    let r = |c: &str, m: &str| FailedRecord { error_code: c.into(), error_message: m.into() };
    for (rec, want) in [
        (r("403", "forbidden"), Some("access policy")),
        (r("400", "mapper_parsing_exception"), Some("mapping")),
        (r("403", "cluster_block_exception index_create_block"), Some("storage")),
        (r("429", "es_rejected_execution_exception"), Some("under load")),
        (r("Lambda.FunctionError", "Task timed out after 300 seconds"), Some("timeout")),
        (r("500", "internal"), None),
    ] {
        let got = likely_fix(&rec, "role");
        match want {
            Some(w) => assert!(got.as_deref().unwrap_or("").contains(w), "{rec:?}: {got:?}"),
            None => assert_eq!(got, None),
        }
    }
}

#[test]
fn labels_and_numbers() {
    assert_eq!(window_label(3600), "the last hour");
    assert_eq!(window_label(1800), "the last 30 minutes");
    assert_eq!(window_label(172_800), "the last 2 days");
    assert_eq!(thousands(7584.0), "7,584");
    assert_eq!(thousands(1_234_567.4), "1,234,567");
    assert_eq!(thousands(12.0), "12");
    assert_eq!(clip("abcdef", 4), "abc…");
}
