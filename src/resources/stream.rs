//! Kinesis data stream: read, diff, create/update/delete. Shards, retention, encryption and tags
//! all change in place; resharding steps by at most x2 or /2 per UpdateShardCount call (the
//! AWS limit, which moto does not enforce).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::types::{EncryptionType, ScalingType, StreamMode, StreamModeDetails};
use serde::{Deserialize, Serialize};

use super::{cmp, found, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError};

/// The AWS-managed key used for server-side encryption.
pub const KMS_KEY: &str = "alias/aws/kinesis";
const READY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub shards: u32,
    pub retention_hours: u32,
    pub encrypt: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub on_demand: bool,
    pub shards: u32,
    pub retention_hours: u32,
    pub encrypted: bool,
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
    /// Switch an on-demand stream (this ARN) to provisioned capacity first.
    pub to_provisioned: Option<String>,
    /// Target shard counts, one UpdateShardCount call each.
    pub shard_steps: Vec<u32>,
    /// (current, wanted) retention in hours.
    pub retention: Option<(u32, u32)>,
    /// Start (true) or stop (false) server-side encryption.
    pub encrypt: Option<bool>,
    pub tags: TagUpdate,
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let op = "kinesis:DescribeStreamSummary";
    let Some(out) = found(aws.call(op, name, || aws.kinesis.describe_stream_summary().stream_name(name).send()).await)?
    else {
        return Ok(None);
    };
    let Some(s) = out.stream_description_summary() else { return Ok(None) };
    Ok(Some(Live {
        name: name.to_string(),
        arn: s.stream_arn().to_string(),
        status: s.stream_status().as_str().to_string(),
        on_demand: s.stream_mode_details().map(|m| m.stream_mode() == &StreamMode::OnDemand).unwrap_or(false),
        // Closed parent shards stay listed after a reshard; the open count is what matters.
        shards: s.open_shard_count().max(0) as u32,
        retention_hours: s.retention_period_hours().max(0) as u32,
        // Only the type is compared: AWS may report the key as an alias, an alias ARN or a
        // key ARN, so comparing KeyId would show a perpetual diff.
        encrypted: s.encryption_type() == Some(&EncryptionType::Kms),
        created: Some(s.stream_creation_timestamp().to_string()),
        tags: read_tags(aws, name).await?,
    }))
}

/// The stream's tags. ListTagsForStream allows 5 calls per second per account (Kinesis API
/// reference): `Aws::call` retries its LimitExceededException as throttling. The name-based
/// API: moto 5.2 answers the ARN-based ListTagsForResource with HTTP 500.
pub async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    let pairs = super::exclusive_start_pages(|start| async move {
        let out = aws
            .call("kinesis:ListTagsForStream", name, || {
                aws.kinesis.list_tags_for_stream().stream_name(name).set_exclusive_start_tag_key(start.clone()).send()
            })
            .await?;
        let items: Vec<(String, String)> =
            out.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
        let last = items.last().map(|(k, _)| k.clone());
        Ok((items, out.has_more_tags(), last))
    })
    .await?;
    Ok(pairs.into_iter().collect())
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    cmp(&mut out, "mode", if have.on_demand { "ON_DEMAND" } else { "PROVISIONED" }, "PROVISIONED");
    cmp(&mut out, "shards", have.shards, want.shards);
    cmp(&mut out, "retention_hours", have.retention_hours, want.retention_hours);
    cmp(&mut out, "encryption", enc(have.encrypted), enc(want.encrypt));
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

fn enc(on: bool) -> &'static str {
    if on {
        "KMS (alias/aws/kinesis)"
    } else {
        "NONE"
    }
}

/// Shard counts to pass through from `from` to `to`, each within x2 / /2 of the previous.
pub fn reshard_steps(from: u32, to: u32) -> Vec<u32> {
    let mut steps = Vec::new();
    let mut cur = from.max(1);
    while cur != to {
        cur = if to > cur { to.min(cur * 2) } else { to.max(cur.div_ceil(2)) };
        steps.push(cur);
    }
    steps
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    Op::Update(Update {
        name: want.name.clone(),
        to_provisioned: have.on_demand.then(|| have.arn.clone()),
        shard_steps: reshard_steps(have.shards, want.shards),
        retention: (have.retention_hours != want.retention_hours)
            .then_some((have.retention_hours, want.retention_hours)),
        encrypt: (have.encrypted != want.encrypt).then_some(want.encrypt),
        tags: TagUpdate::between(&want.tags, &have.tags),
    })
}

