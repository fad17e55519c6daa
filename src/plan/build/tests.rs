//! Plan building as a table of situations, and golden snapshots of its text and JSON renders.

use super::*;
use crate::model::{resolve, Context};
use crate::plan::render;
use crate::resources::normalize::canonical;
use crate::resources::{bucket, delivery, domain, function, role, stream};

fn cx() -> Context {
    Context {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        code_sha256: "h=".into(),
        zip_path: "dist/transform.zip".into(),
    }
}

fn desired() -> Vec<Desired> {
    let spec = crate::spec::parse("s.yaml", include_str!("../../../stacks/crime-data.yaml")).unwrap().spec;
    resolve(&spec, &cx())
}

/// The live state AWS would report right after applying `d`.
fn converged(d: &Desired) -> Live {
    match d {
        Desired::IamRole(r) => Live::IamRole(role::Live {
            name: r.name.clone(),
            arn: format!("arn:aws:iam::123456789012:role/pipectl/{}", r.name),
            path: r.path.clone(),
            trust: canonical(&r.trust),
            inline: r.inline.iter().map(|(k, v)| (k.clone(), canonical(v))).collect(),
            managed: vec![],
            created: Some("2026-11-28T00:00:00Z".into()),
            tags: r.tags.clone(),
        }),
        Desired::S3Bucket(b) => Live::S3Bucket(bucket::Live {
            name: b.name.clone(),
            unusable: None,
            encryption: Some("AES256".into()),
            public_access_block: Some([true; 4]),
            objects: 0,
            objects_truncated: false,
            tags: b.tags.clone(),
        }),
        Desired::KinesisStream(s) => Live::KinesisStream(stream::Live {
            name: s.name.clone(),
            arn: format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{}", s.name),
            status: "ACTIVE".into(),
            on_demand: false,
            shards: s.shards,
            retention_hours: s.retention_hours,
            encrypted: s.encrypt,
            created: None,
            tags: s.tags.clone(),
        }),
        Desired::SearchDomain(x) => Live::SearchDomain(domain::Live {
            name: x.name.clone(),
            arn: format!("arn:aws:es:eu-west-1:123456789012:domain/{}", x.name),
            engine: x.engine.clone(),
            instance_type: x.instance_type.clone(),
            instance_count: x.instance_count,
            volume_gb: x.volume_gb,
            volume_type: x.volume_type.clone().or(Some("gp3".into())),
            encrypt_at_rest: x.encrypt_at_rest,
            node_to_node: x.node_to_node,
            enforce_https: x.enforce_https,
            access_policy: canonical(&x.access_policy),
            processing: false,
            deleted: false,
            last_change: None,
            endpoint: Some("e".into()),
            upgrade_paths: Default::default(),
            tags: x.tags.clone(),
        }),
        Desired::LambdaFunction(f) => Live::LambdaFunction(function::Live {
            name: f.name.clone(),
            arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{}", f.name),
            role_arn: f.role_arn.clone(),
            runtime: f.runtime.clone(),
            handler: f.handler.clone(),
            architecture: f.architecture.clone(),
            memory_mb: f.memory_mb,
            timeout_s: f.timeout_s,
            env: f.env.clone(),
            code_sha256: f.code_sha256.clone(),
            state: "Active".into(),
            state_reason: None,
            last_update_status: "Successful".into(),
            tags: f.tags.clone(),
        }),
        Desired::IndexTemplate(t) => Live::IndexTemplate(crate::resources::template::tests::converged(t)),
        Desired::DeliveryStream(x) => Live::DeliveryStream(delivery::Live {
            name: x.name.clone(),
            arn: format!("arn:aws:firehose:eu-west-1:123456789012:deliverystream/{}", x.name),
            status: "ACTIVE".into(),
            failure: None,
            version_id: "1".into(),
            destination_id: "destinationId-000000000001".into(),
            source_stream_arn: Some(x.stream_arn.clone()),
            source_role_arn: Some(x.role_arn.clone()),
            family: Some(x.family),
            role_arn: Some(x.role_arn.clone()),
            domain_arn: Some(x.domain_arn.clone()),
            index: Some(x.index.clone()),
            buffer_mb: Some(x.buffer_mb),
            buffer_s: Some(x.buffer_s),
            retry_s: Some(x.retry_s),
            backup_mode: Some("FailedDocumentsOnly".into()),
            bucket_arn: Some(x.bucket_arn.clone()),
            failed_prefix: Some(x.failed_prefix.clone()),
            processing_enabled: true,
            processor: x.processor.clone(),
            created: None,
            tags: x.tags.clone(),
        }),
    }
}

