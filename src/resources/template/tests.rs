//! The template's body, its normalisation of what the domain renders, and its diff table.

use super::*;
use crate::schema::Schema;

/// `GET _index_template/<name>` as the domain answers after `PUT` of `d.body()`: settings
/// nested under `index` with string values (OpenSearch stores settings flat, as strings).
pub(crate) fn as_domain_returns(d: &Desired) -> Value {
    let mut body = d.body();
    let settings: Map<String, Value> =
        d.settings.iter().map(|(k, v)| (k.strip_prefix("index.").unwrap_or(k).to_string(), json!(v))).collect();
    body["template"]["settings"] = json!({ "index": settings });
    body["composed_of"] = json!([]);
    json!({ "index_templates": [ { "name": d.name, "index_template": body } ] })
}

fn crime() -> Desired {
    let schema: Schema = crate::schema::tests::crime_schema();
    let tags = Tags::from([("pipectl:stack".to_string(), "crime-data".to_string())]);
    Desired::new("kinesis", "crime-data", &schema.index_mapping()["mappings"], Some("crime_time"), 1, tags)
}

/// The live template and index pattern right after `Op::Put(d)`.
pub(crate) fn converged(d: &Desired) -> Live {
    let mut l = parse(&d.domain, &d.name, &as_domain_returns(d)).unwrap();
    l.index_pattern = Some((d.index_pattern.title.clone(), d.index_pattern.time_field.clone()));
    l
}

fn attrs(c: &[Change]) -> Vec<&str> {
    c.iter().map(|c| c.attr.as_str()).collect()
}

#[test]
fn the_body_carries_the_schemas_types() {
    let d = crime();
    let b = d.body();
    assert_eq!(b["index_patterns"], json!(["crime-data", "crime-data-*"]));
    let p = &b["template"]["mappings"]["properties"];
    assert_eq!(p["location"]["type"], "geo_point");
    assert_eq!(p["district"]["type"], "long");
    assert_eq!(p["address"]["type"], "keyword");
    assert_eq!(p["crime_time"], json!({"type": "date", "format": "strict_date_optional_time"}));
    assert_eq!(p["load_time"]["type"], "date");
    assert_eq!(b["template"]["mappings"]["dynamic"], "strict");
    assert_eq!(b["template"]["settings"]["index.number_of_replicas"], "0");
    assert_eq!(b["_meta"]["pipectl:stack"], "crime-data");
    assert_eq!(b["_meta"]["managed_by"], "pipectl");
    // Two nodes: one replica.
    let two =
        Desired::new("d", "i", &crate::schema::tests::crime_schema().index_mapping()["mappings"], None, 2, Tags::new());
    assert_eq!(two.settings["index.number_of_replicas"], "1");
}

#[test]
fn diff_table() {
    let d = crime();
    // Nothing to do: what the domain renders after our PUT.
    assert!(diff(&d, &converged(&d)).is_empty(), "{:?}", diff(&d, &converged(&d)));

    // A field's type changed by hand (drift) and a field added by hand.
    let mut l = converged(&d);
    l.fields.insert("district".into(), json!({"type": "keyword"}));
    l.fields.insert("extra".into(), json!({"type": "text"}));
    let c = diff(&d, &l);
    assert_eq!(attrs(&c), ["mappings.district", "mappings.extra"]);
    assert_eq!(c[0].before, json!({"type": "keyword"}));
    assert_eq!(c[0].after, json!({"type": "long"}));
    assert_eq!(c[1].after, Value::Null);

    // Settings, priority, patterns, dynamic, composed_of, other mapping parameters.
    let mut l = converged(&d);
    l.settings.insert("index.number_of_shards".into(), "5".into());
    l.settings.insert("index.refresh_interval".into(), "30s".into());
    l.priority = Some(0);
    l.index_patterns = vec!["crime-data*".into()];
    l.dynamic = Some("true".into());
    l.composed_of = vec!["x".into()];
    l.other_mapping.insert("date_detection".into(), json!("false"));
    let c = diff(&d, &l);
    assert_eq!(
        attrs(&c),
        [
            "index_patterns",
            "priority",
            "composed_of",
            "mappings.dynamic",
            "mappings.date_detection",
            "settings.index.number_of_shards",
            "settings.index.refresh_interval"
        ]
    );

    // The index pattern: missing, or with another time field.
    let mut l = converged(&d);
    l.index_pattern = None;
    let c = diff(&d, &l);
    assert_eq!(attrs(&c), ["dashboards.index_pattern"]);
    assert_eq!(c[0].after, json!({"title": "crime-data,crime-data-*", "time_field": "crime_time"}));
    let mut l = converged(&d);
    l.index_pattern = Some(("crime-data,crime-data-*".into(), Some("load_time".into())));
    assert_eq!(attrs(&diff(&d, &l)), ["dashboards.index_pattern"]);

    // Dashboards did not answer: the pattern is shown as still to write, and written.
    let mut l = converged(&d);
    l.index_pattern_unknown = Some("HTTP503".into());
    let c = diff(&d, &l);
    assert_eq!(attrs(&c), ["dashboards.index_pattern"]);
    assert_eq!(c[0].before, json!("unknown: HTTP503"));
    assert!(matches!(update_op(&d, &l), Op::Put { pattern: PatternWrite::Create, .. }));

    // Ownership lives in _meta.
    let mut l = converged(&d);
    l.tags.remove("pipectl:stack");
    assert_eq!(attrs(&diff(&d, &l)), ["tags"]);
}

