//! The resource kinds a stack owns, one file each (read, pure diff, operations, tests), and the
//! closed enums that dispatch to them. Adding a kind: one variant in `Kind`, `Desired`, `Live`
//! and `Op`, one file; the exhaustive matches below list everything else it needs.

pub mod bucket;
pub mod delivery;
pub mod domain;
pub mod function;
pub mod normalize;
pub mod role;
pub mod stream;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    IamRole,
    S3Bucket,
    KinesisStream,
    SearchDomain,
    LambdaFunction,
    IndexTemplate,
    DeliveryStream,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::IamRole,
        Kind::S3Bucket,
        Kind::KinesisStream,
        Kind::SearchDomain,
        Kind::LambdaFunction,
        Kind::IndexTemplate,
        Kind::DeliveryStream,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::IamRole => "iam_role",
            Kind::S3Bucket => "s3_bucket",
            Kind::KinesisStream => "kinesis_stream",
            Kind::SearchDomain => "search_domain",
            Kind::LambdaFunction => "lambda_function",
            Kind::IndexTemplate => "index_template",
            Kind::DeliveryStream => "delivery_stream",
        }
    }

    /// Creation order: a kind only refers to kinds of a lower rank. Deletion runs backwards.
    pub fn rank(self) -> u8 {
        match self {
            Kind::IamRole | Kind::S3Bucket | Kind::KinesisStream => 0,
            Kind::SearchDomain | Kind::LambdaFunction => 1,
            Kind::IndexTemplate => 2,
            Kind::DeliveryStream => 3,
        }
    }

    /// How the Resource Groups Tagging API names this kind: its `ResourceTypeFilters` entry
    /// and the ARN prefix before the resource name. `None`: GetResources does not return it
    /// (IAM roles: "GetResources does not currently support IAM users and roles", API
    /// reference), so the kind discovers its own.
    pub fn tagging(self) -> Option<(&'static str, &'static str)> {
        match self {
            // Templates live inside a domain, reached over its REST endpoint.
            Kind::IamRole | Kind::IndexTemplate => None,
            Kind::S3Bucket => Some(("s3", "")),
            Kind::KinesisStream => Some(("kinesis:stream", "stream/")),
            Kind::SearchDomain => Some(("es:domain", "domain/")),
            Kind::LambdaFunction => Some(("lambda:function", "function:")),
            Kind::DeliveryStream => Some(("firehose:deliverystream", "deliverystream/")),
        }
    }

    /// Whether resources of this kind live inside another resource (see `ResourceId::container`).
    pub fn lives_inside(self) -> bool {
        matches!(self, Kind::IndexTemplate)
    }

    /// What deleting (or replacing) a resource of this kind loses.
    pub fn data_loss(self) -> Option<&'static str> {
        match self {
            Kind::KinesisStream => Some("records stored in the stream (not yet read or within retention)"),
            Kind::SearchDomain => Some("every index and document in the domain"),
            // A Kinesis-sourced delivery stream starts reading its stream at LATEST (Firehose
            // developer guide, "Source, destination, and name"): what is written while no
            // delivery stream exists is never delivered by the next one.
            Kind::DeliveryStream => Some(
                "records buffered in Firehose and not yet delivered, and every record written to the stream until a new delivery stream reads it (a new one starts at LATEST)",
            ),
            Kind::S3Bucket => Some("the failed documents stored in the bucket"),
            // A template holds no documents: deleting it changes only the mapping of indices
            // created afterwards.
            Kind::IamRole | Kind::LambdaFunction | Kind::IndexTemplate => None,
        }
    }
}

/// `kinesis_stream.DataStream`
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        ResourceId { kind, name: name.into() }
    }
}

impl ResourceId {
    /// The resource this one lives inside (an index template: its domain). What lives in a
    /// resource is created again with it and goes when it is deleted.
    pub fn container(&self) -> Option<ResourceId> {
        match self.kind {
            Kind::IndexTemplate => Some(ResourceId::new(Kind::SearchDomain, template::split(&self.name).0)),
            Kind::IamRole
            | Kind::S3Bucket
            | Kind::KinesisStream
            | Kind::SearchDomain
            | Kind::LambdaFunction
            | Kind::DeliveryStream => None,
        }
    }
}