async fn wait_active(ctx: &Ctx<'_>, name: &str) -> Result<(), AwsError> {
    ctx.wait_until("stream ACTIVE", READY_TIMEOUT, || async {
        match read_status(ctx.aws, name).await? {
            Some(s) if s == "ACTIVE" => Ok(None),
            Some(s) => Ok(Some(s)),
            None => Ok(Some("not visible yet".into())),
        }
    })
    .await
}

async fn read_status(aws: &Aws, name: &str) -> Result<Option<String>, AwsError> {
    let op = "kinesis:DescribeStreamSummary";
    let out = found(aws.call(op, name, || aws.kinesis.describe_stream_summary().stream_name(name).send()).await)?;
    Ok(out.and_then(|o| o.stream_description_summary().map(|s| s.stream_status().as_str().to_string())))
}

/// Up to 10 tags per AddTagsToStream / RemoveTagsFromStream call (Kinesis API reference).
async fn apply_tags(ctx: &Ctx<'_>, name: &str, tags: &TagUpdate) -> Result<(), AwsError> {
    let k = &ctx.aws.kinesis;
    let set: Vec<(&String, &String)> = tags.set.iter().collect();
    for chunk in set.chunks(10) {
        let map: HashMap<String, String> = chunk.iter().map(|(k, v)| ((*k).clone(), (*v).clone())).collect();
        ctx.call("kinesis:AddTagsToStream", name, || {
            k.add_tags_to_stream().stream_name(name).set_tags(Some(map.clone())).send()
        })
        .await?;
    }
    for chunk in tags.remove.chunks(10) {
        ctx.call("kinesis:RemoveTagsFromStream", name, || {
            k.remove_tags_from_stream().stream_name(name).set_tag_keys(Some(chunk.to_vec())).send()
        })
        .await?;
    }
    Ok(())
}

async fn set_encryption(ctx: &Ctx<'_>, name: &str, on: bool) -> Result<(), AwsError> {
    let k = &ctx.aws.kinesis;
    if on {
        ctx.call("kinesis:StartStreamEncryption", name, || {
            k.start_stream_encryption().stream_name(name).encryption_type(EncryptionType::Kms).key_id(KMS_KEY).send()
        })
        .await?;
    } else {
        ctx.call("kinesis:StopStreamEncryption", name, || {
            k.stop_stream_encryption().stream_name(name).encryption_type(EncryptionType::Kms).key_id(KMS_KEY).send()
        })
        .await?;
    }
    wait_active(ctx, name).await
}

async fn set_retention(ctx: &Ctx<'_>, name: &str, from: u32, to: u32) -> Result<(), AwsError> {
    let k = &ctx.aws.kinesis;
    let hours = to as i32;
    if to > from {
        ctx.call("kinesis:IncreaseStreamRetentionPeriod", name, || {
            k.increase_stream_retention_period().stream_name(name).retention_period_hours(hours).send()
        })
        .await?;
    } else {
        ctx.call("kinesis:DecreaseStreamRetentionPeriod", name, || {
            k.decrease_stream_retention_period().stream_name(name).retention_period_hours(hours).send()
        })
        .await?;
    }
    wait_active(ctx, name).await
}

