//! The engine against AWS's real behaviour, reproduced by the emulator (scripts/aws_like.py):
//! each test arms the fault or the account state that would break one claim, and checks the
//! claim still holds. Every behaviour of the emulator is on (`Moto::aws_like`).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{bundle_dir, Moto, Scratch};
use pipectl::resources::{read, Kind, Live, ResourceId};
use serde_json::json;

fn art() -> String {
    bundle_dir().display().to_string()
}

async fn live(m: &Moto, kind: Kind, name: &str) -> Option<Live> {
    read(&m.aws().await, &ResourceId::new(kind, name)).await.unwrap()
}

/// The "API calls: N" figure pipectl prints on stderr.
fn api_calls(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.starts_with("API calls: ")).unwrap_or_else(|| panic!("{stderr}"));
    line["API calls: ".len()..].split(',').next().unwrap().parse().unwrap()
}

/// Applies the article's stack and checks the key claim: right after, nothing to do.
fn deploy(m: &Moto, dir: &Scratch) -> String {
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);
    assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);
    spec
}

async fn put_failed_doc(m: &Moto, key: &str) {
    common::s3(&m.sdk().await)
        .put_object()
        .bucket("crime-data-firehose-backup")
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"doc\":1}"))
        .send()
        .await
        .unwrap();
}

/// 1,000 unrelated streams, buckets and functions (some tagged for another stack, some with
/// tags we may not read), and buckets in other and opt-in regions: plan makes exactly as many
/// calls as without them, and does not fail on them.
#[tokio::test(flavor = "multi_thread")]
async fn plan_calls_do_not_grow_with_unrelated_resources() {
    let m = Moto::aws_like();
    let dir = Scratch::new("scale");
    let spec = deploy(&m, &dir);
    let plan = |m: &Moto| {
        let start = Instant::now();
        let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);
        assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);
        (api_calls(&out.stderr), start.elapsed())
    };
    let (calls0, wall0) = plan(&m);

    let sdk = m.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = iam
        .create_role()
        .role_name("unrelated")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let role_arn = Arc::new(role.role().unwrap().arn().to_string());
    let zip = Arc::new(std::fs::read(bundle_dir().join("transform.zip")).unwrap());
    let n = 1000;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..20 {
        let (sdk, role_arn, zip) = (sdk.clone(), role_arn.clone(), zip.clone());
        tasks.spawn(async move {
            let kinesis = aws_sdk_kinesis::Client::new(&sdk);
            let lambda = aws_sdk_lambda::Client::new(&sdk);
            let s3 = common::s3(&sdk);
            for i in (chunk..n).step_by(20) {
                let other = if i % 2 == 0 { "other-stack" } else { "crime-data-old" };
                kinesis
                    .create_stream()
                    .stream_name(format!("unrelated-{i}"))
                    .shard_count(1)
                    .tags("pipectl:stack", other)
                    .send()
                    .await
                    .unwrap();
                common::create_bucket(&s3, &format!("unrelated-{i}")).await;
                // The emulator propagates a new role the way IAM does: the first calls that
                // use it fail ("cannot be assumed by Lambda"), so these are retried.
                for attempt in 0.. {
                    let r = lambda
                        .create_function()
                        .function_name(format!("unrelated-{i}"))
                        .role(role_arn.as_str())
                        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
                        .handler("bootstrap")
                        .code(
                            aws_sdk_lambda::types::FunctionCode::builder()
                                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip.as_slice()))
                                .build(),
                        )
                        .tags("pipectl:stack", other)
                        .send()
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) if attempt < 5 => {
                            let e = aws_sdk_lambda::error::DisplayErrorContext(e);
                            assert!(e.to_string().contains("cannot be assumed"), "{e}");
                        }
                        Err(e) => panic!("{}", aws_sdk_lambda::error::DisplayErrorContext(e)),
                    }
                }
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    m.fault(json!({
        "foreign_buckets": [
            {"name": "someone-elses-logs", "kind": "redirect"},
            {"name": "opt-in-region-data", "kind": "optin"},
            {"name": "locked-down", "kind": "denied"}
        ],
        "denied_tags": ["unrelated-7", "unrelated-8"]
    }));
    let (calls1, wall1) = plan(&m);
    eprintln!(
        "plan of the crime-data stack: {calls0} API calls, {:.2}s with 0 unrelated resources; \
         {calls1} API calls, {:.2}s with {} unrelated streams, buckets and functions",
        wall0.as_secs_f64(),
        wall1.as_secs_f64(),
        n
    );
    assert_eq!(calls1, calls0, "the number of calls grew with unrelated resources");
    // The Tagging API was asked once (one page), never a per-resource tag read of strangers.
    let seen = m.calls();
    assert!(!seen.keys().any(|k| k == "s3:ListBuckets"), "{seen:?}");
    // Destroy leaves every unrelated resource alone.
    m.pipectl(&["destroy", "-f", &spec, "--yes"]).ok();
    assert!(live(&m, Kind::KinesisStream, "unrelated-1").await.is_some());
    assert!(live(&m, Kind::LambdaFunction, "unrelated-2").await.is_some());
}