fn all_live(d: &[Desired]) -> Observed {
    Observed {
        live: d.iter().map(|x| (x.id(), Some(converged(x)))).collect(),
        discovered: d.iter().map(Desired::id).collect(),
        unlisted: vec![],
    }
}

fn nothing(d: &[Desired]) -> Observed {
    Observed { live: d.iter().map(|x| (x.id(), None)).collect(), ..Observed::default() }
}

const T: Target<'static> = Target { stack: "crime-data", region: "eu-west-1", account: "123456789012" };
const APPLY: Options = Options { mode: Mode::Apply, adopt: false, purge: false };
const DESTROY: Options = Options { mode: Mode::Destroy, adopt: false, purge: false };

fn id(kind: Kind, name: &str) -> ResourceId {
    ResourceId::new(kind, name)
}

fn live_mut<'a>(o: &'a mut Observed, i: &ResourceId) -> &'a mut Live {
    o.live.get_mut(i).unwrap().as_mut().unwrap()
}

#[test]
fn nothing_to_do_when_converged() {
    let d = desired();
    let p = build(&T, &d, &all_live(&d), APPLY);
    assert!(p.is_empty(), "{}", render::text(&p));
    assert!(render::text(&p).ends_with("No changes."));
}

#[test]
fn everything_is_created_in_dependency_order() {
    let d = desired();
    let p = build(&T, &d, &nothing(&d), APPLY);
    assert_eq!(p.counts().add, 8);
    let pos = |k: Kind| p.steps.iter().position(|s| s.id.kind == k).unwrap();
    assert!(pos(Kind::IamRole) < pos(Kind::LambdaFunction));
    assert!(pos(Kind::LambdaFunction) < pos(Kind::DeliveryStream));
    // The index template after its domain, the delivery stream after the template: nothing is
    // delivered before the mapping is in place.
    assert!(pos(Kind::SearchDomain) < pos(Kind::IndexTemplate));
    assert!(pos(Kind::IndexTemplate) < pos(Kind::DeliveryStream));
    let t = p.steps.iter().find(|s| s.id.kind == Kind::IndexTemplate).unwrap();
    assert_eq!(t.depends_on, vec![id(Kind::SearchDomain, "kinesis")]);
    let del = p.steps.iter().find(|s| s.id.kind == Kind::DeliveryStream).unwrap();
    assert_eq!(del.depends_on.len(), 6, "{:?}", del.depends_on);
    assert!(del.depends_on.contains(&id(Kind::IndexTemplate, "kinesis/crime-data")));
    let f = p.steps.iter().find(|s| s.id.kind == Kind::LambdaFunction).unwrap();
    assert_eq!(f.depends_on, vec![id(Kind::IamRole, "crime-data-lambda")]);
}

#[test]
fn one_attribute_changed_gives_exactly_one_update() {
    let d = desired();
    let mut o = all_live(&d);
    let Live::KinesisStream(s) = live_mut(&mut o, &id(Kind::KinesisStream, "DataStream")) else { panic!() };
    s.shards = 3;
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].action, Action::Update);
    assert_eq!(p.steps[0].changes.len(), 1);
    assert_eq!(p.steps[0].changes[0].attr, "shards");
}

#[test]
fn unowned_same_name_is_a_conflict_unless_adopted() {
    let d = desired();
    let mut o = all_live(&d);
    let sid = id(Kind::KinesisStream, "DataStream");
    let Live::KinesisStream(s) = live_mut(&mut o, &sid) else { panic!() };
    s.tags.clear();
    o.discovered.remove(&sid);
    let p = build(&T, &d, &o, APPLY);
    assert!(p.steps.is_empty());
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].message.contains("not managed by pipectl"), "{}", p.conflicts[0].message);
    let p = build(&T, &d, &o, Options { adopt: true, ..APPLY });
    assert!(p.conflicts.is_empty());
    assert_eq!(p.steps[0].action, Action::Adopt);
    assert_eq!(p.steps[0].changes[0].attr, "tags");
    // Destroy leaves it alone.
    let p = build(&T, &d, &o, DESTROY);
    assert_eq!(p.left_alone, vec![sid.clone()]);
    assert!(p.steps.iter().all(|s| s.id != sid));
}

