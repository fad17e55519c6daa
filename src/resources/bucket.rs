//! S3 bucket for failed documents: public access blocked, default encryption, tags. Deleting a
//! bucket that still holds objects is refused unless the plan says `purge`.

use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};
use serde::{Deserialize, Serialize};

use super::{cmp, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::{from_sdk, gone_ok};
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};

pub const SSE: &str = "AES256";
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub region: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
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
    /// PutBucketTagging replaces the whole set: this is the full set to write, if it changes.
    pub tags: Option<Tags>,
}

const ALL_BLOCKED: [bool; 4] = [true; 4];

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    if let Err(e) = aws.s3.head_bucket().bucket(name).send().await {
        let e = from_sdk("s3:HeadBucket", name, e);
        return if e.is(ErrorClass::NotFound) { Ok(None) } else { Err(e) };
    }
    let tags = read_tags(aws, name).await?;
    let encryption = match aws.s3.get_bucket_encryption().bucket(name).send().await {
        Ok(o) => o
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_string()),
        Err(e) => {
            let e = from_sdk("s3:GetBucketEncryption", name, e);
            // No default encryption configured: an error, not an empty answer.
            if e.code == "ServerSideEncryptionConfigurationNotFoundError" {
                None
            } else {
                return Err(e);
            }
        }
    };
    let public_access_block = match aws.s3.get_public_access_block().bucket(name).send().await {
        Ok(o) => o.public_access_block_configuration().map(|c| {
            [
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ]
        }),
        Err(e) => {
            let e = from_sdk("s3:GetPublicAccessBlock", name, e);
            if e.code == "NoSuchPublicAccessBlockConfiguration" {
                None
            } else {
                return Err(e);
            }
        }
    };
    let (keys, truncated) = first_keys(aws, name).await?;
    Ok(Some(Live {
        name: name.to_string(),
        encryption,
        public_access_block,
        objects: keys.len() as u64,
        objects_truncated: truncated,
        tags,
    }))
}

async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    match aws.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(o) => Ok(o.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()),
        Err(e) => {
            let e = from_sdk("s3:GetBucketTagging", name, e);
            // An untagged bucket answers NoSuchTagSet rather than an empty set.
            if e.code == "NoSuchTagSet" {
                Ok(Tags::new())
            } else {
                Err(e)
            }
        }
    }
}

pub async fn discover(aws: &Aws, stack: &str) -> Result<Vec<String>, AwsError> {
    let out = aws.s3.list_buckets().send().await.map_err(|e| from_sdk("s3:ListBuckets", "*", e))?;
    let mut owned = Vec::new();
    for b in out.buckets() {
        let Some(name) = b.name() else { continue };
        match read_tags(aws, name).await {
            Ok(tags) if super::owned_by(&tags, stack) => owned.push(name.to_string()),
            Ok(_) => {}
            // ListBuckets lists every region's buckets; one in another region answers with a
            // redirect, and one we may not read with AccessDenied. Neither can be this stack's
            // (its bucket is read by name in its own region).
            Err(e)
                if matches!(
                    e.code.as_str(),
                    "PermanentRedirect" | "AuthorizationHeaderMalformed" | "AccessDenied" | "NoSuchBucket"
                ) => {}
            Err(e) => return Err(e),
        }
    }
    owned.sort();
    Ok(owned)
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    cmp(&mut out, "default_encryption", have.encryption.as_deref().unwrap_or("none"), SSE);
    cmp(&mut out, "public_access_block", have.public_access_block.map(|b| b.to_vec()), Some(ALL_BLOCKED.to_vec()));
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    Op::Update(Update {
        name: want.name.clone(),
        encryption: have.encryption.as_deref() != Some(SSE),
        public_access_block: have.public_access_block != Some(ALL_BLOCKED),
        tags: (!TagUpdate::between(&want.tags, &have.tags).is_empty()).then(|| want.tags.clone()),
    })
}

async fn put_settings(
    ctx: &Ctx<'_>,
    name: &str,
    encryption: bool,
    block: bool,
    tags: Option<&Tags>,
) -> Result<(), AwsError> {
    let s3 = &ctx.aws.s3;
    if block {
        let cfg = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        ctx.retry("s3:PutPublicAccessBlock", || async {
            s3.put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(cfg.clone())
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutPublicAccessBlock", name, e))
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
        ctx.retry("s3:PutBucketEncryption", || async {
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(cfg.clone())
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutBucketEncryption", name, e))
        })
        .await?;
    }
    if let Some(tags) = tags {
        let set: Vec<Tag> =
            tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect();
        let tagging = Tagging::builder().set_tag_set(Some(set)).build().expect("tag set");
        ctx.retry("s3:PutBucketTagging", || async {
            s3.put_bucket_tagging()
                .bucket(name)
                .tagging(tagging.clone())
                .send()
                .await
                .map_err(|e| from_sdk("s3:PutBucketTagging", name, e))
        })
        .await?;
    }
    Ok(())
}

/// The first 1,000 object keys of the bucket, and whether there are more.
async fn first_keys(aws: &Aws, name: &str) -> Result<(Vec<String>, bool), AwsError> {
    let out = aws
        .s3
        .list_objects_v2()
        .bucket(name)
        .max_keys(1000)
        .send()
        .await
        .map_err(|e| from_sdk("s3:ListObjectsV2", name, e))?;
    let keys = out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    Ok((keys, out.is_truncated().unwrap_or(false)))
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let s3 = &ctx.aws.s3;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            // us-east-1 is the one region that rejects an explicit LocationConstraint.
            let cfg = (d.region != "us-east-1").then(|| {
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(d.region.as_str()))
                    .build()
            });
            ctx.retry("s3:CreateBucket", || async {
                s3.create_bucket()
                    .bucket(name)
                    .set_create_bucket_configuration(cfg.clone())
                    .send()
                    .await
                    .map_err(|e| from_sdk("s3:CreateBucket", name, e))
            })
            .await?;
            ctx.wait_until("bucket visible", TIMEOUT, || async {
                match s3.head_bucket().bucket(name).send().await {
                    Ok(_) => Ok(None),
                    Err(e) => {
                        let e = from_sdk("s3:HeadBucket", name, e);
                        if e.is(ErrorClass::NotFound) {
                            Ok(Some("not visible yet".into()))
                        } else {
                            Err(e)
                        }
                    }
                }
            })
            .await?;
            put_settings(ctx, name, true, true, Some(&d.tags)).await
        }
        Op::Update(u) => put_settings(ctx, &u.name, u.encryption, u.public_access_block, u.tags.as_ref()).await,
        Op::Delete { name, purge } => {
            let name = name.as_str();
            loop {
                let (keys, truncated) = first_keys(ctx.aws, name).await?;
                if keys.is_empty() {
                    break;
                }
                if !purge {
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
                let ids: Vec<ObjectIdentifier> =
                    keys.iter().map(|k| ObjectIdentifier::builder().key(k).build().expect("key set")).collect();
                let del = Delete::builder().set_objects(Some(ids)).quiet(true).build().expect("objects set");
                ctx.retry("s3:DeleteObjects", || async {
                    s3.delete_objects()
                        .bucket(name)
                        .delete(del.clone())
                        .send()
                        .await
                        .map_err(|e| from_sdk("s3:DeleteObjects", name, e))
                })
                .await?;
            }
            gone_ok(
                ctx.retry("s3:DeleteBucket", || async {
                    s3.delete_bucket().bucket(name).send().await.map_err(|e| from_sdk("s3:DeleteBucket", name, e))
                })
                .await,
            )
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
}
