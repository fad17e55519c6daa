//! OpenSearch Service domain (OpenSearch or Elasticsearch engine, always through the opensearch
//! API: the legacy es API's UpdateElasticsearchDomainConfig is a silent no-op on moto). Cluster,
//! EBS, access policy, node-to-node encryption (on) and HTTPS change in place; the engine
//! version and encryption at rest force a replacement, which loses every index.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_opensearch::types::{
    ClusterConfig, DomainEndpointOptions, DomainStatus, EbsOptions, EncryptionAtRestOptions,
    NodeToNodeEncryptionOptions, OpenSearchPartitionInstanceType, Tag, TlsSecurityPolicy, VolumeType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize::{canonical, policy};
use super::{cmp, found, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError};

/// The attribute of a changed access policy (who may reach the domain's REST endpoint).
pub const ACCESS_POLICY: &str = "access_policy";

/// A new domain takes 15-60 minutes on AWS; a blue/green update can take as long.
const TIMEOUT: Duration = Duration::from_secs(90 * 60);
/// Not-found answers in a row before a deleted domain's name counts as free.
const DELETED_CHECKS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub engine: String,
    pub instance_type: String,
    pub instance_count: u32,
    /// EBS volume per node; `None` for instance-store families (no EBS at all).
    pub volume_gb: Option<u32>,
    /// The EBS volume type the spec asks for; `None`: keep what the domain has (a domain adopted
    /// on gp2 stays gp2), or the family's and engine's default when creating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    pub encrypt_at_rest: bool,
    pub node_to_node: bool,
    pub enforce_https: bool,
    pub access_policy: Value,
    /// The Firehose role the policy names (it must exist first).
    pub firehose_role: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub arn: String,
    pub engine: String,
    pub instance_type: String,
    pub instance_count: u32,
    pub volume_gb: Option<u32>,
    /// `gp2`, `gp3`, … ; `None` without EBS.
    #[serde(default)]
    pub volume_type: Option<String>,
    pub encrypt_at_rest: bool,
    pub node_to_node: bool,
    pub enforce_https: bool,
    /// Canonical form: AWS normalises the stored policy, moto returns it verbatim.
    pub access_policy: Value,
    pub processing: bool,
    /// DescribeDomain's `Deleted`: deletion has begun (the name is not free yet).
    #[serde(default)]
    pub deleted: bool,
    /// The last configuration change's status (ChangeProgressDetails), with AWS's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    pub endpoint: Option<String>,
    /// GetCompatibleVersions: the versions each engine version upgrades to directly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upgrade_paths: BTreeMap<String, Vec<String>>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create(Desired),
    Update(Update),
    Delete { name: String },
}

/// UpdateDomainConfig replaces each section it is given wholesale (on moto; AWS merges), so
/// every section sent is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub name: String,
    pub arn: String,
    pub cluster: Option<(String, u32)>,
    /// The whole EBS section to write (type, GiB), if the volume changes.
    pub volume: Option<(String, u32)>,
    pub access_policy: Option<Value>,
    pub node_to_node: Option<bool>,
    /// Turn encryption at rest on (it cannot be turned off).
    #[serde(default)]
    pub encrypt_at_rest: Option<bool>,
    pub enforce_https: Option<bool>,
    /// Engine versions to upgrade through, in order (one UpgradeDomain each).
    #[serde(default)]
    pub upgrade: Vec<String>,
    pub tags: TagUpdate,
}
/// DescribeDomain alone; `None` when the domain does not exist.
pub(crate) async fn describe(aws: &Aws, name: &str) -> Result<Option<DomainStatus>, AwsError> {
    let out = found(
        aws.call("opensearch:DescribeDomain", name, || aws.opensearch.describe_domain().domain_name(name).send()).await,
    )?;
    Ok(out.and_then(|o| o.domain_status))
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let Some(d) = describe(aws, name).await? else { return Ok(None) };
    let d = &d;
    let cluster = d.cluster_config();
    let ebs = d.ebs_options();
    let tags = tags_of(aws, name, d.arn()).await?;
    let change = d.change_progress_details();
    Ok(Some(Live {
        name: name.to_string(),
        arn: d.arn().to_string(),
        engine: d.engine_version().unwrap_or_default().to_string(),
        instance_type: cluster.and_then(|c| c.instance_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
        instance_count: cluster.and_then(|c| c.instance_count()).unwrap_or(0).max(0) as u32,
        volume_gb: ebs
            .filter(|e| e.ebs_enabled().unwrap_or(false))
            .and_then(|e| e.volume_size())
            .map(|v| v.max(0) as u32),
        volume_type: ebs
            .filter(|e| e.ebs_enabled().unwrap_or(false))
            .and_then(|e| e.volume_type())
            .map(|t| t.as_str().to_string()),
        encrypt_at_rest: d.encryption_at_rest_options().and_then(|e| e.enabled()).unwrap_or(false),
        node_to_node: d.node_to_node_encryption_options().and_then(|e| e.enabled()).unwrap_or(false),
        enforce_https: d.domain_endpoint_options().and_then(|e| e.enforce_https()).unwrap_or(false),
        access_policy: d.access_policies().filter(|p| !p.is_empty()).map(policy).unwrap_or(Value::Null),
        processing: d.processing().unwrap_or(false),
        deleted: d.deleted().unwrap_or(false),
        last_change: change.and_then(|c| c.config_change_status()).map(|s| {
            let msg = change.and_then(|c| c.message()).unwrap_or("");
            if msg.is_empty() {
                s.as_str().to_string()
            } else {
                format!("{}: {msg}", s.as_str())
            }
        }),
        endpoint: d.endpoint().map(str::to_string).or_else(|| d.endpoints().and_then(|m| m.values().next().cloned())),
        upgrade_paths: compatible_versions(aws, name).await?,
        tags,
    }))
}

/// GetCompatibleVersions without a domain: every version's direct upgrade targets. Without
/// permission to ask, no upgrade path is known and an engine change plans as a replacement.
async fn compatible_versions(aws: &Aws, name: &str) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
    let out = match aws
        .call("opensearch:GetCompatibleVersions", name, || aws.opensearch.get_compatible_versions().send())
        .await
    {
        Ok(o) => o,
        Err(e) if e.is(crate::aws::ErrorClass::Denied) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in out.compatible_versions() {
        let Some(source) = m.source_version() else { continue };
        let targets = paths.entry(source.to_string()).or_default();
        targets.extend(m.target_versions().iter().cloned());
        targets.sort();
        targets.dedup();
    }
    Ok(paths)
}

/// The domain's tags (the execution-time ownership check): DescribeDomain for the ARN, then
/// ListTags.
pub async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    match describe(aws, name).await? {
        Some(d) => tags_of(aws, name, d.arn()).await,
        None => Ok(Tags::new()),
    }
}