#[test]
fn another_stacks_resource_is_a_conflict() {
    let d = desired();
    let mut o = all_live(&d);
    let bid = id(Kind::S3Bucket, "crime-data-firehose-backup");
    let Live::S3Bucket(b) = live_mut(&mut o, &bid) else { panic!() };
    b.tags.insert(STACK_TAG.into(), "other".into());
    let p = build(&T, &d, &o, APPLY);
    assert!(p.conflicts[0].message.contains("owned by stack \"other\""));
}

#[test]
fn engine_change_replaces_the_domain_and_says_what_is_lost() {
    let d = desired();
    let mut o = all_live(&d);
    let did = id(Kind::SearchDomain, "kinesis");
    let Live::SearchDomain(x) = live_mut(&mut o, &did) else { panic!() };
    x.engine = "OpenSearch_2.11".into();
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.steps[0].action, Action::Replace);
    assert_eq!(p.steps[0].ops.len(), 2);
    assert!(p.steps[0].data_loss.as_deref().unwrap().contains("every index"));
    assert_eq!(p.data_losing_replacements().len(), 1);
}

#[test]
fn removed_pipeline_resources_are_deleted_last_first() {
    let d = desired();
    let mut o = all_live(&d);
    // An owned delivery stream, index template and stream the spec no longer names.
    let at = |k: Kind| d.iter().position(|x| x.id().kind == k).unwrap();
    let mut old_delivery = converged(&d[at(Kind::DeliveryStream)]);
    let mut old_stream = converged(&d[at(Kind::KinesisStream)]);
    let mut old_template = converged(&d[at(Kind::IndexTemplate)]);
    if let Live::DeliveryStream(x) = &mut old_delivery {
        x.name = "old".into();
    }
    if let Live::KinesisStream(x) = &mut old_stream {
        x.name = "OldStream".into();
    }
    if let Live::IndexTemplate(x) = &mut old_template {
        x.name = "old-index".into();
    }
    o.live.insert(id(Kind::DeliveryStream, "old"), Some(old_delivery));
    o.live.insert(id(Kind::KinesisStream, "OldStream"), Some(old_stream));
    o.live.insert(id(Kind::IndexTemplate, "kinesis/old-index"), Some(old_template));
    o.discovered.insert(id(Kind::DeliveryStream, "old"));
    o.discovered.insert(id(Kind::KinesisStream, "OldStream"));
    o.discovered.insert(id(Kind::IndexTemplate, "kinesis/old-index"));
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.counts().destroy, 3);
    assert_eq!(p.steps[0].id, id(Kind::DeliveryStream, "old"));
    // The domain stays: the template is deleted on its own, after the delivery stream that
    // wrote into its index, and loses no data (no --allow-delete needed for it).
    assert_eq!(p.steps[1].id, id(Kind::IndexTemplate, "kinesis/old-index"));
    assert_eq!(p.steps[1].data_loss, None);
    assert_eq!(p.steps[2].id, id(Kind::KinesisStream, "OldStream"));
    assert_eq!(
        p.steps[2].depends_on,
        vec![id(Kind::IndexTemplate, "kinesis/old-index"), id(Kind::DeliveryStream, "old")]
    );
}

#[test]
fn removed_bucket_with_failed_documents_is_kept_and_deletes_need_allow_delete() {
    let d = desired();
    let mut o = all_live(&d);
    let mut old = converged(&d[2]);
    let Live::S3Bucket(b) = &mut old else { panic!() };
    b.name = "old-failed-docs".into();
    b.objects = 42;
    o.live.insert(id(Kind::S3Bucket, "old-failed-docs"), Some(old.clone()));
    o.discovered.insert(id(Kind::S3Bucket, "old-failed-docs"));
    let p = build(&T, &d, &o, APPLY);
    assert!(p.is_empty(), "{:?}", p.steps);
    assert_eq!(p.kept.len(), 1);
    assert!(p.kept[0].message.contains("holds 42 object(s)"), "{}", p.kept[0].message);
    // Empty, it is deleted: a delete that loses data, which apply allows only with --allow-delete.
    let Live::S3Bucket(b) = &mut old else { panic!() };
    b.objects = 0;
    o.live.insert(id(Kind::S3Bucket, "old-failed-docs"), Some(old));
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.counts().destroy, 1);
    assert_eq!(p.data_losing_deletes().len(), 1);
    // A destroy is explicit: no flag needed.
    assert!(build(&T, &d, &o, DESTROY).data_losing_deletes().is_empty());
    // A discovered resource whose live tags no longer say it is ours is not deleted.
    let mut o2 = all_live(&d);
    let mut foreign = converged(&d[3]);
    if let Live::KinesisStream(x) = &mut foreign {
        x.tags.clear();
    }
    o2.live.insert(id(Kind::KinesisStream, "Retagged"), Some(foreign));
    o2.discovered.insert(id(Kind::KinesisStream, "Retagged"));
    assert!(build(&T, &d, &o2, APPLY).is_empty());
}