/// Whether `changes` of `id` change who may reach what lives inside it (a domain's access
/// policy): what lives inside may be refused until that change is made.
pub fn opens_access(id: &ResourceId, changes: &[Change]) -> bool {
    id.kind == Kind::SearchDomain && changes.iter().any(|c| c.attr == domain::ACCESS_POLICY)
}

/// Marks `op`, on something that lives in a resource whose access policy changes earlier in
/// the same plan, to wait (bounded) for that policy to admit it.
pub fn await_container_access(op: &mut Op) {
    match op {
        Op::IndexTemplate(template::Op::Put { await_access, .. }) => *await_access = true,
        Op::IndexTemplate(_)
        | Op::IamRole(_)
        | Op::S3Bucket(_)
        | Op::KinesisStream(_)
        | Op::SearchDomain(_)
        | Op::LambdaFunction(_)
        | Op::DeliveryStream(_) => {}
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.label(), self.name)
    }
}

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub attr: String,
    pub before: Value,
    pub after: Value,
    /// AWS cannot change this attribute in place: the resource is replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replace: bool,
}

impl Change {
    pub fn new(attr: &str, before: impl Serialize, after: impl Serialize) -> Change {
        Change {
            attr: attr.to_string(),
            before: serde_json::to_value(before).unwrap_or(Value::Null),
            after: serde_json::to_value(after).unwrap_or(Value::Null),
            forces_replace: false,
        }
    }
    pub fn replacing(mut self) -> Change {
        self.forces_replace = true;
        self
    }
}

/// Pushes a change when `before != after`.
pub fn cmp<T: PartialEq + Serialize>(out: &mut Vec<Change>, attr: &str, before: T, after: T) {
    if before != after {
        out.push(Change::new(attr, before, after));
    }
}

/// How a resource's tags must change: tags to (re)set and keys to remove. Tags under the
/// `aws:` prefix belong to AWS and are never touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagUpdate {
    pub set: Tags,
    pub remove: Vec<String>,
}

impl TagUpdate {
    pub fn between(want: &Tags, have: &Tags) -> TagUpdate {
        let set = want.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let remove = have.keys().filter(|k| !want.contains_key(*k) && !k.starts_with("aws:")).cloned().collect();
        TagUpdate { set, remove }
    }
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// The tags change, if any: shown as the whole (comparable) set before and after.
pub fn tag_change(out: &mut Vec<Change>, want: &Tags, have: &Tags) {
    let visible: Tags =
        have.iter().filter(|(k, _)| !k.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())).collect();
    if &visible != want {
        out.push(Change::new("tags", visible, want));
    }
}

/// A read that finds nothing answers `None`.
pub fn found<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Does the stack own this resource (tag `pipectl:stack=<stack>`)?
pub fn owned_by(tags: &Tags, stack: &str) -> bool {
    tags.get(crate::spec::STACK_TAG).map(String::as_str) == Some(stack)
}

/// Pages through a list API that continues after the last key it returned (Kinesis and
/// Firehose `ExclusiveStart…` parameters). `fetch(start)` answers one page: its items, whether
/// AWS says there are more, and the key to start after.
pub async fn exclusive_start_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, bool, Option<String>), AwsError>>,
{
    let mut all = Vec::new();
    let mut start = None;
    loop {
        let (items, more, last) = fetch(start.take()).await?;
        let empty = items.is_empty();
        all.extend(items);
        // An empty page or a missing key ends it even if AWS says "more" (moto sets
        // HasMoreStreams without a way to continue).
        match last {
            Some(key) if more && !empty => start = Some(key),
            _ => return Ok(all),
        }
    }
}

/// What the spec wants of one resource, fully resolved (names, ARNs, policies, code hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Desired {
    IamRole(role::Desired),
    S3Bucket(bucket::Desired),
    KinesisStream(stream::Desired),
    SearchDomain(domain::Desired),
    LambdaFunction(function::Desired),
    IndexTemplate(template::Desired),
    DeliveryStream(delivery::Desired),
}

/// What AWS has, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Live {
    IamRole(role::Live),
    S3Bucket(bucket::Live),
    KinesisStream(stream::Live),
    SearchDomain(domain::Live),
    LambdaFunction(function::Live),
    IndexTemplate(template::Live),
    DeliveryStream(delivery::Live),
}

