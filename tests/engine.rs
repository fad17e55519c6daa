//! The engine end to end: the real `pipectl` binary against a private moto server.
//! apply → No changes → edit → exactly that change → apply → drift repaired → destroy, for both
//! engine families; conflicts with unowned resources; saved plans; no AWS call on a bad spec.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{bundle_dir, Moto, Scratch};
use pipectl::aws::search::Call;
use pipectl::resources::{read, Kind, Live, ResourceId};
use serde_json::Value;

fn id(kind: Kind, name: &str) -> ResourceId {
    ResourceId::new(kind, name)
}

async fn live(m: &Moto, kind: Kind, name: &str) -> Option<Live> {
    read(&m.aws().await, &id(kind, name)).await.unwrap()
}

/// (resource id, [attributes]) of every step of a JSON plan.
fn plan_changes(json: &str) -> Vec<(String, String, Vec<String>)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = format!("{}.{}", s["id"]["kind"].as_str().unwrap(), s["id"]["name"].as_str().unwrap());
            let attrs =
                s["changes"].as_array().unwrap().iter().map(|c| c["attr"].as_str().unwrap().to_string()).collect();
            (id, s["action"].as_str().unwrap().to_string(), attrs)
        })
        .collect()
}

fn artifacts() -> String {
    bundle_dir().display().to_string()
}