/// Tags travel in the create calls themselves: no window in which an interrupted apply leaves
/// an untagged stream or bucket that the next plan would call a conflict.
#[tokio::test(flavor = "multi_thread")]
async fn resources_are_tagged_as_they_are_created() {
    let m = Moto::aws_like();
    let dir = Scratch::new("tags");
    deploy(&m, &dir);
    let seen = m.calls();
    for call in ["kinesis:AddTagsToStream", "s3:PutBucketTagging"] {
        assert!(!seen.contains_key(call), "{call} after creation: {seen:?}");
    }
    let Some(Live::KinesisStream(s)) = live(&m, Kind::KinesisStream, "DataStream").await else { panic!() };
    assert_eq!(s.tags.get("pipectl:stack").map(String::as_str), Some("crime-data"));
    let Some(Live::S3Bucket(b)) = live(&m, Kind::S3Bucket, "crime-data-firehose-backup").await else { panic!() };
    assert_eq!(b.tags.get("pipectl:stack").map(String::as_str), Some("crime-data"));
}

/// AWS accepts a domain change, then rejects it while validating (ChangeProgressDetails
/// ValidationFailed): apply fails with AWS's reason instead of waiting forever or reporting
/// success, and the change is still planned afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn rejected_domain_change_is_an_error_with_aws_reason() {
    let m = Moto::aws_like();
    let dir = Scratch::new("domainfail");
    deploy(&m, &dir);
    let edited = common::stack_text("crime-data.yaml").replace("instance_count: 1", "instance_count: 2");
    let spec2 = dir.write("stack2.yaml", &edited);
    m.fault(json!({"domain_change_fails": {"name": "kinesis", "message": "InsufficientInstanceCapacity: no m5.large.search capacity in eu-west-1a"}}));
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art()]).code(1);
    assert!(out.stderr.contains("search_domain.kinesis: FAILED"), "{}", out.stderr);
    assert!(out.stderr.contains("InsufficientInstanceCapacity"), "{}", out.stderr);
    let out = m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art()]).code(2);
    assert!(out.stdout.contains("instance_count"), "{}", out.stdout);
    // Without the fault it goes through, and then nothing is left to do.
    m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art()]).ok();
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art()]).code(0);
}

/// A delivery stream Firehose failed to create: apply says why (FailureDescription), plan shows
/// it must be replaced (never "No changes."), and the next apply replaces it. A stream stuck in
/// DELETING_FAILED is deleted with AllowForceDelete.
#[tokio::test(flavor = "multi_thread")]
async fn failed_delivery_streams_are_reported_and_replaced() {
    let m = Moto::aws_like();
    let dir = Scratch::new("fhfail");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    m.fault(json!({"firehose_create_failed": {"name": "firehose", "type": "KMS_ACCESS_DENIED", "details": "Firehose could not create a grant on the key"}}));
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).code(1);
    assert!(
        out.stderr.contains("CREATING_FAILED")
            && out.stderr.contains("KMS_ACCESS_DENIED: Firehose could not create a grant"),
        "{}",
        out.stderr
    );
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(2);
    assert!(out.stdout.contains("-/+ delivery_stream.firehose"), "{}", out.stdout);
    assert!(out.stdout.contains("CREATING_FAILED"), "{}", out.stdout);
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);

    m.fault(json!({"firehose_delete_failed": {"name": "firehose"}}));
    let out = m.pipectl(&["destroy", "-f", &spec, "--yes"]).ok();
    assert!(out.stderr.contains("AllowForceDelete"), "{}", out.stderr);
    assert!(live(&m, Kind::DeliveryStream, "firehose").await.is_none());
}