#[test]
fn what_the_domain_renders_is_normalised() {
    let d = crime();
    // Settings sent flat with numbers, rendered nested with strings; pattern order; booleans
    // and numbers in mapping parameters as strings; key order.
    let mut body = as_domain_returns(&d);
    let t = &mut body["index_templates"][0]["index_template"];
    t["template"]["settings"] = json!({"index": {"number_of_replicas": 0, "number_of_shards": "1"}});
    t["index_patterns"] = json!(["crime-data-*", "crime-data"]);
    t["template"]["mappings"]["properties"]["crime_time"] =
        json!({"format": "strict_date_optional_time", "type": "date"});
    let mut l = parse(&d.domain, &d.name, &body).unwrap();
    l.index_pattern = converged(&d).index_pattern;
    assert!(diff(&d, &l).is_empty(), "{:?}", diff(&d, &l));
    assert_eq!(
        flat_settings(&json!({"index.number_of_shards": 1})),
        BTreeMap::from([("index.number_of_shards".to_string(), "1".to_string())])
    );
    assert_eq!(
        flat_settings(&json!({"number_of_shards": "1"})),
        BTreeMap::from([("index.number_of_shards".to_string(), "1".to_string())])
    );
    assert_eq!(
        normal_mapping(&json!({"index": false, "ignore_above": 256})),
        json!({"ignore_above": "256", "index": "false"})
    );
    // A template that is not in the answer is absent.
    assert!(parse(&d.domain, "other", &body).is_none());
    assert!(parse(&d.domain, &d.name, &json!({"index_templates": []})).is_none());
}

#[test]
fn existing_indices_are_named_with_the_fields_they_keep() {
    let d = crime();
    // The article's index, mapped dynamically before the template existed.
    let mut props = d.body()["template"]["mappings"]["properties"].clone();
    props["location"] = json!({"properties": {"lat": {"type": "float"}, "lon": {"type": "float"}}});
    props["district"] = json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}});
    let answer = json!({"crime-data": {"mappings": {"properties": props}}});
    let note = existing_indices_note(&d, &answer).unwrap();
    assert!(
        note.contains("crime-data [district: text (template: long), location: object (template: geo_point)]"),
        "{note}"
    );
    assert!(note.contains("without rotation"), "{note}");
    // An index created from the template: nothing to say.
    let same = json!({"crime-data": {"mappings": d.body()["template"]["mappings"]}});
    assert_eq!(existing_indices_note(&d, &same), None);
    assert_eq!(existing_indices_note(&d, &json!({})), None);
}

#[test]
fn ids_name_the_domain() {
    let d = crime();
    assert_eq!(d.id_name(), "kinesis/crime-data");
    assert_eq!(split("kinesis/crime-data"), ("kinesis", "crime-data"));
    assert_eq!(path("crime data"), "/_index_template/crime%20data");
    assert_eq!(path("crime-data_2.x"), "/_index_template/crime-data_2.x");
    // The multi-target path: commas and wildcards literal (as opensearch-py sends them; SigV4
    // encodes them in the canonical request on both sides), anything else escaped.
    assert_eq!(
        mapping_path(&d.index_patterns),
        "/crime-data,crime-data-*/_mapping?ignore_unavailable=true&allow_no_indices=true"
    );
    assert_eq!(
        mapping_path(&["a b".to_string(), "c+d-*".to_string()]),
        "/a%20b,c%2Bd-*/_mapping?ignore_unavailable=true&allow_no_indices=true"
    );
}

#[test]
fn the_index_pattern_is_written_only_when_it_differs() {
    let d = crime();
    let want = &d.index_pattern;
    assert_eq!(PatternWrite::between(want, &None), PatternWrite::Create);
    assert_eq!(PatternWrite::between(want, &Some((want.title.clone(), want.time_field.clone()))), PatternWrite::Keep);
    assert_eq!(PatternWrite::between(want, &Some((want.title.clone(), None))), PatternWrite::Update);
    // A mapping edit leaves a current index pattern alone.
    let mut l = converged(&d);
    l.fields.insert("beat".into(), json!({"type": "text"}));
    assert!(matches!(update_op(&d, &l), Op::Put { pattern: PatternWrite::Keep, check_owner: false, .. }));
    assert!(matches!(create_op(&d), Op::Put { pattern: PatternWrite::Create, check_owner: true, .. }));
}
