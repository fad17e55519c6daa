//! Firehose delivery stream: Kinesis source, Lambda processing, OpenSearch destination (the
//! Amazon OpenSearch Service destination for `OpenSearch_*`, the Elasticsearch destination for
//! `Elasticsearch_*`), failed documents backed up to S3. Destination settings change in place
//! with UpdateDestination (current version id, whole nested objects); the source stream and the
//! destination type force a replacement.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_firehose::types::{
    AmazonopensearchserviceBufferingHints, AmazonopensearchserviceDestinationConfiguration,
    AmazonopensearchserviceDestinationUpdate, AmazonopensearchserviceIndexRotationPeriod,
    AmazonopensearchserviceRetryOptions, AmazonopensearchserviceS3BackupMode, BufferingHints, CompressionFormat,
    DeliveryStreamType, ElasticsearchBufferingHints, ElasticsearchDestinationConfiguration,
    ElasticsearchDestinationUpdate, ElasticsearchIndexRotationPeriod, ElasticsearchRetryOptions,
    ElasticsearchS3BackupMode, KinesisStreamSourceConfiguration, ProcessingConfiguration, Processor,
    ProcessorParameter, ProcessorParameterName, ProcessorType, S3DestinationConfiguration, S3DestinationUpdate, Tag,
};
use serde::{Deserialize, Serialize};

use super::{cmp, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::{from_sdk, gone_ok};
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};
use crate::spec::EngineFamily;

const TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The failed-documents backup is written in 5 MB / 300 s chunks, uncompressed (Firehose's
/// defaults, sent explicitly so AWS-filled values never show as drift).
const BACKUP_BUFFER: (i32, i32) = (5, 300);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub family: EngineFamily,
    pub stream_name: String,
    pub stream_arn: String,
    pub role_name: String,
    pub role_arn: String,
    pub domain_name: String,
    pub domain_arn: String,
    pub index: String,
    pub buffer_mb: u32,
    pub buffer_s: u32,
    pub retry_s: u32,
    pub bucket_name: String,
    pub bucket_arn: String,
    pub failed_prefix: String,
    pub function_name: String,
    /// Processor parameters as sent (LambdaArn qualified with `:$LATEST`, as AWS stores it).
    pub processor: BTreeMap<String, String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub version_id: String,
    pub destination_id: String,
    pub source_stream_arn: Option<String>,
    pub source_role_arn: Option<String>,
    pub family: Option<EngineFamily>,
    pub role_arn: Option<String>,
    pub domain_arn: Option<String>,
    pub index: Option<String>,
    pub buffer_mb: Option<u32>,
    pub buffer_s: Option<u32>,
    pub retry_s: Option<u32>,
    pub backup_mode: Option<String>,
    pub bucket_arn: Option<String>,
    pub failed_prefix: Option<String>,
    pub processing_enabled: bool,
    pub processor: BTreeMap<String, String>,
    pub created: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create(Desired),
    Update(Update),
    Delete { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub name: String,
    /// UpdateDestination needs the version and destination id read at plan time; if another
    /// change lands in between, Firehose refuses (ConcurrentModificationException).
    pub version_id: String,
    pub destination_id: String,
    /// The whole destination to write, if any of it differs.
    pub destination: Option<Desired>,
    pub tags: TagUpdate,
}

/// The Lambda processor's buffer (MB, s) for the spec's buffering: the processor accepts 1-3 MB
/// and 60-900 s.
pub fn processor_buffer(size_mb: u32, interval_s: u32) -> (u32, u32) {
    (size_mb.clamp(1, 3), interval_s.clamp(60, 900))
}

pub fn processor_params(function_arn: &str, role_arn: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("LambdaArn".to_string(), format!("{function_arn}:$LATEST")),
        ("NumberOfRetries".to_string(), "3".to_string()),
        ("RoleArn".to_string(), role_arn.to_string()),
        ("BufferSizeInMBs".to_string(), "1".to_string()),
        ("BufferIntervalInSeconds".to_string(), "60".to_string()),
    ])
}