/// A function Lambda could not set up (State Failed) is never "No changes.".
#[tokio::test(flavor = "multi_thread")]
async fn failed_function_shows_in_plan_and_is_replaced() {
    let m = Moto::aws_like();
    let dir = Scratch::new("lambdafail");
    let spec = deploy(&m, &dir);
    m.fault(json!({"lambda_failed": {"name": "transform-firehose-data", "reason": "The function's execution role was deleted"}}));
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(2);
    assert!(out.stdout.contains("-/+ lambda_function.transform-firehose-data"), "{}", out.stdout);
    assert!(out.stdout.contains("execution role was deleted"), "{}", out.stdout);
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);
}

/// DeleteObjects answers 200 with per-key errors: `destroy --purge` fails with the first one
/// and keeps the bucket, instead of looping or reporting success.
#[tokio::test(flavor = "multi_thread")]
async fn purge_reports_per_key_delete_errors() {
    let m = Moto::aws_like();
    let dir = Scratch::new("purge");
    let spec = deploy(&m, &dir);
    put_failed_doc(&m, "failed/2026/11/30/doc-1").await;
    m.fault(json!({"delete_objects_errors": {"bucket": "crime-data-firehose-backup", "code": "AccessDenied", "message": "Access Denied"}}));
    let out = m.pipectl(&["destroy", "-f", &spec, "--yes", "--purge"]).code(1);
    assert!(out.stderr.contains("AccessDenied") && out.stderr.contains("failed/2026/11/30/doc-1"), "{}", out.stderr);
    assert!(live(&m, Kind::S3Bucket, "crime-data-firehose-backup").await.is_some());
}

/// A bucket name held by another account (HeadBucket 403) or by a bucket in another region
/// (301) is a conflict that says so, before any change; --adopt cannot take it either.
#[tokio::test(flavor = "multi_thread")]
async fn bucket_names_taken_elsewhere_are_clear_conflicts() {
    for (kind, words) in [("taken", "belongs to another AWS account"), ("redirect", "exists in another region")] {
        let m = Moto::aws_like();
        let dir = Scratch::new("taken");
        let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
        m.fault(json!({"foreign_buckets": [{"name": "crime-data-firehose-backup", "kind": kind}]}));
        let out = m.pipectl(&["plan", "-f", &spec, "--artifacts", &art()]).code(1);
        assert!(
            out.stdout.contains("s3_bucket.crime-data-firehose-backup") && out.stdout.contains(words),
            "{}",
            out.stdout
        );
        let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--adopt", "--artifacts", &art()]).code(1);
        assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
        assert!(live(&m, Kind::KinesisStream, "DataStream").await.is_none());
    }
}

/// A saved plan depends on configuration, not on what moves by itself: failed documents
/// arriving in the bucket and a domain busy with an unrelated change do not make it stale.
#[tokio::test(flavor = "multi_thread")]
async fn saved_plan_ignores_state_that_moves_by_itself() {
    let m = Moto::aws_like();
    let dir = Scratch::new("saved-volatile");
    deploy(&m, &dir);
    let spec2 =
        dir.write("stack2.yaml", &common::stack_text("crime-data.yaml").replace("memory_mb: 128", "memory_mb: 256"));
    let saved = dir.path("plan.json");
    m.pipectl(&["plan", "-f", &spec2, "--out", &saved, "--artifacts", &art()]).ok();
    put_failed_doc(&m, "failed/2026/11/30/doc-2").await;
    // The domain starts processing (a no-op change made elsewhere): Processing flips to true.
    let os = aws_sdk_opensearch::Client::new(&m.sdk().await);
    os.update_domain_config()
        .domain_name("kinesis")
        .domain_endpoint_options(
            aws_sdk_opensearch::types::DomainEndpointOptions::builder()
                .enforce_https(true)
                .tls_security_policy(aws_sdk_opensearch::types::TlsSecurityPolicy::PolicyMinTls12201907)
                .build(),
        )
        .send()
        .await
        .unwrap();
    m.pipectl(&["apply", &saved, "--yes"]).ok();
    let Some(Live::LambdaFunction(f)) = live(&m, Kind::LambdaFunction, "transform-firehose-data").await else {
        panic!()
    };
    assert_eq!(f.memory_mb, 256);
}

