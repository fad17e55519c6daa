//! S3 bucket for failed documents: public access blocked, default encryption, tags (set in
//! CreateBucket itself). Deleting a bucket that still holds objects is refused unless the plan
//! says `purge`. A name held by another account, or by a bucket of ours in another region, is
//! reported as such (HeadBucket 403 / 301), never as an opaque HTTP error.

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};
use serde::{Deserialize, Serialize};

use super::{cmp, found, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError};

pub const SSE: &str = "AES256";
const TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long `destroy --purge` may spend emptying a bucket before it gives up.
const PURGE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub region: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    /// Why this bucket cannot be used or read, when the name exists but is not reachable for
    /// us: another account's bucket, or one in another region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// Default encryption algorithm; None when unset (moto's new buckets have none, AWS's
    /// have AES256).
    pub encryption: Option<String>,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
    pub public_access_block: Option<[bool; 4]>,
    pub objects: u64,
    pub objects_truncated: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create(Desired),
    Update(Update),
    Delete { name: String, purge: bool },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub name: String,
    pub encryption: bool,
    pub public_access_block: bool,
    /// PutBucketTagging replaces the whole set: this is the full set to write, if it changes
    /// (the spec's tags plus the `aws:` tags AWS put there, which a put must carry along or
    /// lose; terraform-provider-aws's BucketUpdateTags keeps them the same way).
    pub tags: Option<Tags>,
}

const ALL_BLOCKED: [bool; 4] = [true; 4];

/// HeadBucket answers with a bare status (no error code): 403 when another account owns the
/// name (or we may not see it), 301 when the bucket is in another region than the client's
/// (S3 API reference, HeadBucket). Either way it is not a bucket this stack can use.
fn unusable(e: &AwsError, region: &str) -> Option<String> {
    match e.status {
        Some(403) => Some("the name is taken: the bucket belongs to another AWS account, or these credentials may not access it (HeadBucket 403); bucket names are global, choose another".into()),
        Some(301) => Some(format!("a bucket of this name exists in another region than {region} (HeadBucket 301); buckets cannot move, choose another name or region")),
        _ => None,
    }
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    match found(aws.call("s3:HeadBucket", name, || aws.s3.head_bucket().bucket(name).send()).await) {
        Ok(None) => return Ok(None),
        Ok(Some(_)) => {}
        Err(e) => {
            let Some(why) = unusable(&e, &aws.region) else { return Err(e) };
            return Ok(Some(Live {
                name: name.to_string(),
                unusable: Some(why),
                encryption: None,
                public_access_block: None,
                objects: 0,
                objects_truncated: false,
                tags: Tags::new(),
            }));
        }
    }
    let tags = read_tags(aws, name).await?;
    let encryption =
        match aws.call("s3:GetBucketEncryption", name, || aws.s3.get_bucket_encryption().bucket(name).send()).await {
            Ok(o) => o
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_string()),
            // No default encryption configured: an error, not an empty answer.
            Err(e) if e.code == "ServerSideEncryptionConfigurationNotFoundError" => None,
            Err(e) => return Err(e),
        };
    let public_access_block = match aws
        .call("s3:GetPublicAccessBlock", name, || aws.s3.get_public_access_block().bucket(name).send())
        .await
    {
        Ok(o) => o.public_access_block_configuration().map(|c| {
            [
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ]
        }),
        Err(e) if e.code == "NoSuchPublicAccessBlockConfiguration" => None,
        Err(e) => return Err(e),
    };
    let (keys, truncated) = first_keys(aws, name).await?;
    Ok(Some(Live {
        name: name.to_string(),
        unusable: None,
        encryption,
        public_access_block,
        objects: keys.len() as u64,
        objects_truncated: truncated,
        tags,
    }))
}