/// Extracts the common fields of either destination description type.
macro_rules! read_dest {
    ($d:expr, $live:expr, $family:expr) => {{
        let d = $d;
        $live.family = Some($family);
        $live.role_arn = d.role_arn().map(str::to_string);
        $live.domain_arn = d.domain_arn().map(str::to_string);
        $live.index = d.index_name().map(str::to_string);
        $live.buffer_mb = d.buffering_hints().and_then(|b| b.size_in_mbs()).map(|v| v.max(0) as u32);
        $live.buffer_s = d.buffering_hints().and_then(|b| b.interval_in_seconds()).map(|v| v.max(0) as u32);
        $live.retry_s = d.retry_options().and_then(|r| r.duration_in_seconds()).map(|v| v.max(0) as u32);
        $live.backup_mode = d.s3_backup_mode().map(|m| m.as_str().to_string());
        if let Some(s3) = d.s3_destination_description() {
            $live.bucket_arn = Some(s3.bucket_arn().to_string());
            $live.failed_prefix = s3.prefix().map(str::to_string);
        }
        if let Some(p) = d.processing_configuration() {
            $live.processing_enabled = p.enabled().unwrap_or(false);
            for proc in p.processors().iter().filter(|p| p.r#type() == &ProcessorType::Lambda) {
                for param in proc.parameters() {
                    $live
                        .processor
                        .insert(param.parameter_name().as_str().to_string(), param.parameter_value().to_string());
                }
            }
        }
    }};
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let out = match aws.firehose.describe_delivery_stream().delivery_stream_name(name).send().await {
        Ok(o) => o,
        Err(e) => {
            let e = from_sdk("firehose:DescribeDeliveryStream", name, e);
            return if e.is(ErrorClass::NotFound) { Ok(None) } else { Err(e) };
        }
    };
    let Some(d) = out.delivery_stream_description() else { return Ok(None) };
    let source = d.source().and_then(|s| s.kinesis_stream_source_description());
    let mut live = Live {
        name: name.to_string(),
        arn: d.delivery_stream_arn().to_string(),
        status: d.delivery_stream_status().as_str().to_string(),
        version_id: d.version_id().to_string(),
        destination_id: String::new(),
        source_stream_arn: source.and_then(|s| s.kinesis_stream_arn()).map(str::to_string),
        source_role_arn: source.and_then(|s| s.role_arn()).map(str::to_string),
        family: None,
        role_arn: None,
        domain_arn: None,
        index: None,
        buffer_mb: None,
        buffer_s: None,
        retry_s: None,
        backup_mode: None,
        bucket_arn: None,
        failed_prefix: None,
        processing_enabled: false,
        processor: BTreeMap::new(),
        created: d.create_timestamp().map(|t| t.to_string()),
        tags: read_tags(aws, name).await?,
    };
    if let Some(dest) = d.destinations().first() {
        live.destination_id = dest.destination_id().to_string();
        if let Some(os) = dest.amazonopensearchservice_destination_description() {
            read_dest!(os, live, EngineFamily::OpenSearch);
        } else if let Some(es) = dest.elasticsearch_destination_description() {
            read_dest!(es, live, EngineFamily::Elasticsearch);
        }
    }
    Ok(Some(live))
}

async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    let pairs = super::exclusive_start_pages(|start| async move {
        let out = aws
            .firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(name)
            .set_exclusive_start_tag_key(start)
            .send()
            .await
            .map_err(|e| from_sdk("firehose:ListTagsForDeliveryStream", name, e))?;
        let items: Vec<(String, String)> =
            out.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
        let last = items.last().map(|(k, _)| k.clone());
        Ok((items, out.has_more_tags(), last))
    })
    .await?;
    Ok(pairs.into_iter().collect())
}

pub async fn discover(aws: &Aws, stack: &str) -> Result<Vec<String>, AwsError> {
    let names = super::exclusive_start_pages(|start| async move {
        let out = aws
            .firehose
            .list_delivery_streams()
            .set_exclusive_start_delivery_stream_name(start)
            .send()
            .await
            .map_err(|e| from_sdk("firehose:ListDeliveryStreams", "*", e))?;
        let page = out.delivery_stream_names().to_vec();
        let last = page.last().cloned();
        Ok((page, out.has_more_delivery_streams(), last))
    })
    .await?;
    super::keep_owned(names, stack, |n| async move { read_tags(aws, &n).await }).await
}

fn destination_differs(want: &Desired, have: &Live) -> bool {
    let mut scratch = Vec::new();
    destination_changes(&mut scratch, want, have);
    !scratch.is_empty()
}