async fn tags_of(aws: &Aws, name: &str, arn: &str) -> Result<Tags, AwsError> {
    let tags = aws.call("opensearch:ListTags", name, || aws.opensearch.list_tags().arn(arn).send()).await?;
    Ok(tags.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

/// A domain whose deletion has begun (`Deleted: true` while AWS removes it) cannot be used or
/// updated: the plan replaces it, which waits until the name is free and creates it anew.
pub fn problem(have: &Live) -> Option<String> {
    have.deleted.then(|| "being deleted".to_string())
}

/// The engine versions to pass through, one UpgradeDomain call each, from `from` to `to`;
/// `None` when AWS offers no upgrade path (a downgrade, another family before 7.10, …).
/// `paths` is GetCompatibleVersions' table: which versions each version upgrades to directly.
/// AWS upgrades one hop at a time (e.g. Elasticsearch 7.10 → OpenSearch 1.3 → 2.x).
pub fn upgrade_path(paths: &BTreeMap<String, Vec<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![]);
    }
    // Breadth-first: the fewest upgrades, each a blue/green deployment.
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        for next in paths.get(v).into_iter().flatten() {
            if next == from || prev.contains_key(next.as_str()) {
                continue;
            }
            prev.insert(next, v);
            if next == to {
                let mut hops = vec![to.to_string()];
                let mut at = to;
                while let Some(p) = prev.get(at).filter(|p| **p != from) {
                    hops.push(p.to_string());
                    at = p;
                }
                hops.reverse();
                return Some(hops);
            }
            queue.push_back(next);
        }
    }
    None
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    if want.engine != have.engine {
        let c = Change::new("engine", &have.engine, &want.engine);
        // In place when AWS offers an upgrade path; a downgrade never exists in place.
        out.push(if upgrade_path(&have.upgrade_paths, &have.engine, &want.engine).is_some() {
            c
        } else {
            c.replacing()
        });
    }
    cmp(&mut out, "instance_type", have.instance_type.as_str(), want.instance_type.as_str());
    cmp(&mut out, "instance_count", have.instance_count, want.instance_count);
    cmp(&mut out, "volume_gb", have.volume_gb, want.volume_gb);
    if let Some(t) = want.volume_type.as_deref().filter(|_| want.volume_gb.is_some()) {
        cmp(&mut out, "volume_type", have.volume_type.as_deref(), Some(t));
    }
    // Encryption at rest and node-to-node encryption can be turned on in place on OpenSearch
    // and on Elasticsearch 6.7 or later (every engine pipectl accepts), never off: the
    // developer guide's "Encryption of data at rest" and "Node-to-node encryption" pages.
    if want.encrypt_at_rest != have.encrypt_at_rest {
        let c = Change::new("encrypt_at_rest", have.encrypt_at_rest, want.encrypt_at_rest);
        out.push(if want.encrypt_at_rest { c } else { c.replacing() });
    }
    if want.node_to_node != have.node_to_node {
        let c = Change::new("node_to_node_encryption", have.node_to_node, want.node_to_node);
        out.push(if want.node_to_node { c } else { c.replacing() });
    }
    cmp(&mut out, "enforce_https", have.enforce_https, want.enforce_https);
    cmp(&mut out, ACCESS_POLICY, &have.access_policy, &canonical(&want.access_policy));
    tag_change(&mut out, &want.tags, &have.tags);
    if let Some(p) = problem(have) {
        out.push(Change::new("status", p, "active").replacing());
    }
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    let cluster_changed = want.instance_type != have.instance_type || want.instance_count != have.instance_count;
    Op::Update(Update {
        name: want.name.clone(),
        arn: have.arn.clone(),
        cluster: cluster_changed.then(|| (want.instance_type.clone(), want.instance_count)),
        volume: want
            .volume_gb
            .zip(target_volume_type(want, have))
            .filter(|(gb, t)| have.volume_gb != Some(*gb) || have.volume_type.as_deref() != Some(t.as_str()))
            .map(|(gb, t)| (t, gb)),
        access_policy: (have.access_policy != canonical(&want.access_policy)).then(|| want.access_policy.clone()),
        node_to_node: (want.node_to_node && !have.node_to_node).then_some(true),
        encrypt_at_rest: (want.encrypt_at_rest && !have.encrypt_at_rest).then_some(true),
        upgrade: upgrade_path(&have.upgrade_paths, &have.engine, &want.engine).unwrap_or_default(),
        enforce_https: (want.enforce_https != have.enforce_https).then_some(want.enforce_https),
        tags: TagUpdate::between(&want.tags, &have.tags),
    })
}