pub async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    match aws.call("s3:GetBucketTagging", name, || aws.s3.get_bucket_tagging().bucket(name).send()).await {
        Ok(o) => Ok(o.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()),
        // An untagged bucket answers NoSuchTagSet rather than an empty set.
        Err(e) if e.code == "NoSuchTagSet" => Ok(Tags::new()),
        Err(e) => Err(e),
    }
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    cmp(&mut out, "default_encryption", have.encryption.as_deref().unwrap_or("none"), SSE);
    cmp(&mut out, "public_access_block", have.public_access_block.map(|b| b.to_vec()), Some(ALL_BLOCKED.to_vec()));
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    let mut tags = want.tags.clone();
    tags.extend(have.tags.iter().filter(|(k, _)| k.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())));
    Op::Update(Update {
        name: want.name.clone(),
        encryption: have.encryption.as_deref() != Some(SSE),
        public_access_block: have.public_access_block != Some(ALL_BLOCKED),
        tags: (!TagUpdate::between(&want.tags, &have.tags).is_empty()).then_some(tags),
    })
}

fn s3_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

async fn put_settings(
    ctx: &Ctx<'_>,
    name: &str,
    encryption: bool,
    block: bool,
    tags: Option<&Tags>,
) -> Result<(), AwsError> {
    let s3 = &ctx.aws.s3;
    // Tags first: they are what marks the bucket as the stack's.
    if let Some(tags) = tags {
        let tagging = Tagging::builder().set_tag_set(Some(s3_tags(tags))).build().expect("tag set");
        ctx.call("s3:PutBucketTagging", name, || s3.put_bucket_tagging().bucket(name).tagging(tagging.clone()).send())
            .await?;
    }
    if block {
        let cfg = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        ctx.call("s3:PutPublicAccessBlock", name, || {
            s3.put_public_access_block().bucket(name).public_access_block_configuration(cfg.clone()).send()
        })
        .await?;
    }
    if encryption {
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .expect("algorithm set");
        let cfg = ServerSideEncryptionConfiguration::builder()
            .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build())
            .build()
            .expect("rules set");
        ctx.call("s3:PutBucketEncryption", name, || {
            s3.put_bucket_encryption().bucket(name).server_side_encryption_configuration(cfg.clone()).send()
        })
        .await?;
    }
    Ok(())
}

/// The first 1,000 object keys of the bucket, and whether there are more.
async fn first_keys(aws: &Aws, name: &str) -> Result<(Vec<String>, bool), AwsError> {
    let out =
        aws.call("s3:ListObjectsV2", name, || aws.s3.list_objects_v2().bucket(name).max_keys(1000).send()).await?;
    let keys = out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    Ok((keys, out.is_truncated().unwrap_or(false)))
}