fn destination_changes(out: &mut Vec<Change>, want: &Desired, have: &Live) {
    cmp(out, "role_arn", have.role_arn.as_deref(), Some(want.role_arn.as_str()));
    cmp(out, "domain_arn", have.domain_arn.as_deref(), Some(want.domain_arn.as_str()));
    cmp(out, "index", have.index.as_deref(), Some(want.index.as_str()));
    cmp(out, "buffering.size_mb", have.buffer_mb, Some(want.buffer_mb));
    cmp(out, "buffering.interval_s", have.buffer_s, Some(want.buffer_s));
    cmp(out, "retry_s", have.retry_s, Some(want.retry_s));
    cmp(out, "backup_bucket", have.bucket_arn.as_deref(), Some(want.bucket_arn.as_str()));
    cmp(out, "failed_prefix", have.failed_prefix.as_deref(), Some(want.failed_prefix.as_str()));
    cmp(out, "processing.enabled", have.processing_enabled, true);
    // Only the parameters pipectl sets are compared: AWS may add defaults of its own.
    for (k, v) in &want.processor {
        cmp(out, &format!("processing.{k}"), have.processor.get(k).map(String::as_str), Some(v.as_str()));
    }
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    if have.source_stream_arn.as_deref() != Some(want.stream_arn.as_str()) {
        out.push(Change::new("source_stream", &have.source_stream_arn, &want.stream_arn).replacing());
    }
    if have.source_role_arn.as_deref() != Some(want.role_arn.as_str()) {
        out.push(Change::new("source_role", &have.source_role_arn, &want.role_arn).replacing());
    }
    if have.family != Some(want.family) {
        out.push(Change::new("destination_type", have.family, want.family).replacing());
        return out;
    }
    if have.backup_mode.as_deref() != Some("FailedDocumentsOnly") {
        out.push(Change::new("backup_mode", &have.backup_mode, "FailedDocumentsOnly").replacing());
    }
    destination_changes(&mut out, want, have);
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    Op::Update(Update {
        name: want.name.clone(),
        version_id: have.version_id.clone(),
        destination_id: have.destination_id.clone(),
        destination: destination_differs(want, have).then(|| want.clone()),
        tags: TagUpdate::between(&want.tags, &have.tags),
    })
}

fn processing(d: &Desired) -> ProcessingConfiguration {
    let params = d
        .processor
        .iter()
        .map(|(k, v)| {
            ProcessorParameter::builder()
                .parameter_name(ProcessorParameterName::from(k.as_str()))
                .parameter_value(v)
                .build()
                .expect("name and value set")
        })
        .collect();
    ProcessingConfiguration::builder()
        .enabled(true)
        .processors(
            Processor::builder().r#type(ProcessorType::Lambda).set_parameters(Some(params)).build().expect("type set"),
        )
        .build()
}

fn s3_config(d: &Desired) -> S3DestinationConfiguration {
    S3DestinationConfiguration::builder()
        .role_arn(&d.role_arn)
        .bucket_arn(&d.bucket_arn)
        .prefix(&d.failed_prefix)
        .buffering_hints(
            BufferingHints::builder().size_in_mbs(BACKUP_BUFFER.0).interval_in_seconds(BACKUP_BUFFER.1).build(),
        )
        .compression_format(CompressionFormat::Uncompressed)
        .build()
        .expect("role and bucket set")
}

fn s3_update(d: &Desired) -> S3DestinationUpdate {
    S3DestinationUpdate::builder()
        .role_arn(&d.role_arn)
        .bucket_arn(&d.bucket_arn)
        .prefix(&d.failed_prefix)
        .buffering_hints(
            BufferingHints::builder().size_in_mbs(BACKUP_BUFFER.0).interval_in_seconds(BACKUP_BUFFER.1).build(),
        )
        .compression_format(CompressionFormat::Uncompressed)
        .build()
}

/// The settings both destination types share, on either family's builder (the SDK has one
/// set of types per family, with the same method names).
macro_rules! destination {
    ($builder:expr, $d:expr, $rotation:expr, $buffering:ident, $retry:ident) => {
        $builder
            .role_arn(&$d.role_arn)
            .domain_arn(&$d.domain_arn)
            .index_name(&$d.index)
            .index_rotation_period($rotation)
            .buffering_hints(
                $buffering::builder().size_in_mbs($d.buffer_mb as i32).interval_in_seconds($d.buffer_s as i32).build(),
            )
            .retry_options($retry::builder().duration_in_seconds($d.retry_s as i32).build())
            .processing_configuration(processing($d))
    };
}

/// The Amazon OpenSearch Service destination (OpenSearch engines).
pub fn opensearch_destination(d: &Desired) -> AmazonopensearchserviceDestinationConfiguration {
    destination!(
        AmazonopensearchserviceDestinationConfiguration::builder(),
        d,
        AmazonopensearchserviceIndexRotationPeriod::NoRotation,
        AmazonopensearchserviceBufferingHints,
        AmazonopensearchserviceRetryOptions
    )
    .s3_backup_mode(AmazonopensearchserviceS3BackupMode::FailedDocumentsOnly)
    .s3_configuration(s3_config(d))
    .build()
    .expect("role, index and s3 set")
}

/// The Elasticsearch destination (Elasticsearch engines).
pub fn elasticsearch_destination(d: &Desired) -> ElasticsearchDestinationConfiguration {
    destination!(
        ElasticsearchDestinationConfiguration::builder(),
        d,
        ElasticsearchIndexRotationPeriod::NoRotation,
        ElasticsearchBufferingHints,
        ElasticsearchRetryOptions
    )
    .s3_backup_mode(ElasticsearchS3BackupMode::FailedDocumentsOnly)
    .s3_configuration(s3_config(d))
    .build()
    .expect("role, index and s3 set")
}

