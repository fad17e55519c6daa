//! OpenSearch Service domain (OpenSearch or Elasticsearch engine, always through the opensearch
//! API: the legacy es API's UpdateElasticsearchDomainConfig is a silent no-op on moto). Cluster,
//! EBS, access policy, node-to-node encryption (on) and HTTPS change in place; the engine
//! version and encryption at rest force a replacement, which loses every index.

use std::time::Duration;

use aws_sdk_opensearch::types::{
    ClusterConfig, DomainEndpointOptions, DomainStatus, EbsOptions, EncryptionAtRestOptions,
    NodeToNodeEncryptionOptions, OpenSearchPartitionInstanceType, Tag, TlsSecurityPolicy, VolumeType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize::{canonical, policy};
use super::{cmp, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::{from_sdk, gone_ok};
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};

/// A new domain takes 15-60 minutes on AWS; a blue/green update can take as long.
const TIMEOUT: Duration = Duration::from_secs(90 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub engine: String,
    pub instance_type: String,
    pub instance_count: u32,
    pub volume_gb: u32,
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
    pub encrypt_at_rest: bool,
    pub node_to_node: bool,
    pub enforce_https: bool,
    /// Canonical form: AWS normalises the stored policy, moto returns it verbatim.
    pub access_policy: Value,
    pub processing: bool,
    pub endpoint: Option<String>,
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
    /// The engine the domain runs (chooses the volume type sent with a volume change).
    pub engine: String,
    pub cluster: Option<(String, u32)>,
    pub volume_gb: Option<u32>,
    pub access_policy: Option<Value>,
    pub node_to_node: Option<bool>,
    pub enforce_https: Option<bool>,
    pub tags: TagUpdate,
}

/// DescribeDomain alone; `None` when the domain does not exist.
async fn describe(aws: &Aws, name: &str) -> Result<Option<DomainStatus>, AwsError> {
    match aws.opensearch.describe_domain().domain_name(name).send().await {
        Ok(o) => Ok(o.domain_status),
        Err(e) => {
            let e = from_sdk("opensearch:DescribeDomain", name, e);
            if e.is(ErrorClass::NotFound) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let Some(d) = describe(aws, name).await? else { return Ok(None) };
    let d = &d;
    let cluster = d.cluster_config();
    let ebs = d.ebs_options();
    let tags =
        aws.opensearch.list_tags().arn(d.arn()).send().await.map_err(|e| from_sdk("opensearch:ListTags", name, e))?;
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
        encrypt_at_rest: d.encryption_at_rest_options().and_then(|e| e.enabled()).unwrap_or(false),
        node_to_node: d.node_to_node_encryption_options().and_then(|e| e.enabled()).unwrap_or(false),
        enforce_https: d.domain_endpoint_options().and_then(|e| e.enforce_https()).unwrap_or(false),
        access_policy: d.access_policies().filter(|p| !p.is_empty()).map(policy).unwrap_or(Value::Null),
        processing: d.processing().unwrap_or(false),
        endpoint: d.endpoint().map(str::to_string).or_else(|| d.endpoints().and_then(|m| m.values().next().cloned())),
        tags: tags.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
    }))
}