/// Deletes every object, 1,000 keys per DeleteObjects call. DeleteObjects answers 200 even
/// when keys fail, listing each failure in `Errors` (S3 API reference): the first one is the
/// answer. Bounded by PURGE_TIMEOUT, with progress notes.
async fn purge(ctx: &Ctx<'_>, name: &str) -> Result<(), AwsError> {
    let s3 = &ctx.aws.s3;
    let start = Instant::now();
    let mut deleted = 0usize;
    loop {
        let (keys, _) = first_keys(ctx.aws, name).await?;
        if keys.is_empty() {
            return Ok(());
        }
        if start.elapsed() > PURGE_TIMEOUT {
            return Err(AwsError::local(
                "s3:DeleteObjects",
                name,
                "PurgeTimeout",
                format!(
                    "deleted {deleted} object(s) in {}s and objects remain; run destroy --purge again, or empty the bucket with a lifecycle rule",
                    start.elapsed().as_secs()
                ),
            ));
        }
        let ids: Vec<ObjectIdentifier> =
            keys.iter().map(|k| ObjectIdentifier::builder().key(k).build().expect("key set")).collect();
        let del = Delete::builder().set_objects(Some(ids)).quiet(true).build().expect("objects set");
        let out =
            ctx.call("s3:DeleteObjects", name, || s3.delete_objects().bucket(name).delete(del.clone()).send()).await?;
        if let Some(e) = out.errors().first() {
            return Err(AwsError::local(
                "s3:DeleteObjects",
                name,
                e.code().unwrap_or("Error"),
                format!(
                    "{} of {} key(s) not deleted; first: {}: {}",
                    out.errors().len(),
                    keys.len(),
                    e.key().unwrap_or("?"),
                    e.message().unwrap_or("")
                ),
            ));
        }
        deleted += keys.len();
        ctx.note(format!("purged {deleted} object(s)"));
    }
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let s3 = &ctx.aws.s3;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            // The tags travel in CreateBucket itself (CreateBucketConfiguration.Tags), so no
            // interrupted apply leaves an untagged bucket that the next plan would call a
            // conflict. us-east-1 is the one region that rejects an explicit LocationConstraint.
            let cfg = CreateBucketConfiguration::builder()
                .set_location_constraint(
                    (d.region != "us-east-1").then(|| BucketLocationConstraint::from(d.region.as_str())),
                )
                .set_tags(Some(s3_tags(&d.tags)))
                .build();
            ctx.call("s3:CreateBucket", name, || {
                s3.create_bucket().bucket(name).create_bucket_configuration(cfg.clone()).send()
            })
            .await?;
            ctx.wait_until("bucket visible", TIMEOUT, || async {
                match found(ctx.aws.call("s3:HeadBucket", name, || s3.head_bucket().bucket(name).send()).await)? {
                    Some(_) => Ok(None),
                    None => Ok(Some("not visible yet".into())),
                }
            })
            .await?;
            put_settings(ctx, name, true, true, None).await
        }
        Op::Update(u) => put_settings(ctx, &u.name, u.encryption, u.public_access_block, u.tags.as_ref()).await,
        Op::Delete { name, purge: allowed } => {
            let name = name.as_str();
            let (keys, truncated) = match found(first_keys(ctx.aws, name).await)? {
                Some(k) => k,
                None => return Ok(()),
            };
            if !keys.is_empty() && !allowed {
                return Err(AwsError::local(
                    "s3:DeleteBucket",
                    name,
                    "BucketNotEmpty",
                    format!(
                        "kept: it still holds {}{} object(s) (failed documents); inspect them, or rerun destroy with --purge to delete them",
                        keys.len(),
                        if truncated { "+" } else { "" }
                    ),
                ));
            }
            if !keys.is_empty() {
                purge(ctx, name).await?;
            }
            gone_ok(ctx.call("s3:DeleteBucket", name, || s3.delete_bucket().bucket(name).send()).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Desired {
        Desired {
            name: "b".into(),
            region: "eu-west-1".into(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }
    fn live() -> Live {
        Live {
            name: "b".into(),
            unusable: None,
            encryption: Some(SSE.into()),
            public_access_block: Some(ALL_BLOCKED),
            objects: 0,
            objects_truncated: false,
            tags: want().tags,
        }
    }

    #[test]
    fn diff_table() {
        type Case = (&'static str, fn(&mut Live), &'static [&'static str]);
        let cases: &[Case] = &[
            ("nothing to do", |_| {}, &[]),
            ("objects are data, not drift", |l| l.objects = 12, &[]),
            // moto's (and older AWS) new buckets have no default encryption.
            ("no default encryption", |l| l.encryption = None, &["default_encryption"]),
            ("KMS instead of AES256", |l| l.encryption = Some("aws:kms".into()), &["default_encryption"]),
            ("public access block missing", |l| l.public_access_block = None, &["public_access_block"]),
            ("one flag off", |l| l.public_access_block = Some([true, true, false, true]), &["public_access_block"]),
            ("tags differ", |l| l.tags.clear(), &["tags"]),
        ];
        for (name, f, attrs) in cases {
            let mut l = live();
            f(&mut l);
            let got: Vec<_> = diff(&want(), &l).into_iter().map(|c| c.attr).collect();
            assert_eq!(got, *attrs, "{name}");
        }
    }

    #[test]
    fn update_writes_whole_tag_set() {
        let mut l = live();
        l.tags.insert("extra".into(), "x".into());
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert_eq!(u.tags, Some(want().tags));
        assert!(!u.encryption && !u.public_access_block);
    }

    #[test]
    fn tag_update_keeps_aws_tags() {
        // PutBucketTagging replaces the whole set: AWS's own tags must travel along.
        let mut l = live();
        l.tags.insert("extra".into(), "x".into());
        l.tags.insert("aws:cloudformation:stack-name".into(), "cfn".into());
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        let mut expected = want().tags;
        expected.insert("aws:cloudformation:stack-name".into(), "cfn".into());
        assert_eq!(u.tags, Some(expected));
        // aws: tags alone are no change at all.
        let mut l = live();
        l.tags.insert("aws:cloudformation:stack-name".into(), "cfn".into());
        assert!(diff(&want(), &l).is_empty());
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert_eq!(u.tags, None);
    }
}