/// One fully specified operation on one resource: everything the AWS calls need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    IamRole(role::Op),
    S3Bucket(bucket::Op),
    KinesisStream(stream::Op),
    SearchDomain(domain::Op),
    LambdaFunction(function::Op),
    IndexTemplate(template::Op),
    DeliveryStream(delivery::Op),
}

impl Desired {
    pub fn id(&self) -> ResourceId {
        match self {
            Desired::IamRole(d) => ResourceId::new(Kind::IamRole, &d.name),
            Desired::S3Bucket(d) => ResourceId::new(Kind::S3Bucket, &d.name),
            Desired::KinesisStream(d) => ResourceId::new(Kind::KinesisStream, &d.name),
            Desired::SearchDomain(d) => ResourceId::new(Kind::SearchDomain, &d.name),
            Desired::LambdaFunction(d) => ResourceId::new(Kind::LambdaFunction, &d.name),
            Desired::IndexTemplate(d) => ResourceId::new(Kind::IndexTemplate, d.id_name()),
            Desired::DeliveryStream(d) => ResourceId::new(Kind::DeliveryStream, &d.name),
        }
    }

    /// The resources this one refers to, which must exist first.
    pub fn requires(&self) -> Vec<ResourceId> {
        match self {
            Desired::IamRole(_) | Desired::S3Bucket(_) | Desired::KinesisStream(_) => vec![],
            Desired::SearchDomain(d) => vec![ResourceId::new(Kind::IamRole, &d.firehose_role)],
            Desired::LambdaFunction(d) => vec![ResourceId::new(Kind::IamRole, &d.role_name)],
            Desired::IndexTemplate(d) => vec![ResourceId::new(Kind::SearchDomain, &d.domain)],
            // The template first: documents delivered before it exists are mapped dynamically.
            Desired::DeliveryStream(d) => vec![
                ResourceId::new(Kind::IndexTemplate, template::id_name(&d.domain_name, &d.index)),
                ResourceId::new(Kind::IamRole, &d.role_name),
                ResourceId::new(Kind::KinesisStream, &d.stream_name),
                ResourceId::new(Kind::LambdaFunction, &d.function_name),
                ResourceId::new(Kind::SearchDomain, &d.domain_name),
                ResourceId::new(Kind::S3Bucket, &d.bucket_name),
            ],
        }
    }

    pub fn create_op(&self) -> Op {
        match self {
            Desired::IamRole(d) => Op::IamRole(role::Op::Create(d.clone())),
            Desired::S3Bucket(d) => Op::S3Bucket(bucket::Op::Create(d.clone())),
            Desired::KinesisStream(d) => Op::KinesisStream(stream::Op::Create(d.clone())),
            Desired::SearchDomain(d) => Op::SearchDomain(domain::Op::Create(d.clone())),
            Desired::LambdaFunction(d) => Op::LambdaFunction(function::Op::Create(d.clone())),
            Desired::IndexTemplate(d) => Op::IndexTemplate(template::create_op(d)),
            Desired::DeliveryStream(d) => Op::DeliveryStream(delivery::Op::Create(d.clone())),
        }
    }

    /// What a new resource of this kind holds, for the plan, when its kind says it better than
    /// its fields one by one (a template: one line per mapped field).
    pub fn summary(&self) -> Option<Vec<Change>> {
        match self {
            Desired::IndexTemplate(d) => Some(template::summary(d)),
            Desired::IamRole(_)
            | Desired::S3Bucket(_)
            | Desired::KinesisStream(_)
            | Desired::SearchDomain(_)
            | Desired::LambdaFunction(_)
            | Desired::DeliveryStream(_) => None,
        }
    }

    /// The resource this one lives inside (see `ResourceId::container`): when that one is
    /// created or replaced, this one is created in it whatever was read (a new domain has no
    /// templates).
    pub fn container(&self) -> Option<ResourceId> {
        self.id().container()
    }
}