fn cluster(instance_type: &str, count: u32) -> ClusterConfig {
    ClusterConfig::builder()
        .instance_type(OpenSearchPartitionInstanceType::from(instance_type))
        .instance_count(count as i32)
        .dedicated_master_enabled(false)
        .zone_awareness_enabled(false)
        .build()
}

/// Families whose instances bring their own NVMe storage and take no EBS volume ("Supported
/// instance types", OpenSearch Service developer guide: I2, I3, I4g, I4i, Im4gn, R6gd).
pub const INSTANCE_STORE_FAMILIES: &[&str] = &["i2", "i3", "i4g", "i4i", "im4gn", "r6gd"];
/// Previous-generation families: EBS gp2 (or magnetic), never gp3 (same page).
pub const GP2_ONLY_FAMILIES: &[&str] = &["t2", "m3", "m4", "c4", "r3", "r4"];

fn family(instance_type: &str) -> &str {
    instance_type.split('.').next().unwrap_or("")
}

pub fn instance_store(instance_type: &str) -> bool {
    INSTANCE_STORE_FAMILIES.contains(&family(instance_type))
}

/// The volume type a new domain gets when the spec names none: gp3 where the instance family
/// and the engine support it (OpenSearch, Elasticsearch 7.10), gp2 otherwise; `None` for
/// instance-store families.
pub fn default_volume_type(instance_type: &str, engine: &str) -> Option<&'static str> {
    if instance_store(instance_type) {
        return None;
    }
    let old_es = engine.strip_prefix("Elasticsearch_").is_some_and(|v| {
        let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0)) < (7, 10)
    });
    Some(if old_es || GP2_ONLY_FAMILIES.contains(&family(instance_type)) { "gp2" } else { "gp3" })
}

/// The type an update writes with a volume change: the spec's, else the domain's own (a
/// domain on gp2 stays gp2), else the default.
fn target_volume_type(want: &Desired, have: &Live) -> Option<String> {
    want.volume_type
        .clone()
        .or_else(|| have.volume_type.clone())
        .or_else(|| default_volume_type(&want.instance_type, &want.engine).map(str::to_string))
}

/// The IOPS and throughput (MiB/s) sent with a gp3 volume: what the volume's price includes.
/// AWS documents no default for an omitted value, and larger volumes refuse the 125 MiB/s
/// baseline ("Throughput must be between 250 and 593" for 200 GiB, reported by users; a 3 TB
/// volume fails unless both are set), so pipectl always sends both: IOPS = 3 per GiB within
/// 3,000..16,000, throughput 125 MiB/s up to 170 GiB, then 250 MiB/s per started 3 TiB up to
/// 1,000 (the AWS pricing calculator's formula, quoted in terraform-provider-aws#39136). They
/// are not compared by `diff`: AWS may raise them itself, which is not drift.
pub fn gp3_performance(gb: u32) -> (u32, u32) {
    let iops = (3 * gb).clamp(3000, 16_000);
    let throughput = if gb <= 170 { 125 } else { (gb.div_ceil(3072) * 250).min(1000) };
    (iops, throughput)
}