pub async fn discover(aws: &Aws, stack: &str) -> Result<Vec<String>, AwsError> {
    let out =
        aws.opensearch.list_domain_names().send().await.map_err(|e| from_sdk("opensearch:ListDomainNames", "*", e))?;
    let mut owned = Vec::new();
    for info in out.domain_names() {
        let Some(name) = info.domain_name() else { continue };
        if let Some(live) = read(aws, name).await? {
            if super::owned_by(&live.tags, stack) {
                owned.push(name.to_string());
            }
        }
    }
    owned.sort();
    Ok(owned)
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    if want.engine != have.engine {
        out.push(Change::new("engine", &have.engine, &want.engine).replacing());
    }
    cmp(&mut out, "instance_type", have.instance_type.as_str(), want.instance_type.as_str());
    cmp(&mut out, "instance_count", have.instance_count, want.instance_count);
    cmp(&mut out, "volume_gb", have.volume_gb, Some(want.volume_gb));
    if want.encrypt_at_rest != have.encrypt_at_rest {
        out.push(Change::new("encrypt_at_rest", have.encrypt_at_rest, want.encrypt_at_rest).replacing());
    }
    if want.node_to_node != have.node_to_node {
        // Node-to-node encryption can be turned on in place, never off.
        let c = Change::new("node_to_node_encryption", have.node_to_node, want.node_to_node);
        out.push(if want.node_to_node { c } else { c.replacing() });
    }
    cmp(&mut out, "enforce_https", have.enforce_https, want.enforce_https);
    cmp(&mut out, "access_policy", &have.access_policy, &canonical(&want.access_policy));
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    let cluster_changed = want.instance_type != have.instance_type || want.instance_count != have.instance_count;
    Op::Update(Update {
        name: want.name.clone(),
        arn: have.arn.clone(),
        engine: have.engine.clone(),
        cluster: cluster_changed.then(|| (want.instance_type.clone(), want.instance_count)),
        volume_gb: (have.volume_gb != Some(want.volume_gb)).then_some(want.volume_gb),
        access_policy: (have.access_policy != canonical(&want.access_policy)).then(|| want.access_policy.clone()),
        node_to_node: (want.node_to_node && !have.node_to_node).then_some(true),
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

/// gp3 volumes need OpenSearch or Elasticsearch 7.10; older Elasticsearch versions get gp2.
pub fn volume_type(engine: &str) -> VolumeType {
    let old_es = engine.strip_prefix("Elasticsearch_").is_some_and(|v| {
        let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0)) < (7, 10)
    });
    if old_es {
        VolumeType::Gp2
    } else {
        VolumeType::Gp3
    }
}

fn ebs(engine: &str, volume_gb: u32) -> EbsOptions {
    EbsOptions::builder().ebs_enabled(true).volume_type(volume_type(engine)).volume_size(volume_gb as i32).build()
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

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let os = &ctx.aws.opensearch;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            let policy = d.access_policy.to_string();
            // The plan only creates a domain it found missing: moto's CreateDomain silently
            // overwrites an existing domain instead of failing.
            ctx.retry("opensearch:CreateDomain", || async {
                os.create_domain()
                    .domain_name(name)
                    .engine_version(&d.engine)
                    .cluster_config(cluster(&d.instance_type, d.instance_count))
                    .ebs_options(ebs(&d.engine, d.volume_gb))
                    .encryption_at_rest_options(EncryptionAtRestOptions::builder().enabled(d.encrypt_at_rest).build())
                    .node_to_node_encryption_options(
                        NodeToNodeEncryptionOptions::builder().enabled(d.node_to_node).build(),
                    )
                    .domain_endpoint_options(endpoint_options(d.enforce_https))
                    .access_policies(&policy)
                    .set_tag_list(Some(os_tags(&d.tags)))
                    .send()
                    .await
                    .map_err(|e| from_sdk("opensearch:CreateDomain", name, e))
            })
            .await?;
            wait_ready(ctx, name).await
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            if !u.tags.set.is_empty() {
                ctx.retry("opensearch:AddTags", || async {
                    os.add_tags()
                        .arn(&u.arn)
                        .set_tag_list(Some(os_tags(&u.tags.set)))
                        .send()
                        .await
                        .map_err(|e| from_sdk("opensearch:AddTags", name, e))
                })
                .await?;
            }
            if !u.tags.remove.is_empty() {
                ctx.retry("opensearch:RemoveTags", || async {
                    os.remove_tags()
                        .arn(&u.arn)
                        .set_tag_keys(Some(u.tags.remove.clone()))
                        .send()
                        .await
                        .map_err(|e| from_sdk("opensearch:RemoveTags", name, e))
                })
                .await?;
            }
            let config_changes = u.cluster.is_some()
                || u.volume_gb.is_some()
                || u.access_policy.is_some()
                || u.node_to_node.is_some()
                || u.enforce_https.is_some();
            if config_changes {
                let policy = u.access_policy.as_ref().map(Value::to_string);
                ctx.retry("opensearch:UpdateDomainConfig", || async {
                    os.update_domain_config()
                        .domain_name(name)
                        .set_cluster_config(u.cluster.as_ref().map(|(t, c)| cluster(t, *c)))
                        .set_ebs_options(u.volume_gb.map(|v| ebs(&u.engine, v)))
                        .set_access_policies(policy.clone())
                        .set_node_to_node_encryption_options(
                            u.node_to_node.map(|on| NodeToNodeEncryptionOptions::builder().enabled(on).build()),
                        )
                        .set_domain_endpoint_options(u.enforce_https.map(endpoint_options))
                        .send()
                        .await
                        .map_err(|e| from_sdk("opensearch:UpdateDomainConfig", name, e))
                })
                .await?;
                wait_ready(ctx, name).await?;
            }
            Ok(())
        }
        Op::Delete { name } => {
            let name = name.as_str();
            gone_ok(
                ctx.retry("opensearch:DeleteDomain", || async {
                    os.delete_domain()
                        .domain_name(name)
                        .send()
                        .await
                        .map_err(|e| from_sdk("opensearch:DeleteDomain", name, e))
                })
                .await,
            )?;
            ctx.wait_until("domain deleted", TIMEOUT, || async {
                Ok(describe(ctx.aws, name).await?.map(|_| "deleting".to_string()))
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
            volume_gb: 10,
            encrypt_at_rest: true,
            node_to_node: true,
            enforce_https: true,
            access_policy: policy_doc(),
            firehose_role: "s-firehose".into(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    fn live() -> Live {
        Live {
            name: "kinesis".into(),
            arn: "arn:aws:es:eu-west-1:1:domain/kinesis".into(),
            engine: "OpenSearch_2.13".into(),
            instance_type: "m5.large.search".into(),
            instance_count: 1,
            volume_gb: Some(10),
            encrypt_at_rest: true,
            node_to_node: true,
            enforce_https: true,
            // As AWS stores it: a one-element list collapsed, keys reordered.
            access_policy: policy(
                r#"{"Statement":[{"Condition":{"IpAddress":{"aws:SourceIp":"1.1.1.1/32"}},"Resource":"arn:aws:es:eu-west-1:1:domain/kinesis/*","Action":"es:*","Principal":{"AWS":"*"},"Effect":"Allow","Sid":"AllowedAddresses"}],"Version":"2012-10-17"}"#,
            ),
            processing: false,
            endpoint: Some("kinesis.eu-west-1.es.amazonaws.com".into()),
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
            ("more nodes", |l| l.instance_count = 3, &["instance_count"], false),
            ("other type", |l| l.instance_type = "r6g.large.search".into(), &["instance_type"], false),
            ("volume", |l| l.volume_gb = Some(20), &["volume_gb"], false),
            ("policy opened to the world", |l| l.access_policy = json!({"Statement":[]}), &["access_policy"], false),
            ("engine differs", |l| l.engine = "OpenSearch_2.11".into(), &["engine"], true),
            ("at-rest encryption off", |l| l.encrypt_at_rest = false, &["encrypt_at_rest"], true),
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
    fn volume_types_by_engine() {
        assert_eq!(volume_type("OpenSearch_2.13"), VolumeType::Gp3);
        assert_eq!(volume_type("Elasticsearch_7.10"), VolumeType::Gp3);
        assert_eq!(volume_type("Elasticsearch_7.9"), VolumeType::Gp2);
        assert_eq!(volume_type("Elasticsearch_6.8"), VolumeType::Gp2);
    }

    #[test]
    fn update_sends_complete_sections() {
        let mut l = live();
        l.instance_count = 3;
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert_eq!(u.cluster, Some(("m5.large.search".into(), 1)));
        assert_eq!(u.volume_gb, None);
        assert_eq!(u.access_policy, None);
    }
}