/// Ownership is read again right before a change: a resource that lost the stack's tag since
/// the plan was made is refused, not touched (the executor is driven directly, past the saved
/// plan's staleness check, to reproduce the race).
#[tokio::test(flavor = "multi_thread")]
async fn ownership_is_rechecked_before_each_change() {
    let m = Moto::aws_like();
    let dir = Scratch::new("owner");
    deploy(&m, &dir);
    let spec2 =
        dir.write("stack2.yaml", &common::stack_text("crime-data.yaml").replace("memory_mb: 128", "memory_mb: 256"));
    let saved = dir.path("plan.json");
    m.pipectl(&["plan", "-f", &spec2, "--out", &saved, "--artifacts", &art()]).ok();
    let plan: pipectl::plan::Plan = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let lambda = aws_sdk_lambda::Client::new(&m.sdk().await);
    let arn = lambda.get_function().function_name("transform-firehose-data").send().await.unwrap();
    let arn = arn.configuration().unwrap().function_arn().unwrap().to_string();
    lambda.untag_resource().resource(&arn).tag_keys("pipectl:stack").send().await.unwrap();
    let aws = m.aws().await;
    let outcome = pipectl::engine::execute(&aws, &plan, Arc::new(pipectl::events::Quiet)).await;
    assert_eq!(outcome.failed.len(), 1, "{:?}", outcome.failed);
    assert_eq!(outcome.failed[0].1.code, "NotOwned");
    let Some(Live::LambdaFunction(f)) = live(&m, Kind::LambdaFunction, "transform-firehose-data").await else {
        panic!()
    };
    assert_eq!(f.memory_mb, 128, "an unowned function was changed");
}

/// What AWS changes in place is planned in place, and the plan says how AWS will deploy it: an
/// engine upgrade (UpgradeDomain along GetCompatibleVersions) and encryption at rest turned on
/// are updates of the same domain, shown as blue/green (AWS's dry run), in text and JSON; an
/// access-policy change is a dynamic update.
#[tokio::test(flavor = "multi_thread")]
async fn domain_upgrade_and_encryption_are_in_place_with_their_deployment_type() {
    let m = Moto::aws_like();
    let dir = Scratch::new("upgrade");
    let base = common::stack_text("crime-data.yaml")
        .replace("engine: OpenSearch_2.13", "engine: OpenSearch_2.11")
        .replace("encrypt_at_rest: true", "encrypt_at_rest: false");
    let spec = dir.write("stack.yaml", &base);
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    let Some(Live::SearchDomain(d0)) = live(&m, Kind::SearchDomain, "kinesis").await else { panic!() };

    let edited = base
        .replace("engine: OpenSearch_2.11", "engine: OpenSearch_2.13")
        .replace("encrypt_at_rest: false", "encrypt_at_rest: true");
    let spec2 = dir.write("stack2.yaml", &edited);
    let out = m.pipectl(&["plan", "-f", &spec2, "--artifacts", &art()]).ok();
    assert!(out.stdout.contains("~ search_domain.kinesis  (update in place)"), "{}", out.stdout);
    assert!(out.stdout.contains("engine: \"OpenSearch_2.11\" -> \"OpenSearch_2.13\"\n"), "{}", out.stdout);
    assert!(out.stdout.contains("encrypt_at_rest: false -> true\n"), "{}", out.stdout);
    assert!(out.stdout.contains("deployment: Blue/Green - a blue/green deployment: can take hours"), "{}", out.stdout);
    assert!(!out.stdout.contains("forces replacement"), "{}", out.stdout);
    let out = m.pipectl(&["plan", "-f", &spec2, "--json", "--artifacts", &art()]).ok();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let step = plan["steps"].as_array().unwrap().iter().find(|s| s["id"]["name"] == "kinesis").unwrap();
    assert_eq!(step["action"], "update");
    assert_eq!(step["deployment"]["type"], "Blue/Green");
    // No --allow-replace needed: nothing is replaced.
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art()]).ok();
    assert!(out.stderr.contains("upgrading the engine to OpenSearch_2.13"), "{}", out.stderr);
    let Some(Live::SearchDomain(d1)) = live(&m, Kind::SearchDomain, "kinesis").await else { panic!() };
    assert_eq!((d1.engine.as_str(), d1.encrypt_at_rest, &d1.arn), ("OpenSearch_2.13", true, &d0.arn));
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art()]).code(0);

    // An access-policy change: AWS applies it without a blue/green deployment.
    let spec3 = dir.write("stack3.yaml", &edited.replace("[\"1.1.1.1/32\"]", "[\"1.1.1.1/32\", \"2.2.2.0/24\"]"));
    let out = m.pipectl(&["plan", "-f", &spec3, "--artifacts", &art()]).ok();
    assert!(out.stdout.contains("deployment: DynamicUpdate - a dynamic update"), "{}", out.stdout);
    // A downgrade has no upgrade path: a replacement, refused without --allow-replace.
    let spec4 = dir.write("stack4.yaml", &edited.replace("engine: OpenSearch_2.13", "engine: OpenSearch_2.11"));
    let out = m.pipectl(&["plan", "-f", &spec4, "--artifacts", &art()]).ok();
    assert!(out.stdout.contains("-/+ search_domain.kinesis  (replace, forced by engine)"), "{}", out.stdout);
}