fn provisioned() -> StreamModeDetails {
    StreamModeDetails::builder().stream_mode(StreamMode::Provisioned).build().expect("mode set")
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let k = &ctx.aws.kinesis;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            // Tagged in the CreateStream call itself (up to 50 tags, Kinesis API reference), so
            // an interrupted apply never leaves an untagged stream that the next plan would
            // call a conflict. ShardCount is always sent: moto crashes without it.
            let tags: HashMap<String, String> = d.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            ctx.call("kinesis:CreateStream", name, || {
                k.create_stream()
                    .stream_name(name)
                    .shard_count(d.shards as i32)
                    .stream_mode_details(provisioned())
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
            wait_active(ctx, name).await?;
            if d.retention_hours != 24 {
                set_retention(ctx, name, 24, d.retention_hours).await?;
            }
            if d.encrypt {
                set_encryption(ctx, name, true).await?;
            }
            Ok(())
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            // Ownership tags first: a failure later still leaves the stream marked as ours.
            apply_tags(ctx, name, &u.tags).await?;
            if let Some(arn) = &u.to_provisioned {
                ctx.call("kinesis:UpdateStreamMode", name, || {
                    k.update_stream_mode().stream_arn(arn).stream_mode_details(provisioned()).send()
                })
                .await?;
                wait_active(ctx, name).await?;
            }
            for &target in &u.shard_steps {
                ctx.note(format!("resharding to {target} shard(s)"));
                ctx.call("kinesis:UpdateShardCount", name, || {
                    k.update_shard_count()
                        .stream_name(name)
                        .target_shard_count(target as i32)
                        .scaling_type(ScalingType::UniformScaling)
                        .send()
                })
                .await?;
                wait_active(ctx, name).await?;
            }
            if let Some((from, to)) = u.retention {
                set_retention(ctx, name, from, to).await?;
            }
            if let Some(on) = u.encrypt {
                set_encryption(ctx, name, on).await?;
            }
            Ok(())
        }
        Op::Delete { name } => {
            let name = name.as_str();
            gone_ok(
                ctx.call("kinesis:DeleteStream", name, || {
                    k.delete_stream().stream_name(name).enforce_consumer_deletion(true).send()
                })
                .await,
            )?;
            ctx.wait_until("stream deleted", READY_TIMEOUT, || async { read_status(ctx.aws, name).await }).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Desired {
        Desired {
            name: "DataStream".into(),
            shards: 1,
            retention_hours: 24,
            encrypt: true,
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    fn live() -> Live {
        Live {
            name: "DataStream".into(),
            arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/DataStream".into(),
            status: "ACTIVE".into(),
            on_demand: false,
            shards: 1,
            retention_hours: 24,
            encrypted: true,
            created: None,
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    #[test]
    fn diff_table() {
        type Case = (&'static str, fn(&mut Desired, &mut Live), &'static [&'static str]);
        let cases: &[Case] = &[
            ("nothing to do", |_, _| {}, &[]),
            ("more shards", |w, _| w.shards = 4, &["shards"]),
            ("fewer shards", |_, l| l.shards = 3, &["shards"]),
            ("retention up", |w, _| w.retention_hours = 48, &["retention_hours"]),
            ("encryption drifted off", |_, l| l.encrypted = false, &["encryption"]),
            (
                "tag added in console",
                |_, l| {
                    l.tags.insert("owner".into(), "x".into());
                },
                &["tags"],
            ),
            (
                "aws: tags are ignored",
                |_, l| {
                    l.tags.insert("aws:cloudformation:stack".into(), "x".into());
                },
                &[],
            ),
            ("on-demand stream", |_, l| l.on_demand = true, &["mode"]),
            ("status is not compared", |_, l| l.status = "UPDATING".into(), &[]),
        ];
        for (name, f, attrs) in cases {
            let (mut w, mut l) = (want(), live());
            f(&mut w, &mut l);
            let got: Vec<_> = diff(&w, &l).into_iter().map(|c| c.attr).collect();
            assert_eq!(got, *attrs, "{name}");
        }
    }

    #[test]
    fn resharding_steps_within_aws_limits() {
        assert_eq!(reshard_steps(1, 1), Vec::<u32>::new());
        assert_eq!(reshard_steps(1, 2), vec![2]);
        assert_eq!(reshard_steps(1, 5), vec![2, 4, 5]);
        assert_eq!(reshard_steps(16, 3), vec![8, 4, 3]);
        assert_eq!(reshard_steps(5, 2), vec![3, 2]);
        for (a, b) in [(1u32, 100u32), (100, 1), (7, 9), (9, 7)] {
            let mut cur = a;
            for s in reshard_steps(a, b) {
                assert!(s <= cur * 2 && s * 2 >= cur, "{cur} -> {s}");
                cur = s;
            }
            assert_eq!(cur, b);
        }
    }

    #[test]
    fn update_op_is_fully_specified() {
        let mut w = want();
        w.shards = 4;
        w.retention_hours = 48;
        let Op::Update(u) = update_op(&w, &live()) else { panic!() };
        assert_eq!(u.shard_steps, vec![2, 4]);
        assert_eq!(u.retention, Some((24, 48)));
        assert_eq!(u.encrypt, None);
        assert!(u.tags.is_empty());
    }
}