#[test]
fn destroy_deletes_owned_in_reverse_order_and_keeps_full_buckets_unless_purged() {
    let d = desired();
    let mut o = all_live(&d);
    let Live::S3Bucket(b) = live_mut(&mut o, &id(Kind::S3Bucket, "crime-data-firehose-backup")) else { panic!() };
    b.objects = 3;
    let p = build(&T, &d, &o, DESTROY);
    // The index template goes with its domain (no delete of its own, which would need the
    // domain to admit us); the domain's step says so.
    assert_eq!(p.counts().destroy, 7);
    assert!(p.steps.iter().all(|s| s.id.kind != Kind::IndexTemplate));
    let dom = p.steps.iter().find(|s| s.id.kind == Kind::SearchDomain).unwrap();
    assert_eq!(dom.note.as_deref(), Some("what lives in it goes with it: index_template.kinesis/crime-data"));
    // A destroy does not read inside the domain it deletes: the note comes from the spec.
    let mut o2 = o.clone();
    o2.live.remove(&id(Kind::IndexTemplate, "kinesis/crime-data"));
    o2.discovered.remove(&id(Kind::IndexTemplate, "kinesis/crime-data"));
    let p2 = build(&T, &d, &o2, DESTROY);
    let dom2 = p2.steps.iter().find(|s| s.id.kind == Kind::SearchDomain).unwrap();
    assert_eq!(dom2.note, dom.note);
    assert_eq!(p.steps[0].id.kind, Kind::DeliveryStream);
    assert_eq!(p.steps.last().unwrap().id.kind.rank(), 0);
    let bstep = p.steps.iter().find(|s| s.id.kind == Kind::S3Bucket).unwrap();
    assert_eq!(
        bstep.data_loss.as_deref().unwrap(),
        "nothing yet: the bucket holds 3 object(s) and is kept unless --purge"
    );
    assert!(matches!(bstep.ops[0], crate::resources::Op::S3Bucket(bucket::Op::Delete { purge: false, .. })));
    let p = build(&T, &d, &o, Options { purge: true, ..DESTROY });
    let bstep = p.steps.iter().find(|s| s.id.kind == Kind::S3Bucket).unwrap();
    assert!(matches!(bstep.ops[0], crate::resources::Op::S3Bucket(bucket::Op::Delete { purge: true, .. })));
    assert!(bstep.data_loss.as_deref().unwrap().contains("failed documents stored in the bucket (3 object(s))"));
    // Nothing left: the destroy plan is empty.
    assert!(build(&T, &d, &nothing(&d), DESTROY).is_empty());
}

#[test]
fn plans_round_trip_through_json() {
    let d = desired();
    let p = build(&T, &d, &nothing(&d), APPLY);
    let back: Plan = serde_json::from_str(&render::json(&p)).unwrap();
    assert_eq!(back, p);
}

/// Golden files: `PIPECTL_BLESS=1 cargo test` rewrites them after an intended change.
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("PIPECTL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with PIPECTL_BLESS=1", path.display()));
    assert_eq!(actual, want, "snapshot {name} differs; rerun with PIPECTL_BLESS=1 if intended");
}