/// The instance type's published limits (DescribeInstanceTypeLimits) are checked at plan time:
/// a volume the type cannot take is a conflict before any change, not a failure half way.
#[tokio::test(flavor = "multi_thread")]
async fn instance_type_limits_are_checked_at_plan_time() {
    let m = Moto::aws_like();
    let dir = Scratch::new("limits");
    let spec =
        dir.write("stack.yaml", &common::stack_text("crime-data.yaml").replace("volume_gb: 10", "volume_gb: 2000"));
    let out = m.pipectl(&["plan", "-f", &spec, "--artifacts", &art()]).code(1);
    assert!(
        out.stdout.contains("search_domain.kinesis: volume_gb 2000 is outside m5.large.search's 10..=1024 GiB for gp3"),
        "{}",
        out.stdout
    );
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).code(1);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(live(&m, Kind::IamRole, "crime-data-lambda").await.is_none());
}

/// The domain's REST calls are retried like AWS calls, and every write is idempotent: a reply
/// lost after the domain stored the index pattern or the template does not fail the apply and
/// leaves nothing to do. (Without `overwrite=true` the index pattern's retry answers 409; a
/// put that did not read first could not tell its own template from someone else's.)
#[tokio::test(flavor = "multi_thread")]
async fn domain_writes_survive_throttling_and_lost_replies() {
    let m = Moto::aws_like();
    let dir = Scratch::new("domain-faults");
    let text = common::stack_text("crime-data.yaml");
    let spec = dir.write("stack.yaml", &text);
    // The index pattern's POST: throttled twice, then stored with its reply lost; its retry
    // finds it (409) and updates it instead.
    m.fault(json!({"search": [{"status": 429, "times": 2}, {"lost_reply": 1, "path": "saved_objects"}]}));
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    assert!(out.stderr.contains("search:CreateIndexPattern will be retried"), "{}", out.stderr);
    assert!(!out.stderr.contains("was not written"), "{}", out.stderr);
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);
    assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);
    let log = m.search_log();
    let statuses: Vec<(String, u64)> = log
        .iter()
        .filter(|e| e["method"] != "GET" && e["path"].as_str().unwrap_or("").contains("saved_objects"))
        .map(|e| (e["method"].as_str().unwrap().to_string(), e["status"].as_u64().unwrap()))
        .collect();
    let want: Vec<(String, u64)> = [("POST", 429), ("POST", 429), ("POST", 504), ("POST", 409), ("PUT", 200)]
        .map(|(m, c)| (m.to_string(), c))
        .into();
    assert_eq!(statuses, want, "{log:?}");

    // A template change whose PUT is stored and its reply lost.
    let edited = text.replace("{ name: beat, type: keyword, from: beat }", "{ name: beat, type: text, from: beat }");
    let spec2 = dir.write("stack2.yaml", &edited);
    m.fault(json!({"search": {"lost_reply": 1, "path": "_index_template"}}));
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art()]).ok();
    assert!(out.stderr.contains("search:PutIndexTemplate will be retried"), "{}", out.stderr);
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art()]).code(0);
    let state = m.search_state();
    assert_eq!(
        state["kinesis"]["templates"]["crime-data"]["template"]["mappings"]["properties"]["beat"]["type"],
        "text"
    );
    assert_eq!(
        state["kinesis"]["saved_objects"]["index-pattern/pipectl-crime-data"]["attributes"]["timeFieldName"],
        "crime_time"
    );
    assert!(m.search_log().iter().all(|e| e["signature_ok"] == true));
}