/// EBS options: a volume of `gb` GiB of `volume_type`, or none (instance store).
fn ebs(volume: Option<(&str, u32)>) -> EbsOptions {
    match volume {
        Some((t, gb)) => {
            let b = EbsOptions::builder().ebs_enabled(true).volume_type(VolumeType::from(t)).volume_size(gb as i32);
            if t == "gp3" {
                let (iops, throughput) = gp3_performance(gb);
                b.iops(iops as i32).throughput(throughput as i32).build()
            } else {
                b.build()
            }
        }
        None => EbsOptions::builder().ebs_enabled(false).build(),
    }
}

fn endpoint_options(https: bool) -> DomainEndpointOptions {
    DomainEndpointOptions::builder()
        .enforce_https(https)
        .tls_security_policy(TlsSecurityPolicy::PolicyMinTls12201907)
        .build()
}

fn os_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

impl Update {
    pub fn has_config_changes(&self) -> bool {
        self.cluster.is_some()
            || self.volume.is_some()
            || self.access_policy.is_some()
            || self.node_to_node.is_some()
            || self.encrypt_at_rest.is_some()
            || self.enforce_https.is_some()
    }
}

/// The UpdateDomainConfig request of an update: only the sections that change, each whole.
fn config_request(
    os: &aws_sdk_opensearch::Client,
    u: &Update,
) -> aws_sdk_opensearch::operation::update_domain_config::builders::UpdateDomainConfigFluentBuilder {
    os.update_domain_config()
        .domain_name(&u.name)
        .set_cluster_config(u.cluster.as_ref().map(|(t, c)| cluster(t, *c)))
        .set_ebs_options(u.volume.as_ref().map(|(t, gb)| ebs(Some((t.as_str(), *gb)))))
        .set_access_policies(u.access_policy.as_ref().map(Value::to_string))
        .set_node_to_node_encryption_options(
            u.node_to_node.map(|on| NodeToNodeEncryptionOptions::builder().enabled(on).build()),
        )
        .set_encryption_at_rest_options(
            u.encrypt_at_rest.map(|on| EncryptionAtRestOptions::builder().enabled(on).build()),
        )
        .set_domain_endpoint_options(u.enforce_https.map(endpoint_options))
}

/// How AWS will carry out an update, asked with a dry run (UpdateDomainConfig with DryRun and
/// DryRunMode Basic: nothing is applied): DeploymentType Blue/Green, DynamicUpdate, None or
/// Undetermined, and AWS's message. An engine upgrade is always a blue/green deployment
/// (developer guide, "Making configuration changes in Amazon OpenSearch Service").
pub async fn deployment(aws: &Aws, u: &Update) -> Result<Option<(String, String)>, AwsError> {
    if !u.has_config_changes() {
        return Ok((!u.upgrade.is_empty())
            .then(|| ("Blue/Green".to_string(), format!("engine upgrade through {}", u.upgrade.join(" → ")))));
    }
    let out = aws
        .call("opensearch:UpdateDomainConfig", &u.name, || {
            config_request(&aws.opensearch, u)
                .dry_run(true)
                .dry_run_mode(aws_sdk_opensearch::types::DryRunMode::Basic)
                .send()
        })
        .await?;
    let Some(r) = out.dry_run_results() else { return Ok(None) };
    let mut kind = r.deployment_type().unwrap_or("Undetermined").to_string();
    if !u.upgrade.is_empty() {
        kind = "Blue/Green".to_string();
    }
    Ok(Some((kind, r.message().unwrap_or_default().to_string())))
}