#[test]
fn render_snapshots() {
    let d = desired();
    golden("plan-create.txt", &render::text(&build(&T, &d, &nothing(&d), APPLY)));
    let mut o = all_live(&d);
    let Live::KinesisStream(s) = live_mut(&mut o, &id(Kind::KinesisStream, "DataStream")) else { panic!() };
    s.shards = 2;
    s.retention_hours = 48;
    let Live::LambdaFunction(f) = live_mut(&mut o, &id(Kind::LambdaFunction, "transform-firehose-data")) else {
        panic!()
    };
    f.memory_mb = 256;
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    x.engine = "OpenSearch_2.11".into();
    // Someone opened the domain to a wider range in the console.
    let stmts = x.access_policy["Statement"].as_array_mut().unwrap();
    for st in stmts.iter_mut() {
        if st["Sid"] == "AllowedAddresses" {
            st["Condition"]["IpAddress"]["aws:SourceIp"] = serde_json::json!("0.0.0.0/0");
        }
    }
    let p = build(&T, &d, &o, APPLY);
    golden("plan-update.txt", &render::text(&p));
    golden("plan-update.json", &render::json(&p));
    golden("plan-destroy.txt", &render::text(&build(&T, &d, &all_live(&d), DESTROY)));
}

#[test]
fn a_wire_layout_change_says_what_happens_to_records_in_flight() {
    let d = desired();
    let f = id(Kind::LambdaFunction, "transform-firehose-data");
    // The deployed schema read district and beat the other way round.
    let mut o = all_live(&d);
    let Live::LambdaFunction(l) = live_mut(&mut o, &f) else { panic!() };
    let mut old: crate::schema::Schema = serde_json::from_str(&l.env[crate::transform::SCHEMA_ENV]).unwrap();
    old.fields.swap(2, 3);
    l.env.insert(crate::transform::SCHEMA_ENV.into(), serde_json::to_string(&old).unwrap());
    l.env.insert(crate::transform::LAYOUT_ENV.into(), old.layout().to_string());
    let p = build(&T, &d, &o, APPLY);
    let step = p.steps.iter().find(|s| s.id == f).unwrap();
    let attrs: Vec<&str> = step.changes.iter().map(|c| c.attr.as_str()).collect();
    assert_eq!(attrs, ["environment.PIPECTL_LAYOUT", "environment.PIPECTL_SCHEMA"]);
    let note = step.data_loss.as_deref().unwrap();
    assert!(note.contains(&format!("records already in the stream with layout {}", old.layout())), "{note}");
    assert!(render::text(&p).contains("are refused by the new transform (ProcessingFailed"), "{}", render::text(&p));
    // A schema change that keeps the layout (a renamed field) has no such note.
    let mut o = all_live(&d);
    let Live::LambdaFunction(l) = live_mut(&mut o, &f) else { panic!() };
    let mut renamed: crate::schema::Schema = serde_json::from_str(&l.env[crate::transform::SCHEMA_ENV]).unwrap();
    renamed.fields[1].name = "street".into();
    l.env.insert(crate::transform::SCHEMA_ENV.into(), serde_json::to_string(&renamed).unwrap());
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].data_loss, None);
}

#[test]
fn a_template_is_created_in_a_domain_that_is_replaced() {
    let d = desired();
    let tid = id(Kind::IndexTemplate, "kinesis/crime-data");
    // The old domain holds the template; the new one will not.
    let mut o = all_live(&d);
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    // A live engine newer than the spec's: a downgrade, which only a new domain does.
    x.engine = "OpenSearch_2.15".into();
    let p = build(&T, &d, &o, APPLY);
    let actions: Vec<(String, Action)> = p.steps.iter().map(|s| (s.id.to_string(), s.action)).collect();
    assert_eq!(
        actions,
        [("search_domain.kinesis".to_string(), Action::Replace), (tid.to_string(), Action::Create)],
        "{}",
        render::text(&p)
    );
    let t = p.steps.iter().find(|s| s.id == tid).unwrap();
    assert_eq!(t.depends_on, vec![id(Kind::SearchDomain, "kinesis")]);
    // An in-place domain update leaves the template alone.
    let mut o = all_live(&d);
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    x.instance_count = 2;
    assert_eq!(build(&T, &d, &o, APPLY).steps.len(), 1);
}