/// The attribute-level differences; empty when converged.
pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    match (want, have) {
        (Desired::IamRole(w), Live::IamRole(h)) => role::diff(w, h),
        (Desired::S3Bucket(w), Live::S3Bucket(h)) => bucket::diff(w, h),
        (Desired::KinesisStream(w), Live::KinesisStream(h)) => stream::diff(w, h),
        (Desired::SearchDomain(w), Live::SearchDomain(h)) => domain::diff(w, h),
        (Desired::LambdaFunction(w), Live::LambdaFunction(h)) => function::diff(w, h),
        (Desired::IndexTemplate(w), Live::IndexTemplate(h)) => template::diff(w, h),
        (Desired::DeliveryStream(w), Live::DeliveryStream(h)) => delivery::diff(w, h),
        _ => vec![Change::new("kind", "mismatch", "mismatch").replacing()],
    }
}

/// The in-place update that turns `have` into `want`.
pub fn update_op(want: &Desired, have: &Live) -> Op {
    match (want, have) {
        (Desired::IamRole(w), Live::IamRole(h)) => Op::IamRole(role::update_op(w, h)),
        (Desired::S3Bucket(w), Live::S3Bucket(h)) => Op::S3Bucket(bucket::update_op(w, h)),
        (Desired::KinesisStream(w), Live::KinesisStream(h)) => Op::KinesisStream(stream::update_op(w, h)),
        (Desired::SearchDomain(w), Live::SearchDomain(h)) => Op::SearchDomain(domain::update_op(w, h)),
        (Desired::LambdaFunction(w), Live::LambdaFunction(h)) => Op::LambdaFunction(function::update_op(w, h)),
        (Desired::IndexTemplate(w), Live::IndexTemplate(h)) => Op::IndexTemplate(template::update_op(w, h)),
        (Desired::DeliveryStream(w), Live::DeliveryStream(h)) => Op::DeliveryStream(delivery::update_op(w, h)),
        _ => unreachable!("desired and live of one id share a kind"),
    }
}

impl Live {
    pub fn tags(&self) -> &Tags {
        match self {
            Live::IamRole(l) => &l.tags,
            Live::S3Bucket(l) => &l.tags,
            Live::KinesisStream(l) => &l.tags,
            Live::SearchDomain(l) => &l.tags,
            Live::LambdaFunction(l) => &l.tags,
            Live::IndexTemplate(l) => &l.tags,
            Live::DeliveryStream(l) => &l.tags,
        }
    }

    pub fn delete_op(&self, id: &ResourceId, purge: bool) -> Op {
        let name = id.name.clone();
        match self {
            Live::IamRole(l) => Op::IamRole(role::Op::Delete {
                name,
                inline: l.inline.keys().cloned().collect(),
                managed: l.managed.clone(),
            }),
            Live::S3Bucket(_) => Op::S3Bucket(bucket::Op::Delete { name, purge }),
            Live::KinesisStream(_) => Op::KinesisStream(stream::Op::Delete { name }),
            Live::SearchDomain(_) => Op::SearchDomain(domain::Op::Delete { name }),
            Live::LambdaFunction(_) => Op::LambdaFunction(function::Op::Delete { name }),
            Live::IndexTemplate(l) => {
                Op::IndexTemplate(template::Op::Delete { domain: l.domain.clone(), name: l.name.clone() })
            }
            Live::DeliveryStream(_) => Op::DeliveryStream(delivery::Op::Delete { name }),
        }
    }

    /// Why a resource of this name cannot be used or taken over at all (even with --adopt).
    pub fn blocker(&self) -> Option<&str> {
        match self {
            Live::S3Bucket(l) => l.unusable.as_deref(),
            Live::IndexTemplate(l) => l.unreadable.as_deref(),
            Live::IamRole(_)
            | Live::KinesisStream(_)
            | Live::SearchDomain(_)
            | Live::LambdaFunction(_)
            | Live::DeliveryStream(_) => None,
        }
    }

