//! The read-only calls behind `status`, all through `Aws::call`: one batched GetMetricData for
//! every pipeline and the domain (paginated; 500 queries per call), one describe per resource,
//! and the failed-documents listing with a ranged read of the latest object. A caller denied a
//! read gets "unknown" for what that read would show, never a failed command.

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;

use super::metrics::{self, DomainNames, Folded, Key, Names, Owner, Points, Query, Window};
use super::verdict::{
    DeliveryFacts, DomainFacts, FailedFacts, FailedRecord, LatestFailed, PipelineFacts, Res, Series, StreamFacts,
    TransformFacts, Val,
};
use crate::aws::{Aws, AwsError, ErrorClass};
use crate::resources::found;
use crate::spec::{Pipeline, Spec};

/// GetMetricData takes at most 500 queries per call (CloudWatch API reference).
const QUERIES_PER_CALL: usize = 500;
/// The failed-documents listing stops after this many pages (1,000 keys each).
const MAX_LIST_PAGES: usize = 10;
/// How much of the latest failed object is read: its first records, never the whole payload.
const FAILED_HEAD_BYTES: u64 = 64 * 1024;
/// How many of its records are shown.
const FAILED_SAMPLE: usize = 3;

/// A denied read becomes "unknown"; everything else stays an error.
fn unknown_if_denied<T>(r: Result<T, AwsError>) -> Result<Result<T, String>, AwsError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is(ErrorClass::Denied) => Ok(Err(format!("{}: {}", e.op, e.code))),
        Err(e) => Err(e),
    }
}