/// What the instance type allows, per DescribeInstanceTypeLimits (data-node role): each
/// violation of `d` as a sentence. A volume outside the type's range, or a node count outside
/// its limits, would be refused by CreateDomain/UpdateDomainConfig after the plan; checked
/// at plan time instead.
pub async fn limit_violations(aws: &Aws, d: &Desired, volume_type: Option<&str>) -> Result<Vec<String>, AwsError> {
    let out = match aws
        .call("opensearch:DescribeInstanceTypeLimits", &d.name, || {
            aws.opensearch
                .describe_instance_type_limits()
                .engine_version(&d.engine)
                .instance_type(OpenSearchPartitionInstanceType::from(d.instance_type.as_str()))
                .send()
        })
        .await
    {
        Ok(o) => o,
        // Not allowed to ask: AWS will say it at apply time.
        Err(e) if e.is(crate::aws::ErrorClass::Denied) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let Some(limits) = out.limits_by_role().and_then(|m| m.get("data")) else { return Ok(vec![]) };
    let mut problems = Vec::new();
    if let Some(c) = limits.instance_limits().and_then(|l| l.instance_count_limits()) {
        let (lo, hi) = (c.minimum_instance_count().max(0) as u32, c.maximum_instance_count().max(0) as u32);
        if hi > 0 && !(lo..=hi).contains(&d.instance_count) {
            problems.push(format!(
                "instance_count {} is outside {}'s {lo}..={hi} data nodes",
                d.instance_count, d.instance_type
            ));
        }
    }
    if let (Some(gb), Some(t)) = (d.volume_gb, volume_type) {
        let ebs = limits
            .storage_types()
            .iter()
            .find(|s| s.storage_type_name() == Some("ebs") && s.storage_sub_type_name().map_or(true, |x| x == t));
        match ebs {
            None if !limits.storage_types().is_empty() => {
                problems.push(format!("{} does not take {t} EBS volumes", d.instance_type));
            }
            None => {}
            Some(s) => {
                let value = |name: &str| {
                    s.storage_type_limits()
                        .iter()
                        .find(|l| l.limit_name() == Some(name))
                        .and_then(|l| l.limit_values().first())
                        .and_then(|v| v.parse::<u32>().ok())
                };
                if let (Some(lo), Some(hi)) = (value("MinimumVolumeSize"), value("MaximumVolumeSize")) {
                    if !(lo..=hi).contains(&gb) {
                        problems
                            .push(format!("volume_gb {gb} is outside {}'s {lo}..={hi} GiB for {t}", d.instance_type));
                    }
                }
            }
        }
    }
    Ok(problems)
}

/// Follows an UpgradeDomain with GetUpgradeStatus until its UPGRADE step SUCCEEDED (the
/// earlier PRE_UPGRADE_CHECK and SNAPSHOT steps also report SUCCEEDED on their way, which
/// terraform-provider-aws's waitUpgradeSucceeded also treats as still in progress).
async fn wait_upgrade(ctx: &Ctx<'_>, name: &str, target: &str) -> Result<(), AwsError> {
    let os = &ctx.aws.opensearch;
    ctx.wait_until("engine upgrade", TIMEOUT, || async {
        let s = ctx
            .aws
            .call("opensearch:GetUpgradeStatus", name, || os.get_upgrade_status().domain_name(name).send())
            .await?;
        let step = s.upgrade_step().map(|x| x.as_str()).unwrap_or("");
        let status = s.step_status().map(|x| x.as_str()).unwrap_or("");
        match (step, status) {
            ("UPGRADE", "SUCCEEDED") => Ok(None),
            (_, "FAILED") | (_, "SUCCEEDED_WITH_ISSUES") => Err(AwsError::local(
                "opensearch:UpgradeDomain",
                name,
                "UpgradeFailed",
                format!("upgrade to {target}: {step} {status}: {}", s.upgrade_name().unwrap_or("")),
            )),
            (step, status) => Ok(Some(format!("{step} {status}"))),
        }
    })
    .await
}

/// Waits until the domain is no longer processing and has an endpoint.
async fn wait_ready(ctx: &Ctx<'_>, name: &str) -> Result<(), AwsError> {
    ctx.wait_until("domain ready", TIMEOUT, || async {
        // DescribeDomain only: a wait polls for up to 90 minutes and needs no tags.
        match describe(ctx.aws, name).await? {
            None => Ok(Some("not visible yet".into())),
            Some(d) if d.processing().unwrap_or(false) => Ok(Some("processing".into())),
            Some(d) if d.endpoint().is_none() && d.endpoints().map_or(true, |m| m.is_empty()) => {
                Ok(Some("waiting for an endpoint".into()))
            }
            Some(_) => Ok(None),
        }
    })
    .await
}

/// Follows one configuration change to its end with DescribeDomainChangeProgress. Done is
/// COMPLETED; FAILED (a change AWS accepted and then rejected, e.g. insufficient capacity, a
/// validation failure) is an error with AWS's reasons from the failed stages. Waiting for
/// `Processing: false` alone can report done before processing has even started, and never
/// sees a failed validation (terraform-provider-aws PR #44810 added the same check after
/// endless waits).
async fn wait_change(ctx: &Ctx<'_>, name: &str, change_id: &str) -> Result<(), AwsError> {
    let os = &ctx.aws.opensearch;
    ctx.wait_until("domain change", TIMEOUT, || async {
        let out = ctx
            .aws
            .call("opensearch:DescribeDomainChangeProgress", name, || {
                os.describe_domain_change_progress().domain_name(name).change_id(change_id).send()
            })
            .await?;
        let Some(p) = out.change_progress_status() else { return Ok(Some("no progress reported yet".into())) };
        let status = p.status().map(|s| s.as_str()).unwrap_or("PENDING");
        match status {
            "COMPLETED" => Ok(None),
            "FAILED" => {
                let failed: Vec<String> = p
                    .change_progress_stages()
                    .iter()
                    .filter(|s| s.status() == Some("FAILED"))
                    .map(|s| s.description().or(s.name()).unwrap_or("failed").to_string())
                    .collect();
                let state = p.config_change_status().map(|s| s.as_str()).unwrap_or("FAILED");
                Err(AwsError::local(
                    "opensearch:DescribeDomainChangeProgress",
                    name,
                    "DomainChangeFailed",
                    format!("change {change_id} {state}: {}", failed.join("; ")),
                ))
            }
            other => {
                let stage = p.change_progress_stages().iter().rev().find_map(|s| s.name()).unwrap_or("");
                Ok(Some(format!("{other} {stage}").trim().to_string()))
            }
        }
    })
    .await
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let os = &ctx.aws.opensearch;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            let policy = d.access_policy.to_string();
            // CreateDomain does not reliably refuse an existing name (it "would act as upsert",
            // terraform-provider-aws resourceDomainCreate; moto overwrites): check right before.
            if describe(ctx.aws, name).await?.is_some_and(|d| !d.deleted().unwrap_or(false)) {
                return Err(AwsError::local(
                    "opensearch:CreateDomain",
                    name,
                    "DomainExists",
                    "a domain of this name appeared since the plan was made; nothing was changed, run plan again",
                ));
            }
            // A name whose previous domain is still being deleted is refused with "Domain is
            // still being deleted" (ValidationException): classified busy and retried.
            ctx.call("opensearch:CreateDomain", name, || {
                os.create_domain()
                    .domain_name(name)
                    .engine_version(&d.engine)
                    .cluster_config(cluster(&d.instance_type, d.instance_count))
                    .ebs_options(ebs(d.volume_gb.map(|gb| {
                        let t = d.volume_type.as_deref();
                        (t.or(default_volume_type(&d.instance_type, &d.engine)).unwrap_or("gp3"), gb)
                    })))
                    .encryption_at_rest_options(EncryptionAtRestOptions::builder().enabled(d.encrypt_at_rest).build())
                    .node_to_node_encryption_options(
                        NodeToNodeEncryptionOptions::builder().enabled(d.node_to_node).build(),
                    )
                    .domain_endpoint_options(endpoint_options(d.enforce_https))
                    .access_policies(&policy)
                    .set_tag_list(Some(os_tags(&d.tags)))
                    .send()
            })
            .await?;
            wait_ready(ctx, name).await
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            if !u.tags.set.is_empty() {
                ctx.call("opensearch:AddTags", name, || {
                    os.add_tags().arn(&u.arn).set_tag_list(Some(os_tags(&u.tags.set))).send()
                })
                .await?;
            }
            if !u.tags.remove.is_empty() {
                ctx.call("opensearch:RemoveTags", name, || {
                    os.remove_tags().arn(&u.arn).set_tag_keys(Some(u.tags.remove.clone())).send()
                })
                .await?;
            }
            if u.has_config_changes() {
                // "A change/update is in progress" (one change at a time) is classified busy
                // and retried.
                let out = ctx.call("opensearch:UpdateDomainConfig", name, || config_request(os, u).send()).await?;
                let change_id = out
                    .domain_config()
                    .and_then(|c| c.change_progress_details())
                    .and_then(|c| c.change_id())
                    .map(str::to_string);
                if let Some(id) = change_id {
                    ctx.note(format!("following change {id}"));
                    wait_change(ctx, name, &id).await?;
                }
                wait_ready(ctx, name).await?;
            }
            for target in &u.upgrade {
                ctx.note(format!("upgrading the engine to {target}"));
                ctx.call("opensearch:UpgradeDomain", name, || {
                    os.upgrade_domain().domain_name(name).target_version(target).send()
                })
                .await?;
                wait_upgrade(ctx, name, target).await?;
                wait_ready(ctx, name).await?;
            }
            Ok(())
        }
        Op::Delete { name } => {
            let name = name.as_str();
            gone_ok(ctx.call("opensearch:DeleteDomain", name, || os.delete_domain().domain_name(name).send()).await)?;
            // A deleted domain answers with `Deleted: true` for a while, and its name stays
            // taken after that: like terraform-provider-aws (waitForDomainDelete), wait until
            // DescribeDomain finds nothing, then until DescribeDomainConfig answers not-found
            // DELETED_CHECKS times in a row.
            let gone_in_a_row = std::sync::atomic::AtomicU32::new(0);
            ctx.wait_until("domain deleted", TIMEOUT, || async {
                use std::sync::atomic::Ordering::SeqCst;
                if describe(ctx.aws, name).await?.is_some() {
                    gone_in_a_row.store(0, SeqCst);
                    return Ok(Some("deleting".to_string()));
                }
                let config = found(
                    ctx.aws
                        .call("opensearch:DescribeDomainConfig", name, || {
                            os.describe_domain_config().domain_name(name).send()
                        })
                        .await,
                )?;
                if config.is_some() {
                    gone_in_a_row.store(0, SeqCst);
                    return Ok(Some("deleting (configuration still there)".to_string()));
                }
                let n = gone_in_a_row.fetch_add(1, SeqCst) + 1;
                Ok((n < DELETED_CHECKS).then(|| format!("gone ({n} of {DELETED_CHECKS} checks)")))
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy_doc() -> Value {
        json!({"Version":"2012-10-17","Statement":[
            {"Sid":"AllowedAddresses","Effect":"Allow","Principal":{"AWS":"*"},"Action":"es:*",
             "Resource":"arn:aws:es:eu-west-1:1:domain/kinesis/*","Condition":{"IpAddress":{"aws:SourceIp":["1.1.1.1/32"]}}}]})
    }

    fn want() -> Desired {
        Desired {
            name: "kinesis".into(),
            engine: "OpenSearch_2.13".into(),
            instance_type: "m5.large.search".into(),
            instance_count: 1,
            volume_gb: Some(10),
            volume_type: None,
            encrypt_at_rest: true,
            node_to_node: true,
            enforce_https: true,
            access_policy: policy_doc(),
            firehose_role: "s-firehose".into(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    /// GetCompatibleVersions' table, as AWS gives it (abridged).
    fn paths() -> BTreeMap<String, Vec<String>> {
        [
            ("Elasticsearch_7.10", vec!["OpenSearch_1.3"]),
            ("OpenSearch_1.3", vec!["OpenSearch_2.11", "OpenSearch_2.13"]),
            ("OpenSearch_2.11", vec!["OpenSearch_2.13"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect()
    }

    #[test]
    fn upgrade_paths_take_one_hop_at_a_time() {
        let p = paths();
        assert_eq!(upgrade_path(&p, "OpenSearch_2.11", "OpenSearch_2.11"), Some(vec![]));
        assert_eq!(upgrade_path(&p, "OpenSearch_2.11", "OpenSearch_2.13"), Some(vec!["OpenSearch_2.13".into()]));
        assert_eq!(
            upgrade_path(&p, "Elasticsearch_7.10", "OpenSearch_2.13"),
            Some(vec!["OpenSearch_1.3".into(), "OpenSearch_2.13".into()])
        );
        // No downgrades, no unknown versions.
        assert_eq!(upgrade_path(&p, "OpenSearch_2.13", "OpenSearch_2.11"), None);
        assert_eq!(upgrade_path(&p, "OpenSearch_2.13", "OpenSearch_9.9"), None);
    }

    fn live() -> Live {
        Live {
            name: "kinesis".into(),
            arn: "arn:aws:es:eu-west-1:1:domain/kinesis".into(),
            engine: "OpenSearch_2.13".into(),
            instance_type: "m5.large.search".into(),
            instance_count: 1,
            volume_gb: Some(10),
            volume_type: Some("gp3".into()),
            encrypt_at_rest: true,
            node_to_node: true,
            enforce_https: true,
            // As AWS stores it: a one-element list collapsed, keys reordered.
            access_policy: policy(
                r#"{"Statement":[{"Condition":{"IpAddress":{"aws:SourceIp":"1.1.1.1/32"}},"Resource":"arn:aws:es:eu-west-1:1:domain/kinesis/*","Action":"es:*","Principal":{"AWS":"*"},"Effect":"Allow","Sid":"AllowedAddresses"}],"Version":"2012-10-17"}"#,
            ),
            processing: false,
            deleted: false,
            last_change: None,
            endpoint: Some("kinesis.eu-west-1.es.amazonaws.com".into()),
            upgrade_paths: paths(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    #[test]
    fn diff_table() {
        type Case = (&'static str, fn(&mut Live), &'static [&'static str], bool);
        let cases: &[Case] = &[
            // Regression: AWS's normalised policy text is not a change.
            ("nothing to do", |_| {}, &[], false),
            ("processing is not a change", |l| l.processing = true, &[], false),
            (
                "a failed last change is not a change by itself",
                |l| l.last_change = Some("ValidationFailed: x".into()),
                &[],
                false,
            ),
            // A domain being deleted is never "No changes.": it is created again.
            ("being deleted", |l| l.deleted = true, &["status"], true),
            ("more nodes", |l| l.instance_count = 3, &["instance_count"], false),
            ("other type", |l| l.instance_type = "r6g.large.search".into(), &["instance_type"], false),
            ("volume", |l| l.volume_gb = Some(20), &["volume_gb"], false),
            ("policy opened to the world", |l| l.access_policy = json!({"Statement":[]}), &["access_policy"], false),
            // 2.11 -> 2.13 is an upgrade AWS offers: in place (UpgradeDomain).
            ("engine upgrade", |l| l.engine = "OpenSearch_2.11".into(), &["engine"], false),
            ("engine upgrade over two hops", |l| l.engine = "Elasticsearch_7.10".into(), &["engine"], false),
            // No path (a downgrade, or nothing known): replaced.
            ("engine downgrade", |l| l.engine = "OpenSearch_9.0".into(), &["engine"], true),
            (
                "engine, no upgrade table",
                |l| {
                    l.engine = "OpenSearch_2.11".into();
                    l.upgrade_paths.clear();
                },
                &["engine"],
                true,
            ),
            // Turning encryption at rest on is in place; AWS cannot turn it off.
            ("at-rest encryption off: enable in place", |l| l.encrypt_at_rest = false, &["encrypt_at_rest"], false),
            ("node-to-node off: enable in place", |l| l.node_to_node = false, &["node_to_node_encryption"], false),
            ("https off", |l| l.enforce_https = false, &["enforce_https"], false),
        ];
        for (name, f, attrs, replace) in cases {
            let mut l = live();
            f(&mut l);
            let d = diff(&want(), &l);
            let got: Vec<_> = d.iter().map(|c| c.attr.clone()).collect();
            assert_eq!(got, *attrs, "{name}");
            assert_eq!(d.iter().any(|c| c.forces_replace), *replace, "{name}");
        }
    }

    #[test]
    fn volume_types_by_engine_and_family() {
        assert_eq!(default_volume_type("m5.large.search", "OpenSearch_2.13"), Some("gp3"));
        assert_eq!(default_volume_type("m5.large.search", "Elasticsearch_7.10"), Some("gp3"));
        assert_eq!(default_volume_type("m5.large.search", "Elasticsearch_7.9"), Some("gp2"));
        // Previous generation: gp2 only; instance store: no EBS.
        assert_eq!(default_volume_type("m4.large.search", "OpenSearch_2.13"), Some("gp2"));
        assert_eq!(default_volume_type("t2.small.search", "OpenSearch_2.13"), Some("gp2"));
        assert_eq!(default_volume_type("i3.large.search", "OpenSearch_2.13"), None);
        assert_eq!(default_volume_type("r6gd.large.search", "OpenSearch_2.13"), None);
    }

    #[test]
    fn gp3_gets_the_performance_its_size_includes() {
        assert_eq!(gp3_performance(10), (3000, 125));
        assert_eq!(gp3_performance(170), (3000, 125));
        assert_eq!(gp3_performance(200), (3000, 250));
        assert_eq!(gp3_performance(2000), (6000, 250));
        assert_eq!(gp3_performance(3072), (9216, 250));
        assert_eq!(gp3_performance(6000), (16_000, 500));
        assert_eq!(gp3_performance(16_384), (16_000, 1000));
    }

    #[test]
    fn a_domain_on_gp2_stays_gp2_unless_the_spec_says_otherwise() {
        let mut l = live();
        l.volume_type = Some("gp2".into());
        let mut w = want();
        w.volume_type = None;
        assert!(diff(&w, &l).is_empty());
        // A bigger volume keeps the domain's gp2.
        w.volume_gb = Some(20);
        let Op::Update(u) = update_op(&w, &l) else { panic!() };
        assert_eq!(u.volume, Some(("gp2".to_string(), 20)));
        // The spec asks for gp3: a change of type.
        w.volume_gb = Some(10);
        w.volume_type = Some("gp3".into());
        let d = diff(&w, &l);
        assert_eq!(d.iter().map(|c| c.attr.as_str()).collect::<Vec<_>>(), ["volume_type"]);
        let Op::Update(u) = update_op(&w, &l) else { panic!() };
        assert_eq!(u.volume, Some(("gp3".to_string(), 10)));
    }

    #[test]
    fn encryption_cannot_be_turned_off_in_place() {
        let mut w = want();
        w.encrypt_at_rest = false;
        w.node_to_node = false;
        let d = diff(&w, &live());
        assert_eq!(d.iter().filter(|c| c.forces_replace).count(), 2, "{d:?}");
    }

    #[test]
    fn update_op_carries_upgrade_and_encryption() {
        let mut l = live();
        l.engine = "Elasticsearch_7.10".into();
        l.encrypt_at_rest = false;
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert_eq!(u.upgrade, vec!["OpenSearch_1.3".to_string(), "OpenSearch_2.13".to_string()]);
        assert_eq!(u.encrypt_at_rest, Some(true));
        assert!(u.has_config_changes());
    }

    #[test]
    fn update_sends_complete_sections() {
        let mut l = live();
        l.instance_count = 3;
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert_eq!(u.cluster, Some(("m5.large.search".into(), 1)));
        assert_eq!(u.volume, None);
        assert_eq!(u.access_policy, None);
    }
}