    /// The state a saved plan depends on: everything but what moves by itself while nothing
    /// changes (a bucket's object count, a function's or stream's transitional state, a
    /// domain's processing flag and endpoint), so `apply PLANFILE` refuses only real changes.
    pub fn stable(&self) -> Live {
        let mut l = self.clone();
        match &mut l {
            Live::S3Bucket(b) => {
                b.objects = 0;
                b.objects_truncated = false;
            }
            Live::LambdaFunction(f) => {
                f.state.clear();
                f.state_reason = None;
                f.last_update_status.clear();
            }
            Live::SearchDomain(d) => {
                d.processing = false;
                d.last_change = None;
                d.endpoint = None;
            }
            Live::KinesisStream(s) => s.status.clear(),
            // What a plan does with a template it may not read, or an index pattern Dashboards
            // did not show, does not depend on the error's text (a URL, the caller's session).
            Live::IndexTemplate(t) => {
                t.unreadable = t.unreadable.as_ref().map(|_| "unreadable".to_string());
                t.index_pattern_unknown = t.index_pattern_unknown.as_ref().map(|_| "unknown".to_string());
            }
            Live::IamRole(_) | Live::DeliveryStream(_) => {}
        }
        l
    }

    /// What deleting this resource loses, for the plan: the kind's data with a count of it, or
    /// nothing yet for a bucket that still holds objects and is kept without `purge`.
    pub fn loss_on_delete(&self, kind: Kind, purge: bool) -> Option<String> {
        let what = kind.data_loss()?;
        Some(match self {
            Live::S3Bucket(l) if l.objects > 0 && !purge => {
                format!("nothing yet: the bucket holds {} object(s) and is kept unless --purge", l.objects)
            }
            Live::S3Bucket(l) => {
                format!("{what} ({} object(s){})", l.objects, if l.objects_truncated { "+" } else { "" })
            }
            Live::KinesisStream(l) => format!("{what} ({} shard(s), {} h retention)", l.shards, l.retention_hours),
            _ => what.to_string(),
        })
    }
}

/// Reads one resource; `None` when it does not exist.
pub async fn read(aws: &Aws, id: &ResourceId) -> Result<Option<Live>, AwsError> {
    Ok(match id.kind {
        Kind::IamRole => role::read(aws, &id.name).await?.map(Live::IamRole),
        Kind::S3Bucket => bucket::read(aws, &id.name).await?.map(Live::S3Bucket),
        Kind::KinesisStream => stream::read(aws, &id.name).await?.map(Live::KinesisStream),
        Kind::SearchDomain => domain::read(aws, &id.name).await?.map(Live::SearchDomain),
        Kind::LambdaFunction => function::read(aws, &id.name).await?.map(Live::LambdaFunction),
        Kind::IndexTemplate => template::read(aws, &id.name).await?.map(Live::IndexTemplate),
        Kind::DeliveryStream => delivery::read(aws, &id.name).await?.map(Live::DeliveryStream),
    })
}

/// The kind and name of a resource from its ARN, as GetResources returns it.
fn id_from_arn(arn: &str) -> Option<ResourceId> {
    // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (a bucket's region and account are empty).
    let mut parts = arn.splitn(6, ':');
    let (arn_tag, _, service, _, _, rest) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if arn_tag != "arn" {
        return None;
    }
    Kind::ALL.into_iter().find_map(|kind| {
        let (filter, prefix) = kind.tagging()?;
        if filter.split(':').next() != Some(service) {
            return None;
        }
        let name = rest.strip_prefix(prefix)?;
        // A function ARN may carry a version or alias after the name.
        let name = if kind == Kind::LambdaFunction { name.split(':').next()? } else { name };
        (!name.is_empty() && !name.contains('/')).then(|| ResourceId::new(kind, name))
    })
}