/// A template of the same name that is not the stack's (no `pipectl:stack` in its `_meta`) is
/// a conflict in the plan, and the put refuses it even when the plan was made before it
/// appeared; `--adopt` takes it over.
#[tokio::test(flavor = "multi_thread")]
async fn someone_elses_template_is_never_overwritten() {
    let m = Moto::aws_like();
    let dir = Scratch::new("foreign-template");
    deploy(&m, &dir);
    // Someone replaces the template with their own between plan and apply.
    let edited = common::stack_text("crime-data.yaml")
        .replace("{ name: beat, type: keyword, from: beat }", "{ name: beat, type: text, from: beat }");
    let spec2 = dir.write("stack2.yaml", &edited);
    let saved = dir.path("plan.json");
    m.pipectl(&["plan", "-f", &spec2, "--out", &saved, "--artifacts", &art()]).ok();
    let aws = m.aws().await;
    let base = m.search_endpoint();
    let theirs = json!({"index_patterns": ["crime-data"], "priority": 100, "template": {"mappings": {"properties": {"beat": {"type": "keyword"}}}}});
    aws.domain(
        pipectl::aws::search::Call::new("test:PutIndexTemplate", "t", &base, "PUT", "/_index_template/crime-data")
            .body(&theirs),
    )
    .await
    .unwrap();
    // The saved plan is stale (the template moved) and is refused; a fresh plan names the conflict.
    let out = m.pipectl(&["apply", &saved, "--yes"]).code(1);
    assert!(out.stderr.contains("index_template.kinesis/crime-data"), "{}", out.stderr);
    let out = m.pipectl(&["plan", "-f", &spec2, "--artifacts", &art()]).code(1);
    assert!(
        out.stdout.contains("index_template.kinesis/crime-data exists but is not managed by pipectl"),
        "{}",
        out.stdout
    );
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art()]).code(1);
    assert!(out.stderr.contains("conflict"), "{}", out.stderr);
    assert!(m.search_state()["kinesis"]["templates"]["crime-data"]["_meta"].is_null());
    // The put itself reads first: the operation a plan made while the name was free (or
    // unreadable) refuses the template that appeared since.
    let spec_v = pipectl::spec::parse("s.yaml", &edited).unwrap().spec;
    let op = pipectl::resources::Desired::IndexTemplate(pipectl::model::index_template(&spec_v, &spec_v.pipelines[0]))
        .create_op();
    let ctx =
        pipectl::aws::wait::Ctx { aws: &aws, obs: &pipectl::events::Quiet, id: "index_template.kinesis/crime-data" };
    let err = pipectl::resources::execute(&ctx, &op).await.unwrap_err();
    assert_eq!(err.code, "NotOwned", "{err}");
    assert!(m.search_state()["kinesis"]["templates"]["crime-data"]["_meta"].is_null());
    // --adopt takes it over explicitly.
    m.pipectl(&["apply", "-f", &spec2, "--yes", "--adopt", "--artifacts", &art()]).ok();
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art()]).code(0);
    assert_eq!(m.search_state()["kinesis"]["templates"]["crime-data"]["_meta"]["pipectl:stack"], "crime-data");
}

/// Dashboards down (AWS: it may be unavailable during an upgrade) does not hold the pipeline
/// back: the template is put, the delivery stream created, apply says the index pattern was not
/// written, the next plan shows it still to write, and the next apply writes it.
#[tokio::test(flavor = "multi_thread")]
async fn dashboards_down_does_not_hold_the_delivery_stream_back() {
    let m = Moto::aws_like();
    let dir = Scratch::new("dashboards-down");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    m.fault(json!({"search": {"status": 503, "times": 100, "path": "saved_objects"}}));
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    assert!(out.stderr.contains("the Dashboards index pattern was not written"), "{}", out.stderr);
    assert!(live(&m, Kind::DeliveryStream, "firehose").await.is_some());
    assert!(m.search_state()["kinesis"]["templates"]["crime-data"].is_object());
    // Still down: the plan does not fail, it shows the pattern as unknown and still to write.
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(2);
    assert!(out.stdout.contains("dashboards.index_pattern: \"unknown: "), "{}", out.stdout);
    m.reset();
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(2);
    assert!(out.stdout.contains("dashboards.index_pattern: (none) -> "), "{}", out.stdout);
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art()]).ok();
    m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art()]).code(0);
}