#[test]
fn a_template_the_domain_refuses_to_show_is_a_conflict_and_is_not_touched() {
    let d = desired();
    let tid = id(Kind::IndexTemplate, "kinesis/crime-data");
    let mut o = all_live(&d);
    let Live::IndexTemplate(t) = live_mut(&mut o, &tid) else { panic!() };
    t.unreadable = Some("cannot read the index template: refused".into());
    t.index_pattern = None;
    t.tags.clear();
    let p = build(&T, &d, &o, APPLY);
    assert!(p.steps.is_empty(), "{}", render::text(&p));
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].message.contains("refused"), "{}", p.conflicts[0].message);
    // ... unless the plan updates the domain first (its policy, to admit us): then it is put
    // after that update, with the ownership check inside the put.
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    x.access_policy = serde_json::json!({});
    let p = build(&T, &d, &o, APPLY);
    assert!(p.conflicts.is_empty());
    let t = p.steps.iter().find(|s| s.id == tid).unwrap();
    assert_eq!(t.action, Action::Update);
    assert_eq!(t.depends_on, vec![id(Kind::SearchDomain, "kinesis")]);
    // ... and waits (bounded) for the new policy to admit it.
    assert!(matches!(
        &t.ops[..],
        [crate::resources::Op::IndexTemplate(crate::resources::template::Op::Put {
            check_owner: true,
            await_access: true,
            ..
        })]
    ));
    // Another domain change (not its access policy) cannot make it readable: a conflict.
    let mut o = all_live(&d);
    let Live::IndexTemplate(t) = live_mut(&mut o, &tid) else { panic!() };
    t.unreadable = Some("cannot read the index template: refused".into());
    t.tags.clear();
    t.index_pattern = None;
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    x.instance_count = 3;
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.conflicts.len(), 1, "{}", render::text(&p));
    // A mapping edited by hand (drift) is one in-place update of that field.
    let mut o = all_live(&d);
    let Live::IndexTemplate(t) = live_mut(&mut o, &tid) else { panic!() };
    t.fields.insert("location".into(), serde_json::json!({"type": "object"}));
    let p = build(&T, &d, &o, APPLY);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].action, Action::Update);
    assert_eq!(p.steps[0].changes[0].attr, "mappings.location");
    assert_eq!(p.steps[0].require_owner.as_deref(), Some("crime-data"));
}

#[test]
fn a_replaced_domain_takes_a_dropped_template_along() {
    let d = desired();
    let mut o = all_live(&d);
    // The domain is replaced (a downgrade) and another pipeline's old template is still in it.
    let Live::SearchDomain(x) = live_mut(&mut o, &id(Kind::SearchDomain, "kinesis")) else { panic!() };
    x.engine = "OpenSearch_2.15".into();
    let mut old = converged(d.iter().find(|x| x.id().kind == Kind::IndexTemplate).unwrap());
    if let Live::IndexTemplate(t) = &mut old {
        t.name = "old-index".into();
    }
    let old_id = id(Kind::IndexTemplate, "kinesis/old-index");
    o.live.insert(old_id.clone(), Some(old));
    o.discovered.insert(old_id.clone());
    let p = build(&T, &d, &o, APPLY);
    // No delete step racing the replacement: the old template goes with the old domain, and
    // the spec's template is created in the new one.
    assert!(p.steps.iter().all(|s| s.id != old_id), "{}", render::text(&p));
    let dom = p.steps.iter().find(|s| s.id.kind == Kind::SearchDomain).unwrap();
    assert_eq!(dom.action, Action::Replace);
    assert_eq!(dom.note.as_deref(), Some("what lives in it goes with it: index_template.kinesis/old-index"));
    let t = p.steps.iter().find(|s| s.id == id(Kind::IndexTemplate, "kinesis/crime-data")).unwrap();
    assert_eq!(t.action, Action::Create);
}

#[test]
fn a_domain_that_will_not_list_its_templates_is_said_not_seen() {
    let d = desired();
    let mut o = all_live(&d);
    o.unlisted.push((id(Kind::SearchDomain, "kinesis"), "AccessDenied: refused".into()));
    let p = build(&T, &d, &o, APPLY);
    // Nothing to do, nothing blocked, but the plan says what it could not see.
    assert!(p.is_empty() && p.conflicts.is_empty());
    assert_eq!(p.warnings.len(), 1);
    let text = render::text(&p);
    assert!(text.contains("? search_domain.kinesis  (not seen)"), "{text}");
    assert!(text.contains("cannot be found, and is not deleted"), "{text}");
    assert!(text.ends_with("No changes."), "{text}");
}