/// The full lifecycle for one stack file; `edits` turn the spec into its edited form and
/// `expected` lists exactly the changes the plan must show.
/// `template_edit`: the (field, old mapping type, new mapping type) one of the edits makes.
async fn lifecycle(
    stack: &str,
    resources: usize,
    edits: &[(&str, &str)],
    expected: &[(&str, &[&str])],
    template_edit: (&str, &str, &str),
) {
    let m = Moto::aws_like();
    let dir = Scratch::new("lifecycle");
    let text = common::stack_text(stack);
    let spec = dir.write("stack.yaml", &text);
    let art = artifacts();

    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).ok();
    let summary = format!("Plan: {resources} to add, 0 to change, 0 to replace, 0 to destroy.");
    assert!(out.stdout.contains(&summary), "{}", out.stdout);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);

    // The key test: right after apply, nothing to do.
    let out = m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art]).code(0);
    assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);

    let spec_v: pipectl::spec::Spec = serde_yaml::from_str(&text).unwrap();
    let domain = spec_v.search.domain.clone();
    // Each pipeline's index template holds exactly its schema's types.
    let state = m.search_state();
    for pl in &spec_v.pipelines {
        let t = &state[&domain]["templates"][&pl.delivery.index];
        assert_eq!(t["index_patterns"], serde_json::json!([pl.delivery.index, format!("{}-*", pl.delivery.index)]));
        let props = &t["template"]["mappings"]["properties"];
        let want = pl.schema.index_mapping();
        for (field, m) in want["mappings"]["properties"].as_object().unwrap() {
            assert_eq!(&props[field], m, "{field} in {}", pl.delivery.index);
        }
        assert_eq!(props.as_object().unwrap().len(), pl.schema.fields.len());
    }
    let index = spec_v.pipelines[0].delivery.index.clone();
    let template_id = format!("index_template.{domain}/{index}");
    // Firehose delivers a first document: the index is created from the template.
    let aws = m.aws().await;
    let base = m.search_endpoint();
    let doc_path = format!("/{index}/_doc");
    aws.domain(Call::new("test:IndexDocument", &index, &base, "POST", &doc_path).body(&serde_json::json!({})))
        .await
        .unwrap();
    let stream_name = spec_v.pipelines[0].stream.name.clone();
    let delivery_name = spec_v.pipelines[0].delivery.name.clone();
    let Some(Live::KinesisStream(s0)) = live(&m, Kind::KinesisStream, &stream_name).await else {
        panic!("stream missing")
    };
    let Some(Live::DeliveryStream(d0)) = live(&m, Kind::DeliveryStream, &delivery_name).await else {
        panic!("delivery missing")
    };

    // Edit the spec: the plan shows exactly those changes.
    let mut edited = text.clone();
    for (from, to) in edits {
        assert!(edited.contains(from), "edit base {from:?} not in {stack}");
        edited = edited.replacen(from, to, 1);
    }
    let spec2 = dir.write("stack2.yaml", &edited);
    let out = m.pipectl(&["plan", "-f", &spec2, "--json", "--detailed-exitcode", "--artifacts", &art]).code(2);
    let got = plan_changes(&out.stdout);
    let want: Vec<(String, String, Vec<String>)> = expected
        .iter()
        .map(|(i, attrs)| (i.to_string(), "update".to_string(), attrs.iter().map(|a| a.to_string()).collect()))
        .collect();
    assert_eq!(got, want, "plan after edit:\n{}", out.stdout);
    // The mapping change does not reach the index that exists, and the plan says so.
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let step = plan["steps"].as_array().unwrap().iter().find(|s| s["id"]["kind"] == "index_template").unwrap();
    let note = step["note"].as_str().unwrap_or_default();
    assert!(note.contains("existing indices keep the mapping") && note.contains(&format!("{index} [")), "{note}");

    m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art]).ok();
    let out = m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art]).code(0);
    assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);

    let (field, old_type, new_type) = template_edit;
    let state = m.search_state();
    assert_eq!(state[&domain]["templates"][&index]["template"]["mappings"]["properties"][field]["type"], new_type);
    assert_eq!(state[&domain]["indices"][&index]["mappings"]["properties"][field]["type"], old_type);

    // Updated in place: same resources, same creation time.
    let Some(Live::KinesisStream(s1)) = live(&m, Kind::KinesisStream, &stream_name).await else { panic!() };
    let Some(Live::DeliveryStream(d1)) = live(&m, Kind::DeliveryStream, &delivery_name).await else { panic!() };
    assert_eq!(s0.created, s1.created);
    assert_eq!(s0.arn, s1.arn);
    assert_eq!(d0.created, d1.created);
    assert_ne!(d0.version_id, d1.version_id, "UpdateDestination bumps the version");

    // Drift made outside pipectl shows up and is repaired.
    let sdk = m.sdk().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function = spec_v.pipelines[0].transform.function.clone();
    lambda.update_function_configuration().function_name(&function).memory_size(1024).send().await.unwrap();
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    kinesis.add_tags_to_stream().stream_name(&stream_name).tags("added-in-console", "yes").send().await.unwrap();
    // Someone edits the template by hand: the field goes back to its old type.
    let template_path = format!("/_index_template/{index}");
    let reply = aws.domain(Call::new("test:GetIndexTemplate", &index, &base, "GET", &template_path)).await.unwrap();
    let mut body = reply.body["index_templates"][0]["index_template"].clone();
    body["template"]["mappings"]["properties"][field] = serde_json::json!({"type": old_type});
    aws.domain(Call::new("test:PutIndexTemplate", &index, &base, "PUT", &template_path).body(&body)).await.unwrap();
    let out = m.pipectl(&["plan", "-f", &spec2, "--json", "--artifacts", &art]).ok();
    let got = plan_changes(&out.stdout);
    assert_eq!(
        got,
        vec![
            (format!("kinesis_stream.{stream_name}"), "update".to_string(), vec!["tags".to_string()]),
            (format!("lambda_function.{function}"), "update".to_string(), vec!["memory_mb".to_string()]),
            (template_id.clone(), "update".to_string(), vec![format!("mappings.{field}")]),
        ],
        "{}",
        out.stdout
    );
    m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art]).ok();
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art]).code(0);
    let state = m.search_state();
    assert_eq!(state[&domain]["templates"][&index]["template"]["mappings"]["properties"][field]["type"], new_type);

    // Destroy: an unowned neighbour with a similar name survives; a bucket holding failed
    // documents is kept (non-zero exit naming it) until --purge.
    let neighbour = format!("{stream_name}-neighbour");
    kinesis.create_stream().stream_name(&neighbour).shard_count(1).send().await.unwrap();
    let s3 = common::s3(&sdk);
    let neighbour_bucket = format!("{}-x", spec_v.bucket.name);
    common::create_bucket(&s3, &neighbour_bucket).await;
    s3.put_object()
        .bucket(&spec_v.bucket.name)
        .key(format!("{}2026/11/28/failed-doc", spec_v.pipelines[0].delivery.failed_prefix))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"doc\":1}"))
        .send()
        .await
        .unwrap();
    // Every request pipectl (and this test) sent to the domain so far was correctly signed.
    let log = m.search_log();
    assert!(!log.is_empty());
    for e in &log {
        assert_eq!((e["signed"].as_bool(), e["signature_ok"].as_bool()), (Some(true), Some(true)), "{e}");
    }
    m.reset();
    let out = m.pipectl(&["destroy", "-f", &spec2, "--yes"]).code(1);
    assert!(out.stderr.contains("BucketNotEmpty") && out.stderr.contains(&spec_v.bucket.name), "{}", out.stderr);
    assert!(live(&m, Kind::KinesisStream, &stream_name).await.is_none());
    assert!(live(&m, Kind::DeliveryStream, &delivery_name).await.is_none());
    assert!(live(&m, Kind::SearchDomain, &spec_v.search.domain).await.is_none());
    // The templates went with their domain, as its step said: destroy read nothing inside it
    // and sent it nothing.
    assert!(out.stdout.contains("what lives in it goes with it: index_template."), "{}", out.stdout);
    assert!(m.search_log().is_empty(), "{:?}", m.search_log());
    assert!(live(&m, Kind::LambdaFunction, &function).await.is_none());
    assert!(live(&m, Kind::S3Bucket, &spec_v.bucket.name).await.is_some(), "the bucket with failed documents is kept");
    let out = m.pipectl(&["destroy", "-f", &spec2, "--yes", "--purge"]).ok();
    assert!(out.stdout.contains("s3_bucket."), "{}", out.stdout);
    assert!(live(&m, Kind::S3Bucket, &spec_v.bucket.name).await.is_none());
    for r in [
        id(Kind::IamRole, &format!("{}-firehose", spec_v.stack)),
        id(Kind::IamRole, &format!("{}-lambda", spec_v.stack)),
    ] {
        assert!(read(&m.aws().await, &r).await.unwrap().is_none(), "{r} left behind");
    }
    // Nothing owned is left; the neighbours survive.
    let out = m.pipectl(&["plan", "-f", &spec2, "--destroy", "--detailed-exitcode"]).code(0);
    assert!(out.stdout.trim_end().ends_with("No changes."), "{}", out.stdout);
    assert!(live(&m, Kind::KinesisStream, &neighbour).await.is_some());
    assert!(live(&m, Kind::S3Bucket, &neighbour_bucket).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn opensearch_stack_lifecycle() {
    lifecycle(
        "crime-data.yaml",
        8,
        &[
            ("shards: 1, retention_hours: 24", "shards: 2, retention_hours: 48"),
            ("buffering: { size_mb: 1, interval_s: 60 }", "buffering: { size_mb: 2, interval_s: 60 }"),
            ("memory_mb: 128", "memory_mb: 256"),
            ("{ name: beat, type: keyword, from: beat }", "{ name: beat, type: text, from: beat }"),
        ],
        &[
            ("kinesis_stream.DataStream", &["shards", "retention_hours"]),
            // One schema drives the transform and the index: both change.
            (
                "lambda_function.transform-firehose-data",
                &["memory_mb", "environment.PIPECTL_LAYOUT", "environment.PIPECTL_SCHEMA"],
            ),
            ("index_template.kinesis/crime-data", &["mappings.beat"]),
            // The transform's processor buffer follows the destination's (within 1-3 MB).
            ("delivery_stream.firehose", &["buffering.size_mb", "processing.BufferSizeInMBs"]),
        ],
        ("beat", "keyword", "text"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn elasticsearch_stack_lifecycle() {
    lifecycle(
        "two-feeds-es.yaml",
        12,
        &[
            ("shards: 2, retention_hours: 48", "shards: 4, retention_hours: 24"),
            (
                "failed_prefix: failed/crime/",
                "failed_prefix: failed/crime/\n      buffering: { size_mb: 2, interval_s: 120 }",
            ),
            (
                "transform: { function: city-crime-transform }",
                "transform: { function: city-crime-transform, memory_mb: 512 }",
            ),
            ("{ name: district, type: integer, from: district }", "{ name: district, type: keyword, from: district }"),
        ],
        &[
            ("kinesis_stream.city-crime", &["shards", "retention_hours"]),
            (
                "lambda_function.city-crime-transform",
                &["memory_mb", "environment.PIPECTL_LAYOUT", "environment.PIPECTL_SCHEMA"],
            ),
            ("index_template.city-feeds/crime", &["mappings.district"]),
            (
                "delivery_stream.city-crime-delivery",
                &[
                    "buffering.size_mb",
                    "buffering.interval_s",
                    "processing.BufferIntervalInSeconds",
                    "processing.BufferSizeInMBs",
                ],
            ),
        ],
        ("district", "long", "keyword"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unowned_same_name_is_refused_before_any_change() {
    let m = Moto::aws_like();
    let dir = Scratch::new("conflict");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    let kinesis = aws_sdk_kinesis::Client::new(&m.sdk().await);
    kinesis.create_stream().stream_name("DataStream").shard_count(3).send().await.unwrap();
    let art = artifacts();
    let out = m.pipectl(&["plan", "-f", &spec, "--artifacts", &art]).code(1);
    assert!(out.stdout.contains("kinesis_stream.DataStream exists but is not managed by pipectl"), "{}", out.stdout);
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).code(1);
    assert!(out.stderr.contains("refusing to apply: 1 conflict(s), nothing was changed"), "{}", out.stderr);
    // Nothing was created, and the stream is untouched.
    assert!(live(&m, Kind::IamRole, "crime-data-lambda").await.is_none());
    assert!(live(&m, Kind::S3Bucket, "crime-data-firehose-backup").await.is_none());
    let Some(Live::KinesisStream(s)) = live(&m, Kind::KinesisStream, "DataStream").await else { panic!() };
    assert_eq!(s.shards, 3);
    assert!(s.tags.is_empty());
    // Destroy never touches it either.
    m.pipectl(&["destroy", "-f", &spec, "--yes"]).ok();
    assert!(live(&m, Kind::KinesisStream, "DataStream").await.is_some());
    // --adopt takes it over explicitly.
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--adopt", "--artifacts", &art]).ok();
    assert!(out.stdout.contains("adopt"), "{}", out.stdout);
    m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art]).code(0);
    let Some(Live::KinesisStream(s)) = live(&m, Kind::KinesisStream, "DataStream").await else { panic!() };
    assert_eq!(s.shards, 1);
    assert_eq!(s.tags.get("pipectl:stack").map(String::as_str), Some("crime-data"));
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_plan_applies_exactly_and_refuses_when_stale() {
    let m = Moto::aws_like();
    let dir = Scratch::new("saved");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    let art = artifacts();
    let saved = dir.path("plan.json");
    m.pipectl(&["plan", "-f", &spec, "--out", &saved, "--artifacts", &art]).ok();
    m.pipectl(&["apply", &saved, "--yes"]).ok();
    m.pipectl(&["plan", "-f", &spec, "--detailed-exitcode", "--artifacts", &art]).code(0);

    let edited = common::stack_text("crime-data.yaml").replace("retention_hours: 24", "retention_hours: 36");
    let spec2 = dir.write("stack2.yaml", &edited);
    let saved2 = dir.path("plan2.json");
    m.pipectl(&["plan", "-f", &spec2, "--out", &saved2, "--artifacts", &art]).ok();
    // Someone changes the stream between plan and apply.
    let kinesis = aws_sdk_kinesis::Client::new(&m.sdk().await);
    kinesis
        .increase_stream_retention_period()
        .stream_name("DataStream")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    let out = m.pipectl(&["apply", &saved2, "--yes"]).code(1);
    assert!(
        out.stderr.contains("the live state changed since it was made")
            && out.stderr.contains("kinesis_stream.DataStream"),
        "{}",
        out.stderr
    );
    let Some(Live::KinesisStream(s)) = live(&m, Kind::KinesisStream, "DataStream").await else { panic!() };
    assert_eq!(s.retention_hours, 48, "the stale plan changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_without_terminal_or_yes_refuses() {
    let m = Moto::aws_like();
    let dir = Scratch::new("noyes");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    let out = m.pipectl(&["apply", "-f", &spec, "--artifacts", &artifacts()]).code(1);
    assert!(out.stderr.contains("pass --yes"), "{}", out.stderr);
    assert!(live(&m, Kind::IamRole, "crime-data-lambda").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spec_fails_before_any_aws_call() {
    // An "AWS endpoint" that counts connections: a bad spec must open none.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(pipectl::testkit::serve(listener, move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        pipectl::testkit::Message::response(500, "text/plain", "no")
    }));
    let dir = Scratch::new("invalid");
    let spec = dir.write("bad.yaml", &common::stack_text("crime-data.yaml").replace("shards: 1,", "shards: 0,"));
    for cmd in ["plan", "apply", "destroy"] {
        let mut args = vec![cmd, "-f", spec.as_str()];
        if cmd != "plan" {
            args.push("--yes");
        }
        let out = common::run_bin(env!("CARGO_BIN_EXE_pipectl"), &args, &format!("http://{addr}"));
        assert_eq!(out.status, 1, "{cmd}: {}", out.stderr);
        assert!(out.stderr.contains("bad.yaml:24:41: error: shards must be at least 1"), "{cmd}: {}", out.stderr);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a bad spec made AWS calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn replacement_needs_allow_replace_and_removed_pipelines_are_deleted() {
    let m = Moto::aws_like();
    let dir = Scratch::new("replace");
    let text = common::stack_text("two-feeds-es.yaml");
    let spec = dir.write("stack.yaml", &text);
    let art = artifacts();
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).ok();

    // Another engine version forces a replacement, which loses the index: refused by default.
    let spec2 = dir.write("stack2.yaml", &text.replace("Elasticsearch_7.10", "Elasticsearch_7.9"));
    let out = m.pipectl(&["plan", "-f", &spec2, "--artifacts", &art]).ok();
    assert!(out.stdout.contains("-/+ search_domain.city-feeds  (replace, forced by engine)"), "{}", out.stdout);
    assert!(out.stdout.contains("loses: every index and document in the domain"), "{}", out.stdout);
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art]).code(1);
    assert!(out.stderr.contains("refusing to replace without --allow-replace"), "{}", out.stderr);
    let Some(Live::SearchDomain(d)) = live(&m, Kind::SearchDomain, "city-feeds").await else { panic!() };
    assert_eq!(d.engine, "Elasticsearch_7.10");
    m.pipectl(&["apply", "-f", &spec2, "--yes", "--allow-replace", "--artifacts", &art]).ok();
    let Some(Live::SearchDomain(d)) = live(&m, Kind::SearchDomain, "city-feeds").await else { panic!() };
    assert_eq!(d.engine, "Elasticsearch_7.9");
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art]).code(0);

    // Dropping a pipeline from the spec deletes what only it used, and narrows the role.
    let cut = text.replace("Elasticsearch_7.10", "Elasticsearch_7.9");
    let cut = &cut[..cut.find("\n  - name: sensors").unwrap()];
    let spec3 = dir.write("stack3.yaml", &format!("{cut}\n"));
    let out = m.pipectl(&["plan", "-f", &spec3, "--json", "--artifacts", &art]).ok();
    let mut got = plan_changes(&out.stdout);
    got.sort();
    let want: Vec<(String, String, Vec<String>)> = vec![
        ("delivery_stream.city-sensors-delivery".into(), "delete".into(), vec![]),
        ("iam_role.city-feeds-firehose".into(), "update".into(), vec!["inline_policy.delivery".into()]),
        ("iam_role.city-feeds-lambda".into(), "update".into(), vec!["inline_policy.logs".into()]),
        // Found by listing the domain's templates (its _meta names the stack).
        ("index_template.city-feeds/sensors".into(), "delete".into(), vec![]),
        ("kinesis_stream.city-sensors".into(), "delete".into(), vec![]),
        ("lambda_function.city-sensors-transform".into(), "delete".into(), vec![]),
    ];
    assert_eq!(got, want, "{}", out.stdout);
    // The stream and the delivery stream hold data: deleting them needs --allow-delete.
    let out = m.pipectl(&["apply", "-f", &spec3, "--yes", "--artifacts", &art]).code(1);
    assert!(out.stderr.contains("without --allow-delete, nothing was changed"), "{}", out.stderr);
    assert!(out.stderr.contains("kinesis_stream.city-sensors (loses records stored"), "{}", out.stderr);
    assert!(live(&m, Kind::KinesisStream, "city-sensors").await.is_some());
    m.pipectl(&["apply", "-f", &spec3, "--yes", "--allow-delete", "--artifacts", &art]).ok();
    m.pipectl(&["plan", "-f", &spec3, "--detailed-exitcode", "--artifacts", &art]).code(0);
    assert!(live(&m, Kind::KinesisStream, "city-sensors").await.is_none());
    assert!(live(&m, Kind::KinesisStream, "city-crime").await.is_some());
    m.pipectl(&["destroy", "-f", &spec3, "--yes"]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_that_refuses_us_gives_a_clear_error_and_the_fix_works() {
    let m = Moto::start();
    let dir = Scratch::new("refused");
    let art = artifacts();
    // The account is not admitted and the caller (the stand-in sees 203.0.113.10) is not in
    // the allowed range: everything but the search side is created, then the domain says 403.
    let text = common::stack_text("crime-data.yaml").replace("allow_account: true", "allow_account: false");
    let spec = dir.write("stack.yaml", &text);
    let out = m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).code(1);
    let err = &out.stderr;
    assert!(err.contains("index_template.kinesis/crime-data: FAILED"), "{err}");
    assert!(err.contains("the domain's access policy refused PUT"), "{err}");
    assert!(err.contains("AccessDenied") && err.contains("es:ESHttpPut") && err.contains("is not authorized"), "{err}");
    assert!(err.contains("search.access.allow_ips") && err.contains("allow_account: true"), "{err}");
    // Nothing is delivered into a dynamically mapped index: the delivery stream waits for it.
    assert!(err.contains("delivery_stream.firehose: skipped (index_template.kinesis/crime-data failed)"), "{err}");
    assert!(live(&m, Kind::DeliveryStream, "firehose").await.is_none());
    // plan: the template cannot be read, a conflict that says why; nothing done blind.
    let out = m.pipectl(&["plan", "-f", &spec, "--artifacts", &art]).code(1);
    assert!(
        out.stdout.contains("cannot read the index template") && out.stdout.contains("allow_ips"),
        "{}",
        out.stdout
    );
    // ... and says it could not look for templates of dropped pipelines either.
    assert!(out.stdout.contains("? search_domain.kinesis  (not seen)"), "{}", out.stdout);

    // The fix the message names: the caller's address in allow_ips.
    let fixed = text.replace("[\"1.1.1.1/32\"]", &format!("[\"1.1.1.1/32\", \"{}/32\"]", common::SEARCH_CLIENT_IP));
    let spec2 = dir.write("stack2.yaml", &fixed);
    // The new policy is not in effect at once: the first two requests after the change are
    // still judged by the old one. The put waits for it (bounded) instead of failing.
    m.fault(serde_json::json!({"search": {"stale_policy": 2}}));
    let out = m.pipectl(&["apply", "-f", &spec2, "--yes", "--artifacts", &art]).ok();
    assert!(out.stderr.contains("the domain does not admit us yet after its policy change"), "{}", out.stderr);
    assert!(out.stdout.contains("~ index_template.kinesis/crime-data"), "{}", out.stdout);
    assert!(
        out.stdout.contains("it is written after search_domain.kinesis's access policy change in this plan"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("~ search_domain.kinesis"), "{}", out.stdout);
    m.pipectl(&["plan", "-f", &spec2, "--detailed-exitcode", "--artifacts", &art]).code(0);
    assert!(m.search_state()["kinesis"]["templates"]["crime-data"].is_object());
    // The refusals were policy refusals of correctly signed requests, never bad signatures.
    let log = m.search_log();
    assert!(log.iter().any(|e| e["status"] == 403));
    assert!(log.iter().all(|e| e["signature_ok"] == true), "{log:?}");
}

/// One schema drives the transform and the index: the documents the transform makes from the
/// article's rows are all accepted by the index the template creates (strict mapping: no field
/// it does not know; `geo_point` and dates parse), posted as Firehose would post them.
#[tokio::test(flavor = "multi_thread")]
async fn transformed_documents_fit_the_index_template() {
    let m = Moto::start();
    let dir = Scratch::new("fit");
    let spec = dir.write("stack.yaml", &common::stack_text("crime-data.yaml"));
    let art = artifacts();
    m.pipectl(&["apply", "-f", &spec, "--yes", "--artifacts", &art]).ok();
    let csv = common::data_csv();
    let out = m.pipectl(&["invoke", "-f", &spec, "--pipeline", "crime", "--json", "--csv", csv.to_str().unwrap()]).ok();
    let docs: Vec<Value> =
        out.stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(docs.len() > 7000, "{} documents", docs.len());
    // Every 8th document (all kinds of rows, ~950 requests), eight at a time.
    let aws = Arc::new(m.aws().await);
    let base = Arc::new(m.search_endpoint());
    let sample: Vec<Value> = docs.into_iter().step_by(8).collect();
    let sent = sample.len();
    let next = Arc::new(AtomicUsize::new(0));
    let sample = Arc::new(sample);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (aws, base, next, sample) = (aws.clone(), base.clone(), next.clone(), sample.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(doc) = sample.get(i) else { return };
                let r = aws
                    .domain(Call::new("test:IndexDocument", "crime-data", &base, "POST", "/crime-data/_doc").body(doc))
                    .await;
                if let Err(e) = r {
                    panic!("document {doc} refused: {e}");
                }
            }
        });
    }
    while let Some(w) = workers.join_next().await {
        w.unwrap();
    }
    let state = m.search_state();
    let index = &state["kinesis"]["indices"]["crime-data"];
    assert_eq!(index["docs"], sent, "{index}");
    let props = &index["mappings"]["properties"];
    assert_eq!(props["location"]["type"], "geo_point");
    assert_eq!(props["crime_time"]["type"], "date");
    assert_eq!(props["district"]["type"], "long");
    assert_eq!(props.as_object().unwrap().len(), 11, "no field was added dynamically: {props}");
}