/// Every resource tagged as owned by `stack`: one paginated GetResources call filtered on the
/// stack's tag for the kinds the Tagging API covers, plus the kinds that discover themselves
/// (IAM roles, under pipectl's path). The number of calls does not grow with unrelated
/// resources in the account, and nobody else's resource is ever read.
///
/// The Tagging API is eventually consistent: a resource tagged seconds ago may be missing.
/// Resources the spec names are read by name anyway; only a resource dropped from the spec
/// within that window could be missed by one plan (the next one finds it).
/// Also answers the containers that would not show what lives in them, with why (see
/// `template::discover`).
pub async fn discover(aws: &Aws, stack: &str, inside: bool) -> Result<Discovered, AwsError> {
    use aws_sdk_resourcegroupstagging::types::TagFilter;
    let filter = TagFilter::builder().key(crate::spec::STACK_TAG).values(stack).build();
    let types: Vec<String> = Kind::ALL.iter().filter_map(|k| k.tagging()).map(|(t, _)| t.to_string()).collect();
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = aws
            .call("tagging:GetResources", stack, || {
                aws.tagging
                    .get_resources()
                    .tag_filters(filter.clone())
                    .set_resource_type_filters(Some(types.clone()))
                    .resources_per_page(100)
                    .set_pagination_token(token.clone())
                    .send()
            })
            .await?;
        ids.extend(out.resource_tag_mapping_list().iter().filter_map(|m| m.resource_arn()).filter_map(id_from_arn));
        token = out.pagination_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let domains: Vec<String> =
        ids.iter().filter(|id| id.kind == Kind::SearchDomain).map(|id| id.name.clone()).collect();
    // `inside`: also what lives inside other resources (see `ResourceId::container`).
    let listed = Kind::ALL.into_iter().filter(|k| k.tagging().is_none());
    let mut unlisted = Vec::new();
    for kind in listed.filter(|k| inside || !k.lives_inside()) {
        let names = match kind {
            Kind::IamRole => role::discover(aws, stack).await?,
            Kind::IndexTemplate => {
                let (names, refused) = template::discover(aws, stack, &domains).await?;
                unlisted.extend(refused.into_iter().map(|(d, why)| (ResourceId::new(Kind::SearchDomain, d), why)));
                names
            }
            _ => unreachable!("only kinds without Tagging API support discover themselves"),
        };
        ids.extend(names.into_iter().map(|n| ResourceId::new(kind, n)));
    }
    ids.sort();
    ids.dedup();
    Ok(Discovered { ids, unlisted })
}

/// What `discover` found: the stack's resources, and the containers that would not list
/// what lives in them (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    pub ids: Vec<ResourceId>,
    pub unlisted: Vec<(ResourceId, String)>,
}

/// The resource's tags as they are now (the execution-time ownership check); empty when gone.
pub async fn read_tags(aws: &Aws, id: &ResourceId) -> Result<Tags, AwsError> {
    let name = id.name.as_str();
    let tags = match id.kind {
        Kind::IamRole => role::read_tags(aws, name).await,
        Kind::S3Bucket => bucket::read_tags(aws, name).await,
        Kind::KinesisStream => stream::read_tags(aws, name).await,
        Kind::SearchDomain => domain::read_tags(aws, name).await,
        Kind::LambdaFunction => function::read_tags(aws, name).await,
        Kind::IndexTemplate => template::read_tags(aws, name).await,
        Kind::DeliveryStream => delivery::read_tags(aws, name).await,
    };
    Ok(found(tags)?.unwrap_or_default())
}

/// How AWS will carry out `op`, where the service can say in advance (a dry run that changes
/// nothing): today the OpenSearch domain updates.
pub async fn deployment(aws: &Aws, op: &Op) -> Result<Option<(String, String)>, AwsError> {
    match op {
        Op::SearchDomain(domain::Op::Update(u)) => domain::deployment(aws, u).await,
        Op::SearchDomain(_)
        | Op::IamRole(_)
        | Op::S3Bucket(_)
        | Op::KinesisStream(_)
        | Op::LambdaFunction(_)
        | Op::IndexTemplate(_)
        | Op::DeliveryStream(_) => Ok(None),
    }
}

/// What the plan should say about how `op` takes effect, when AWS state decides it (read at
/// plan time, display only): today, indices that an index template will not change.
pub async fn note(aws: &Aws, op: &Op) -> Result<Option<String>, AwsError> {
    match op {
        Op::IndexTemplate(template::Op::Put { template: d, .. }) => template::note(aws, d).await,
        Op::IndexTemplate(_)
        | Op::SearchDomain(_)
        | Op::IamRole(_)
        | Op::S3Bucket(_)
        | Op::KinesisStream(_)
        | Op::LambdaFunction(_)
        | Op::DeliveryStream(_) => Ok(None),
    }
}