/// Runs the queries over the window: the points of each query id.
pub async fn metric_points(aws: &Aws, queries: &[Query], w: &Window) -> Result<Points, AwsError> {
    let mut points = Points::new();
    let (start, end) = (DateTime::from_secs(w.start), DateTime::from_secs(w.end));
    for chunk in queries.chunks(QUERIES_PER_CALL) {
        let batch: Vec<MetricDataQuery> = chunk.iter().map(|q| sdk_query(q, w.period_s)).collect();
        let mut token: Option<String> = None;
        loop {
            let out = aws
                .call("cloudwatch:GetMetricData", "metrics", || {
                    aws.cloudwatch
                        .get_metric_data()
                        .set_metric_data_queries(Some(batch.clone()))
                        .start_time(start)
                        .end_time(end)
                        .scan_by(ScanBy::TimestampAscending)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            for r in out.metric_data_results() {
                let Some(id) = r.id() else { continue };
                let entry = points.entry(id.to_string()).or_default();
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    entry.push((t.secs(), *v));
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(points)
}

fn sdk_query(q: &Query, period_s: i64) -> MetricDataQuery {
    let dims = q.dimensions.iter().map(|(n, v)| Dimension::builder().name(*n).value(v).build()).collect();
    MetricDataQuery::builder()
        .id(&q.id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder().namespace(q.namespace).metric_name(&q.metric).set_dimensions(Some(dims)).build(),
                )
                .period(period_s as i32)
                .stat(q.stat.as_str())
                .build(),
        )
        .return_data(true)
        .build()
}

async fn stream_status(aws: &Aws, name: &str) -> Result<(Res, Option<u32>), AwsError> {
    Ok(match unknown_if_denied(crate::resources::stream::read(aws, name).await)? {
        Ok(Some(s)) => (Res::Found(s.status), Some(s.shards)),
        Ok(None) => (Res::Missing, None),
        Err(why) => (Res::Unknown(why), None),
    })
}

async fn function_status(aws: &Aws, name: &str) -> Result<(Res, Option<u32>), AwsError> {
    let r = found(
        aws.call("lambda:GetFunctionConfiguration", name, || {
            aws.lambda.get_function_configuration().function_name(name).send()
        })
        .await,
    );
    Ok(match unknown_if_denied(r)? {
        Ok(Some(c)) => (
            Res::Found(c.state().map(|s| s.as_str().to_string()).unwrap_or_else(|| "Active".into())),
            c.timeout().map(|t| t.max(0) as u32),
        ),
        Ok(None) => (Res::Missing, None),
        Err(why) => (Res::Unknown(why), None),
    })
}

async fn delivery_status(aws: &Aws, name: &str) -> Result<Res, AwsError> {
    let r = found(
        aws.call("firehose:DescribeDeliveryStream", name, || {
            aws.firehose.describe_delivery_stream().delivery_stream_name(name).send()
        })
        .await,
    );
    Ok(match unknown_if_denied(r)? {
        Ok(Some(out)) => out
            .delivery_stream_description()
            .map(|d| Res::Found(d.delivery_stream_status().as_str().to_string()))
            .unwrap_or(Res::Missing),
        Ok(None) => Res::Missing,
        Err(why) => Res::Unknown(why),
    })
}

async fn domain_status(aws: &Aws, name: &str) -> Result<(Res, Option<bool>), AwsError> {
    let r = found(
        aws.call("opensearch:DescribeDomain", name, || aws.opensearch.describe_domain().domain_name(name).send()).await,
    );
    Ok(match unknown_if_denied(r)? {
        Ok(Some(out)) => match out.domain_status() {
            Some(d) if d.deleted().unwrap_or(false) => (Res::Found("being deleted".into()), d.processing()),
            Some(d) => (
                Res::Found(if d.processing().unwrap_or(false) { "processing" } else { "active" }.into()),
                d.processing(),
            ),
            None => (Res::Missing, None),
        },
        Ok(None) => (Res::Missing, None),
        Err(why) => (Res::Unknown(why), None),
    })
}

/// The failed-document objects written under `prefix` in the window, and the first records
/// of the latest one. Firehose writes indexing failures under `<prefix>` with a destination
/// folder (`AmazonOpenSearchService-failed/`, `elasticsearch-failed/`) and the Lambda's
/// processing failures under `processing-failed/` (Firehose developer guide, "Handle data
/// delivery failures"); each object holds one JSON document per failed record.
async fn failed_documents(aws: &Aws, bucket: &str, prefix: &str, w: &Window) -> Result<FailedFacts, AwsError> {
    let mut facts = FailedFacts {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        objects: Some(0),
        processing_objects: 0,
        truncated: false,
        latest: None,
        unknown_reason: None,
    };
    let mut token: Option<String> = None;
    let mut latest: Option<(i64, String)> = None;
    let mut count = 0u64;
    for page in 0.. {
        if page == MAX_LIST_PAGES {
            facts.truncated = true;
            break;
        }
        let r = found(
            aws.call("s3:ListObjectsV2", bucket, || {
                aws.s3.list_objects_v2().bucket(bucket).prefix(prefix).set_continuation_token(token.clone()).send()
            })
            .await,
        );
        let out = match unknown_if_denied(r)? {
            Ok(Some(out)) => out,
            Ok(None) => break, // no bucket: nothing failed into it
            Err(why) => {
                facts.objects = None;
                facts.unknown_reason = Some(why);
                return Ok(facts);
            }
        };
        for o in out.contents() {
            let (Some(key), Some(modified)) = (o.key(), o.last_modified()) else { continue };
            let t = modified.secs();
            if w.bucket(t).is_none() {
                continue;
            }
            count += 1;
            if key.contains("processing-failed/") {
                facts.processing_objects += 1;
            }
            if !latest.as_ref().is_some_and(|(lt, lk)| (t, key) <= (*lt, lk.as_str())) {
                latest = Some((t, key.to_string()));
            }
        }
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    facts.objects = Some(count);
    if let Some((t, key)) = latest {
        let r = aws
            .call("s3:GetObject", &format!("{bucket}/{key}"), || {
                aws.s3.get_object().bucket(bucket).key(&key).range(format!("bytes=0-{}", FAILED_HEAD_BYTES - 1)).send()
            })
            .await;
        let records = match unknown_if_denied(r)? {
            Ok(out) => {
                let bytes = out.body.collect().await.map(|b| b.into_bytes().to_vec()).unwrap_or_default();
                failed_records(&bytes)
            }
            Err(_) => Vec::new(),
        };
        facts.latest = Some(LatestFailed {
            processing: key.contains("processing-failed/"),
            key,
            last_modified: chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            records,
        });
    }
    Ok(facts)
}

/// The first records of a failed-documents object: one JSON document per record, each with
/// `errorCode` and `errorMessage` (Firehose developer guide, "Handle data delivery failures":
/// attemptsMade, arrivalTimestamp, errorCode, errorMessage, attemptEndingTimestamp, rawData,
/// subsequenceNumber, esDocumentId, esIndexName, esTypeName). Documents are read one after the
/// other whatever separates them; a cut last one (the ranged read) is dropped.
pub fn failed_records(bytes: &[u8]) -> Vec<FailedRecord> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .take(FAILED_SAMPLE)
        .map(|v| {
            let s = |k: &str| match &v[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            FailedRecord { error_code: s("errorCode"), error_message: s("errorMessage") }
        })
        .collect()
}

fn val(result: &Result<Folded, String>, owner: Owner, key: Key) -> Val {
    match result {
        Ok(f) => Val::Known(f.total(owner, key)),
        Err(_) => Val::Unknown,
    }
}

fn val_ratio(result: &Result<Folded, String>, owner: Owner, sum: Key, count: Key) -> Val {
    match result {
        Ok(f) => Val::Known(metrics::ratio(f.total(owner, sum), f.total(owner, count))),
        Err(_) => Val::Unknown,
    }
}

/// Reads everything `status` shows for the given pipelines of the spec.
pub async fn facts(
    aws: &Aws,
    spec: &Spec,
    pipelines: &[&Pipeline],
    account: &str,
    w: &Window,
) -> Result<Vec<PipelineFacts>, AwsError> {
    let names: Vec<Names> = pipelines
        .iter()
        .map(|p| Names {
            stream: p.stream.name.clone(),
            function: p.transform.function.clone(),
            delivery: p.delivery.name.clone(),
            family: spec.search.family(),
        })
        .collect();
    let domain = DomainNames { domain: spec.search.domain.clone(), account: account.to_string() };
    let queries = metrics::all_queries(&names, &domain);
    let plain: Vec<Query> = queries.iter().map(|(_, _, q)| q.clone()).collect();
    let (points, domain_read) = tokio::join!(metric_points(aws, &plain, w), domain_status(aws, &domain.domain));
    let folded: Result<Folded, String> =
        unknown_if_denied(points)?.map(|p: Points| Folded::fold(&queries, &p, w)).map_err(|why| why.to_string());
    let (domain_res, processing) = domain_read?;
    let d = Owner::Domain;
    let domain_facts = DomainFacts {
        name: domain.domain.clone(),
        status: domain_res,
        processing,
        red: val(&folded, d, Key::ClusterRed),
        yellow: val(&folded, d, Key::ClusterYellow),
        free_storage_mb_min: val(&folded, d, Key::FreeStorageMin),
        jvm_pressure_max: val(&folded, d, Key::JvmPressureMax),
    };
    let mut out = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        let o = Owner::Pipeline(i);
        let (stream, function, delivery, failed) = tokio::join!(
            stream_status(aws, &p.stream.name),
            function_status(aws, &p.transform.function),
            delivery_status(aws, &p.delivery.name),
            failed_documents(aws, &spec.bucket.name, &p.delivery.failed_prefix, w),
        );
        let ((stream_res, shards), (fn_res, timeout), delivery_res, failed) = (stream?, function?, delivery?, failed?);
        let v = |k| val(&folded, o, k);
        let series = |k| match &folded {
            Ok(f) => f.series(o, k),
            Err(_) => Vec::new(),
        };
        out.push(PipelineFacts {
            name: p.name.clone(),
            stream: StreamFacts {
                name: p.stream.name.clone(),
                status: stream_res,
                shards,
                incoming_records: v(Key::IncomingRecords),
                incoming_bytes: v(Key::IncomingBytes),
                throttled_writes: v(Key::WriteThrottled),
                read_lag_ms_max: v(Key::IteratorAgeMax),
            },
            transform: TransformFacts {
                name: p.transform.function.clone(),
                status: fn_res,
                timeout_s: timeout.unwrap_or(p.transform.timeout_s),
                invocations: v(Key::Invocations),
                errors: v(Key::Errors),
                throttles: v(Key::Throttles),
                duration_ms_avg: val_ratio(&folded, o, Key::DurationSum, Key::DurationCount),
                duration_ms_max: v(Key::DurationMax),
            },
            delivery: DeliveryFacts {
                name: p.delivery.name.clone(),
                status: delivery_res,
                buffer_s: p.delivery.buffering.interval_s,
                read_records: v(Key::ReadRecords),
                processed_records: v(Key::ProcessedRecords),
                processing_success: val_ratio(&folded, o, Key::ProcessingSuccessSum, Key::ProcessingSuccessCount),
                delivered_records: v(Key::DeliveredRecords),
                delivered_bytes: v(Key::DeliveredBytes),
                success_ratio: val_ratio(&folded, o, Key::DeliverySuccessSum, Key::DeliverySuccessCount),
                freshness_s_max: v(Key::FreshnessMax),
            },
            failed,
            domain: domain_facts.clone(),
            series: Series {
                period_s: w.period_s,
                incoming: series(Key::IncomingRecords),
                delivered: series(Key::DeliveredRecords),
            },
            metrics_unknown: folded.as_ref().err().cloned(),
        });
    }
    Ok(out)
}

/// Which pipelines `--pipeline` selects (all without it).
pub fn select<'a>(spec: &'a Spec, only: Option<&str>) -> Result<Vec<&'a Pipeline>, String> {
    match only {
        None => Ok(spec.pipelines.iter().collect()),
        Some(name) => spec.pipeline(name).map(|p| vec![p]).ok_or_else(|| {
            let names: Vec<&str> = spec.pipelines.iter().map(|p| p.name.as_str()).collect();
            format!("no pipeline {name:?} in the spec (it has: {})", names.join(", "))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_records_reads_the_first_few_and_ignores_a_cut_one() {
        let rec = |code: &str| {
            format!(
                r#"{{"attemptsMade":4,"arrivalTimestamp":1700000000000,"errorCode":"{code}","errorMessage":"m {code}","attemptEndingTimestamp":1700000300000,"rawData":"eyJhIjoxfQ==","subsequenceNumber":0,"esDocumentId":"d","esIndexName":"crime-data","esTypeName":""}}"#
            )
        };
        let text = format!("{}\n{}\n{}\n{}\n{}", rec("403"), rec("400"), rec("429"), rec("500"), &rec("1")[..30]);
        let got = failed_records(text.as_bytes());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], FailedRecord { error_code: "403".into(), error_message: "m 403".into() });
        // concatenated without a separator, and cut mid-way
        let text = format!("{}{}", rec("403"), &rec("400")[..40]);
        assert_eq!(failed_records(text.as_bytes()).len(), 1);
        assert!(failed_records(b"not json").is_empty());
    }
}