fn fh_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key set")).collect()
}

async fn read_status(aws: &Aws, name: &str) -> Result<Option<String>, AwsError> {
    match aws.firehose.describe_delivery_stream().delivery_stream_name(name).send().await {
        Ok(o) => Ok(o.delivery_stream_description().map(|d| d.delivery_stream_status().as_str().to_string())),
        Err(e) => {
            let e = from_sdk("firehose:DescribeDeliveryStream", name, e);
            if e.is(ErrorClass::NotFound) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let fh = &ctx.aws.firehose;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            let source = KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(&d.stream_arn)
                .role_arn(&d.role_arn)
                .build()
                .expect("stream and role set");
            // A fresh Firehose role is "unable to be assumed" until IAM propagates it:
            // classified NotYetPropagated and retried.
            ctx.retry("firehose:CreateDeliveryStream", || async {
                let req = fh
                    .create_delivery_stream()
                    .delivery_stream_name(name)
                    .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
                    .kinesis_stream_source_configuration(source.clone())
                    .set_tags(Some(fh_tags(&d.tags)));
                let req = match d.family {
                    EngineFamily::OpenSearch => {
                        req.amazonopensearchservice_destination_configuration(opensearch_destination(d))
                    }
                    EngineFamily::Elasticsearch => {
                        req.elasticsearch_destination_configuration(elasticsearch_destination(d))
                    }
                };
                req.send().await.map_err(|e| from_sdk("firehose:CreateDeliveryStream", name, e))
            })
            .await?;
            ctx.wait_until("delivery stream ACTIVE", TIMEOUT, || async {
                match read_status(ctx.aws, name).await? {
                    Some(s) if s == "ACTIVE" => Ok(None),
                    Some(s) if s.ends_with("FAILED") => {
                        Err(AwsError::local("firehose:wait", name, &s, "creation failed"))
                    }
                    Some(s) => Ok(Some(s)),
                    None => Ok(Some("not visible yet".into())),
                }
            })
            .await
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            if !u.tags.set.is_empty() {
                ctx.retry("firehose:TagDeliveryStream", || async {
                    fh.tag_delivery_stream()
                        .delivery_stream_name(name)
                        .set_tags(Some(fh_tags(&u.tags.set)))
                        .send()
                        .await
                        .map_err(|e| from_sdk("firehose:TagDeliveryStream", name, e))
                })
                .await?;
            }
            if !u.tags.remove.is_empty() {
                ctx.retry("firehose:UntagDeliveryStream", || async {
                    fh.untag_delivery_stream()
                        .delivery_stream_name(name)
                        .set_tag_keys(Some(u.tags.remove.clone()))
                        .send()
                        .await
                        .map_err(|e| from_sdk("firehose:UntagDeliveryStream", name, e))
                })
                .await?;
            }
            if let Some(d) = &u.destination {
                // Whole nested objects every time: Firehose merges UpdateDestination shallowly,
                // so a partial BufferingHints would drop the other field.
                ctx.retry("firehose:UpdateDestination", || async {
                    let req = fh
                        .update_destination()
                        .delivery_stream_name(name)
                        .current_delivery_stream_version_id(&u.version_id)
                        .destination_id(&u.destination_id);
                    let req = match d.family {
                        EngineFamily::OpenSearch => req.amazonopensearchservice_destination_update(
                            destination!(
                                AmazonopensearchserviceDestinationUpdate::builder(),
                                d,
                                AmazonopensearchserviceIndexRotationPeriod::NoRotation,
                                AmazonopensearchserviceBufferingHints,
                                AmazonopensearchserviceRetryOptions
                            )
                            .s3_update(s3_update(d))
                            .build(),
                        ),
                        EngineFamily::Elasticsearch => req.elasticsearch_destination_update(
                            destination!(
                                ElasticsearchDestinationUpdate::builder(),
                                d,
                                ElasticsearchIndexRotationPeriod::NoRotation,
                                ElasticsearchBufferingHints,
                                ElasticsearchRetryOptions
                            )
                            .s3_update(s3_update(d))
                            .build(),
                        ),
                    };
                    req.send().await.map_err(|e| from_sdk("firehose:UpdateDestination", name, e))
                })
                .await?;
            }
            Ok(())
        }
        Op::Delete { name } => {
            let name = name.as_str();
            gone_ok(
                ctx.retry("firehose:DeleteDeliveryStream", || async {
                    fh.delete_delivery_stream()
                        .delivery_stream_name(name)
                        .send()
                        .await
                        .map_err(|e| from_sdk("firehose:DeleteDeliveryStream", name, e))
                })
                .await,
            )?;
            ctx.wait_until("delivery stream deleted", TIMEOUT, || async { read_status(ctx.aws, name).await }).await
        }
    }
}

#[cfg(test)]
mod tests;
