//! Resolution: spec + account + region + Lambda artefact → the fully specified desired state of
//! every resource (names, ARNs, filled policies, code hash). Pure: no AWS call, no clock.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::resources::normalize::{fill, DOMAIN_ACCESS, FIREHOSE_DELIVERY, FIREHOSE_TRUST, LAMBDA_LOGS, LAMBDA_TRUST};
use crate::resources::{bucket, delivery, domain, function, role, stream, template, Desired, Tags};
use crate::spec::{Spec, STACK_TAG};
use crate::transform::{LAYOUT_ENV, SCHEMA_ENV};

/// Where the stack is deployed and what code it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub account: String,
    pub region: String,
    pub code_sha256: String,
    pub zip_path: String,
}

impl Context {
    /// The ARN partition of the region.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

pub fn firehose_role_name(stack: &str) -> String {
    format!("{stack}-firehose")
}

pub fn lambda_role_name(stack: &str) -> String {
    format!("{stack}-lambda")
}

/// The tags every resource of the stack carries: the spec's plus the ownership tag.
pub fn stack_tags(spec: &Spec) -> Tags {
    let mut t = spec.tags.clone();
    t.insert(STACK_TAG.to_string(), spec.stack.clone());
    t
}

/// A pipeline's index template (and Dashboards index pattern): its schema's mapping for its
/// index, the schema's first date field as the time field.
pub fn index_template(spec: &Spec, pl: &crate::spec::Pipeline) -> template::Desired {
    template::Desired::new(
        &spec.search.domain,
        &pl.delivery.index,
        &pl.schema.index_mapping()["mappings"],
        pl.schema.fields.iter().find(|f| f.ty == crate::schema::FieldType::Date).map(|f| f.name.as_str()),
        spec.search.instance_count,
        stack_tags(spec),
    )
}

/// Every resource the spec describes, in a stable order.
pub fn resolve(spec: &Spec, cx: &Context) -> Vec<Desired> {
    let (p, r, a) = (cx.partition(), cx.region.as_str(), cx.account.as_str());
    let tags = stack_tags(spec);
    let role_arn = |name: &str| format!("arn:{p}:iam::{a}:role{}{name}", role::PATH);
    let stream_arn = |name: &str| format!("arn:{p}:kinesis:{r}:{a}:stream/{name}");
    let function_arn = |name: &str| format!("arn:{p}:lambda:{r}:{a}:function:{name}");
    let bucket_arn = format!("arn:{p}:s3:::{}", spec.bucket.name);
    let domain_arn = format!("arn:{p}:es:{r}:{a}:domain/{}", spec.search.domain);
    let fh_role = firehose_role_name(&spec.stack);
    let lambda_role = lambda_role_name(&spec.stack);
    let fh_role_arn = role_arn(&fh_role);

    let mut out = Vec::new();

    // IAM roles, least privilege: the exact log groups, streams, functions, domain, prefixes.
    let log_groups: Vec<Value> = spec
        .pipelines
        .iter()
        .map(|pl| json!(format!("arn:{p}:logs:{r}:{a}:log-group:/aws/lambda/{}:*", pl.transform.function)))
        .collect();
    out.push(Desired::IamRole(role::Desired {
        name: lambda_role.clone(),
        path: role::PATH.into(),
        description: format!("pipectl: execution role of the transform functions of stack {}", spec.stack),
        trust: fill(LAMBDA_TRUST, &BTreeMap::new()),
        inline: BTreeMap::from([(
            "logs".to_string(),
            fill(LAMBDA_LOGS, &BTreeMap::from([("log_group_arns", Value::Array(log_groups))])),
        )]),
        tags: tags.clone(),
    }));
    let mut bucket_resources = vec![json!(bucket_arn)];
    for pl in &spec.pipelines {
        bucket_resources.push(json!(format!("{bucket_arn}/{}*", pl.delivery.failed_prefix)));
    }
    let vars = BTreeMap::from([
        ("account", json!(a)),
        ("region", json!(r)),
        ("partition", json!(p)),
        ("domain_arn", json!(domain_arn)),
        ("stream_arns", Value::Array(spec.pipelines.iter().map(|pl| json!(stream_arn(&pl.stream.name))).collect())),
        (
            "function_arns",
            Value::Array(
                spec.pipelines
                    .iter()
                    .flat_map(|pl| {
                        let f = function_arn(&pl.transform.function);
                        [json!(f.clone()), json!(format!("{f}:*"))]
                    })
                    .collect(),
            ),
        ),
        ("bucket_resources", Value::Array(bucket_resources)),
        ("firehose_role_arn", json!(fh_role_arn)),
        ("allow_ips", Value::Array(spec.search.access.allow_ips.iter().map(|ip| json!(ip)).collect())),
    ]);
    out.push(Desired::IamRole(role::Desired {
        name: fh_role.clone(),
        path: role::PATH.into(),
        description: format!("pipectl: Firehose delivery role of stack {}", spec.stack),
        trust: fill(FIREHOSE_TRUST, &vars),
        inline: BTreeMap::from([("delivery".to_string(), fill(FIREHOSE_DELIVERY, &vars))]),
        tags: tags.clone(),
    }));

    out.push(Desired::S3Bucket(bucket::Desired {
        name: spec.bucket.name.clone(),
        region: cx.region.clone(),
        tags: tags.clone(),
    }));

    for pl in &spec.pipelines {
        out.push(Desired::KinesisStream(stream::Desired {
            name: pl.stream.name.clone(),
            shards: pl.stream.shards,
            retention_hours: pl.stream.retention_hours,
            encrypt: pl.stream.encrypt,
            tags: tags.clone(),
        }));
    }

    let mut access = fill(DOMAIN_ACCESS, &vars);
    if !spec.search.access.allow_account {
        if let Some(Value::Array(stmts)) = access.get_mut("Statement") {
            stmts.retain(|s| s["Sid"] != "AccountRoot");
        }
    }
    let s = &spec.search;
    out.push(Desired::SearchDomain(domain::Desired {
        name: s.domain.clone(),
        engine: s.engine.clone(),
        instance_type: s.instance_type.clone(),
        instance_count: s.instance_count,
        volume_gb: (!domain::instance_store(&s.instance_type))
            .then(|| s.volume_gb.unwrap_or(crate::spec::DEFAULT_VOLUME_GB)),
        volume_type: s.volume_type.map(|t| t.as_str().to_string()),
        encrypt_at_rest: s.encrypt_at_rest,
        node_to_node: s.node_to_node_encryption,
        enforce_https: true,
        access_policy: access,
        firehose_role: fh_role.clone(),
        tags: tags.clone(),
    }));

    for pl in &spec.pipelines {
        let schema = serde_json::to_string(&pl.schema).expect("schema serialises");
        out.push(Desired::LambdaFunction(function::Desired {
            name: pl.transform.function.clone(),
            description: format!("pipectl transform of pipeline {} (stack {})", pl.name, spec.stack),
            role_name: lambda_role.clone(),
            role_arn: role_arn(&lambda_role),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architecture: "x86_64".into(),
            memory_mb: pl.transform.memory_mb,
            timeout_s: pl.transform.timeout_s,
            env: BTreeMap::from([
                (SCHEMA_ENV.to_string(), schema),
                (LAYOUT_ENV.to_string(), pl.schema.layout().to_string()),
            ]),
            code_sha256: cx.code_sha256.clone(),
            zip_path: cx.zip_path.clone(),
            tags: tags.clone(),
        }));
    }

    // Each pipeline's index template on the domain: the schema's mapping for its index.
    for pl in &spec.pipelines {
        out.push(Desired::IndexTemplate(index_template(spec, pl)));
    }

    for pl in &spec.pipelines {
        out.push(Desired::DeliveryStream(delivery::Desired {
            name: pl.delivery.name.clone(),
            family: s.family(),
            stream_name: pl.stream.name.clone(),
            stream_arn: stream_arn(&pl.stream.name),
            role_name: fh_role.clone(),
            role_arn: fh_role_arn.clone(),
            domain_name: s.domain.clone(),
            domain_arn: domain_arn.clone(),
            index: pl.delivery.index.clone(),
            buffer_mb: pl.delivery.buffering.size_mb,
            buffer_s: pl.delivery.buffering.interval_s,
            retry_s: pl.delivery.retry_s,
            bucket_name: spec.bucket.name.clone(),
            bucket_arn: bucket_arn.clone(),
            failed_prefix: pl.delivery.failed_prefix.clone(),
            function_name: pl.transform.function.clone(),
            processor: delivery::processor_params(
                &function_arn(&pl.transform.function),
                &fh_role_arn,
                delivery::processor_buffer(pl.delivery.buffering.size_mb, pl.delivery.buffering.interval_s),
            ),
            tags: tags.clone(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    fn cx() -> Context {
        Context {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            code_sha256: "h=".into(),
            zip_path: "z".into(),
        }
    }

    fn spec(src: &str) -> Spec {
        crate::spec::parse("s.yaml", src).unwrap().spec
    }

    #[test]
    fn crime_stack_resolves_to_the_articles_resources() {
        let s = spec(include_str!("../stacks/crime-data.yaml"));
        let d = resolve(&s, &cx());
        let ids: Vec<String> = d.iter().map(|x| x.id().to_string()).collect();
        assert_eq!(
            ids,
            [
                "iam_role.crime-data-lambda",
                "iam_role.crime-data-firehose",
                "s3_bucket.crime-data-firehose-backup",
                "kinesis_stream.DataStream",
                "search_domain.kinesis",
                "lambda_function.transform-firehose-data",
                "index_template.kinesis/crime-data",
                "delivery_stream.firehose"
            ]
        );
        let Desired::SearchDomain(dom) = &d[4] else { panic!() };
        let stmts = dom.access_policy["Statement"].as_array().unwrap();
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts[0]["Principal"]["AWS"], "arn:aws:iam::123456789012:root");
        assert_eq!(stmts[1]["Principal"]["AWS"], "arn:aws:iam::123456789012:role/pipectl/crime-data-firehose");
        assert_eq!(stmts[2]["Condition"]["IpAddress"]["aws:SourceIp"], json!(["1.1.1.1/32"]));
        let Desired::IndexTemplate(t) = &d[6] else { panic!() };
        assert_eq!(t.index_patterns, ["crime-data", "crime-data-*"]);
        assert_eq!(t.fields["location"]["type"], "geo_point");
        let Desired::DeliveryStream(dl) = &d[7] else { panic!() };
        assert_eq!((dl.buffer_mb, dl.buffer_s), (1, 60));
        assert_eq!(dl.failed_prefix, "failed/");
        assert_eq!(dl.family, crate::spec::EngineFamily::OpenSearch);
        for x in &d {
            let tags = match x {
                Desired::IamRole(v) => &v.tags,
                Desired::S3Bucket(v) => &v.tags,
                Desired::KinesisStream(v) => &v.tags,
                Desired::SearchDomain(v) => &v.tags,
                Desired::LambdaFunction(v) => &v.tags,
                Desired::IndexTemplate(v) => &v.tags,
                Desired::DeliveryStream(v) => &v.tags,
            };
            assert_eq!(tags.get(STACK_TAG).map(String::as_str), Some("crime-data"));
            assert_eq!(tags.get("team").map(String::as_str), Some("analytics"));
        }
    }

    #[test]
    fn firehose_policy_is_scoped_to_exact_resources() {
        let s = spec(include_str!("../stacks/two-feeds-es.yaml"));
        let d = resolve(&s, &cx());
        let Desired::IamRole(r) = d
            .iter()
            .find(|x| x.id() == crate::resources::ResourceId::new(Kind::IamRole, "city-feeds-firehose"))
            .unwrap()
        else {
            panic!()
        };
        let text = r.inline["delivery"].to_string();
        assert!(text.contains("stream/city-crime\"") && text.contains("stream/city-sensors\""), "{text}");
        assert!(text.contains("arn:aws:s3:::city-feeds-failed-docs/failed/crime/*"), "{text}");
        assert!(!text.contains("${"), "{text}");
        assert!(!text.contains("\"*\""), "no wildcard resource: {text}");
        // allow_account: false drops the root statement.
        let Desired::SearchDomain(dom) = d.iter().find(|x| matches!(x, Desired::SearchDomain(_))).unwrap() else {
            panic!()
        };
        assert!(!dom.access_policy.to_string().contains(":root"));
        assert!(d
            .iter()
            .filter(|x| matches!(x, Desired::DeliveryStream(_)))
            .all(|x| matches!(x, Desired::DeliveryStream(v) if v.family == crate::spec::EngineFamily::Elasticsearch)));
    }

    #[test]
    fn partitions() {
        let mut c = cx();
        c.region = "cn-north-1".into();
        assert_eq!(c.partition(), "aws-cn");
        c.region = "us-gov-west-1".into();
        assert_eq!(c.partition(), "aws-us-gov");
    }
}