/// What the service's published limits say against `d` (checked at plan time; today the
/// domain's instance-type limits), one sentence per violation.
pub async fn limit_violations(aws: &Aws, d: &Desired) -> Result<Vec<String>, AwsError> {
    match d {
        Desired::SearchDomain(d) => {
            let t = d.volume_type.as_deref().or(domain::default_volume_type(&d.instance_type, &d.engine));
            domain::limit_violations(aws, d, t).await
        }
        Desired::IamRole(_)
        | Desired::S3Bucket(_)
        | Desired::KinesisStream(_)
        | Desired::LambdaFunction(_)
        | Desired::IndexTemplate(_)
        | Desired::DeliveryStream(_) => Ok(vec![]),
    }
}

/// Executes one operation and waits until the resource is ready (or gone).
pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    match op {
        Op::IamRole(o) => role::execute(ctx, o).await,
        Op::S3Bucket(o) => bucket::execute(ctx, o).await,
        Op::KinesisStream(o) => stream::execute(ctx, o).await,
        Op::SearchDomain(o) => domain::execute(ctx, o).await,
        Op::LambdaFunction(o) => function::execute(ctx, o).await,
        Op::IndexTemplate(o) => template::execute(ctx, o).await,
        Op::DeliveryStream(o) => delivery::execute(ctx, o).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_updates() {
        let want: Tags = [("a", "1"), ("b", "2")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let have: Tags = [("a", "1"), ("b", "9"), ("c", "3"), ("aws:cloudformation", "x")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let u = TagUpdate::between(&want, &have);
        assert_eq!(u.set.len(), 1);
        assert_eq!(u.set["b"], "2");
        assert_eq!(u.remove, vec!["c".to_string()]);
        assert!(TagUpdate::between(&want, &want).is_empty());
        let mut out = vec![];
        // aws: tags are invisible to the comparison.
        let mut with_aws = want.clone();
        with_aws.insert("aws:x".into(), "y".into());
        tag_change(&mut out, &want, &with_aws);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn exclusive_start_paging() {
        // Three pages, then AWS says "no more".
        let pages = [(vec![1, 2], true), (vec![3], true), (vec![4], false)];
        let calls = std::sync::Mutex::new(Vec::new());
        let got = exclusive_start_pages(|start| {
            calls.lock().unwrap().push(start.clone());
            let n = calls.lock().unwrap().len() - 1;
            let (items, more) = pages[n].clone();
            async move { Ok((items.clone(), more, items.last().map(|x: &i32| x.to_string()))) }
        })
        .await
        .unwrap();
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert_eq!(*calls.lock().unwrap(), vec![None, Some("2".to_string()), Some("3".to_string())]);
        // "More" with an empty page (moto's ListStreams) ends instead of looping.
        let got: Vec<i32> = exclusive_start_pages(|_| async { Ok((vec![], true, None)) }).await.unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn tagging_arns_map_to_ids() {
        for (arn, want) in [
            ("arn:aws:kinesis:eu-west-1:1:stream/DataStream", Some((Kind::KinesisStream, "DataStream"))),
            ("arn:aws:es:eu-west-1:1:domain/kinesis", Some((Kind::SearchDomain, "kinesis"))),
            ("arn:aws:firehose:eu-west-1:1:deliverystream/fh", Some((Kind::DeliveryStream, "fh"))),
            ("arn:aws:lambda:eu-west-1:1:function:transform", Some((Kind::LambdaFunction, "transform"))),
            ("arn:aws:lambda:eu-west-1:1:function:transform:prod", Some((Kind::LambdaFunction, "transform"))),
            ("arn:aws:s3:::failed-docs", Some((Kind::S3Bucket, "failed-docs"))),
            ("arn:aws:s3:::failed-docs/key", None),
            ("arn:aws-cn:kinesis:cn-north-1:1:stream/s", Some((Kind::KinesisStream, "s"))),
            ("arn:aws:kinesis:eu-west-1:1:stream/s/consumer/c:1", None),
            ("arn:aws:sqs:eu-west-1:1:queue", None),
            ("not an arn", None),
        ] {
            assert_eq!(id_from_arn(arn), want.map(|(k, n)| ResourceId::new(k, n)), "{arn}");
        }
    }

    #[test]
    fn ids_render_with_their_kind() {
        assert_eq!(ResourceId::new(Kind::KinesisStream, "DataStream").to_string(), "kinesis_stream.DataStream");
    }
}
