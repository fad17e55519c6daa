//! A pipeline's index template on the search domain (composable template API,
//! `_index_template`, OpenSearch and Elasticsearch >= 7.8): the schema's mapping — every field
//! with its type, `geo_point` locations, dates in the format the transform writes, the arrival
//! time — and the index settings, for the pipeline's index and any rotation of it (`index-*`).
//! Without it the domain maps documents dynamically: a location becomes two floats (no map),
//! integers and keywords are guessed. With it goes the Dashboards (Kibana) index pattern over
//! the same indices, so the data shows on a time line and a map.
//!
//! It lives inside the domain, reached with signed HTTPS (`aws::search`), so its id is
//! `index_template.<domain>/<template>`. Templates carry no AWS tags: ownership is the stack
//! tag in the template's `_meta`. A template only applies to indices created after it: an
//! index that exists keeps its mapping (see `note`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::normalize::canonical;
use super::{found, tag_change, Change, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::search::Call;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};

/// Above the default (0): a template someone adds for the same indices at a lower priority
/// loses to this one (the highest priority wins at index creation); one at exactly this
/// priority with overlapping patterns is refused by the domain (MetadataIndexTemplateService:
/// templates of equal priority may not overlap).
pub const PRIORITY: u64 = 100;
/// The `_meta` key naming the tool; the stack tag sits beside it.
const MANAGED_BY: &str = "managed_by";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The template's name (the pipeline's index name).
    pub name: String,
    pub domain: String,
    pub index_patterns: Vec<String>,
    pub priority: u64,
    /// `dynamic` of the mapping: `strict`, the transform writes exactly the schema's fields.
    pub dynamic: String,
    /// Field name → its mapping (`{"type": …, "format": …}`).
    pub fields: BTreeMap<String, Value>,
    /// Index settings, flat (`index.number_of_shards`) with string values, as the domain
    /// stores them.
    pub settings: BTreeMap<String, String>,
    /// The Dashboards (Kibana) index pattern over the index, so the data shows on a time line
    /// and a map right after the first delivery.
    pub index_pattern: IndexPattern,
    /// Stored in `_meta`: the stack's tags (ownership).
    pub tags: Tags,
}

/// A Dashboards saved object of type `index-pattern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPattern {
    /// Deterministic (`pipectl-<index>`): the one pipectl owns, found again by id.
    pub id: String,
    pub title: String,
    /// The schema's first date field.
    pub time_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub domain: String,
    pub index_patterns: Vec<String>,
    pub priority: Option<u64>,
    pub dynamic: Option<String>,
    pub fields: BTreeMap<String, Value>,
    /// Other mapping parameters someone added (`_source`, `date_detection`, …), canonical.
    pub other_mapping: BTreeMap<String, Value>,
    pub settings: BTreeMap<String, String>,
    pub composed_of: Vec<String>,
    /// The string entries of `_meta`.
    pub tags: Tags,
    /// The index pattern with the id pipectl gives it, if it exists: (title, time field).
    pub index_pattern: Option<(String, Option<String>)>,
    /// Dashboards did not answer for the index pattern (it may be down during an upgrade, AWS
    /// says): why. The plan shows the pattern as still to write instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_pattern_unknown: Option<String>,
    /// The domain refused to show the template (403): why, with how to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Create or replace the whole template (PUT is both), and the index pattern. With
    /// `check_owner` (creations, which no ownership re-read precedes) the template is read first
    /// and one that exists and is not the stack's is refused, so a PUT never overwrites someone
    /// else's template; updates were re-checked by the step (`require_owner`), adoptions take
    /// over on purpose.
    Put {
        template: Box<Desired>,
        check_owner: bool,
        /// The domain's access policy changes earlier in this apply: a refusal by the policy is
        /// tried again for a while (a bounded number of polls) before it fails the step.
        await_access: bool,
        /// What the index pattern needs, as read.
        pattern: PatternWrite,
    },
    Delete {
        domain: String,
        name: String,
    },
}

/// The index pattern's write: created (none was read), updated (one with other attributes), or
/// left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternWrite {
    Create,
    Update,
    Keep,
}

impl PatternWrite {
    /// What turns `have` into `want`.
    pub fn between(want: &IndexPattern, have: &Option<(String, Option<String>)>) -> PatternWrite {
        match have {
            None => PatternWrite::Create,
            Some((title, time)) if *title == want.title && *time == want.time_field => PatternWrite::Keep,
            Some(_) => PatternWrite::Update,
        }
    }
}

impl Live {
    /// A template the domain refuses to show: nothing is known of it but why.
    pub fn unreadable(domain: &str, name: &str, why: String) -> Live {
        Live {
            name: name.to_string(),
            domain: domain.to_string(),
            index_patterns: vec![],
            priority: None,
            dynamic: None,
            fields: BTreeMap::new(),
            other_mapping: BTreeMap::new(),
            settings: BTreeMap::new(),
            composed_of: vec![],
            tags: Tags::new(),
            index_pattern: None,
            index_pattern_unknown: None,
            unreadable: Some(why),
        }
    }
}

/// `<domain>/<template>`: the id of a template names the domain it lives in.
pub fn id_name(domain: &str, template: &str) -> String {
    format!("{domain}/{template}")
}

pub fn split(id_name: &str) -> (&str, &str) {
    id_name.split_once('/').unwrap_or(("", id_name))
}

impl Desired {
    /// The template of one pipeline: `schema_mapping` is `Schema::index_mapping()["mappings"]`,
    /// `time_field` the schema's first date field.
    pub fn new(
        domain: &str,
        index: &str,
        schema_mapping: &Value,
        time_field: Option<&str>,
        nodes: u32,
        tags: Tags,
    ) -> Desired {
        let fields = schema_mapping["properties"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Desired {
            name: index.to_string(),
            domain: domain.to_string(),
            index_patterns: vec![index.to_string(), format!("{index}-*")],
            priority: PRIORITY,
            dynamic: schema_mapping["dynamic"].as_str().unwrap_or("strict").to_string(),
            fields,
            settings: BTreeMap::from([
                // One primary shard: a pipeline's index of this kind holds megabytes to a few
                // GB, and AWS sizes shards at 10-50 GiB ("Sizing Amazon OpenSearch Service
                // domains"); more shards only cost heap.
                ("index.number_of_shards".into(), "1".into()),
                // A replica needs a second node: on one node it never gets assigned and the
                // cluster stays yellow.
                ("index.number_of_replicas".into(), if nodes > 1 { "1" } else { "0" }.into()),
            ]),
            index_pattern: IndexPattern {
                id: pattern_id(index),
                // The template's own patterns: `<index>*` would also cover another pipeline's
                // `<index>s`.
                title: format!("{index},{index}-*"),
                time_field: time_field.map(str::to_string),
            },
            tags,
        }
    }

    pub fn id_name(&self) -> String {
        id_name(&self.domain, &self.name)
    }

    /// The body of `PUT _index_template/<name>`.
    pub fn body(&self) -> Value {
        let mut meta = Map::new();
        meta.insert(MANAGED_BY.into(), json!("pipectl"));
        for (k, v) in &self.tags {
            meta.insert(k.clone(), json!(v));
        }
        let properties: Map<String, Value> = self.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        json!({
            "index_patterns": self.index_patterns,
            "priority": self.priority,
            "template": {
                "settings": self.settings,
                "mappings": { "dynamic": self.dynamic, "properties": properties },
            },
            "_meta": meta,
        })
    }
}

/// A new template: created only where the name is free (see `execute`), with its index pattern.
pub fn create_op(d: &Desired) -> Op {
    Op::Put { template: Box::new(d.clone()), check_owner: true, await_access: false, pattern: PatternWrite::Create }
}

/// PUT replaces the whole template. The step re-reads ownership before an update, and an
/// adoption takes it over: no check in the put. The index pattern is written only if it differs.
pub fn update_op(want: &Desired, have: &Live) -> Op {
    Op::Put {
        template: Box::new(want.clone()),
        check_owner: false,
        await_access: false,
        pattern: match &have.index_pattern_unknown {
            // Written as if absent: a create that finds it updates it.
            Some(_) => PatternWrite::Create,
            None => PatternWrite::between(&want.index_pattern, &have.index_pattern),
        },
    }
}

/// What a new template holds, one line per pattern list, field and setting (for the plan).
pub fn summary(d: &Desired) -> Vec<Change> {
    let mut out = vec![
        Change::new("index_patterns", Value::Null, &d.index_patterns),
        Change::new("priority", Value::Null, d.priority),
        Change::new("mappings.dynamic", Value::Null, &d.dynamic),
    ];
    out.extend(d.fields.iter().map(|(f, m)| Change::new(&format!("mappings.{f}"), Value::Null, m)));
    out.extend(d.settings.iter().map(|(k, v)| Change::new(&format!("settings.{k}"), Value::Null, v)));
    out.push(Change::new("dashboards.index_pattern", Value::Null, pattern_view(&d.index_pattern)));
    out
}

fn pattern_view(p: &IndexPattern) -> Value {
    json!({ "title": p.title, "time_field": p.time_field })
}

/// Flattens settings as the domain renders them (`{"index":{"number_of_shards":"1"}}`) or as
/// they were sent (`{"index.number_of_shards": 1}`) into `index.`-prefixed keys with string
/// values: OpenSearch stores every setting as a string under its full key.
pub fn flat_settings(v: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            Value::Null => {}
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut flat = BTreeMap::new();
    walk("", v, &mut flat);
    flat.into_iter().map(|(k, v)| (if k.starts_with("index.") { k } else { format!("index.{k}") }, v)).collect()
}

/// A mapping value in comparable form: keys in order, and booleans and numbers as strings
/// (the domain accepts `"index": false` and `"false"` alike and may render either).
pub fn normal_mapping(v: &Value) -> Value {
    match canonical(v) {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, normal_mapping(&v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(normal_mapping).collect()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

/// The live template from `GET _index_template/<name>`'s answer; `None` when it lists none.
pub fn parse(domain: &str, name: &str, body: &Value) -> Option<Live> {
    let entry = body["index_templates"].as_array()?.iter().find(|t| t["name"] == name)?;
    let t = &entry["index_template"];
    let mappings = &t["template"]["mappings"];
    let mut other_mapping = BTreeMap::new();
    let mut fields = BTreeMap::new();
    let mut dynamic = None;
    if let Some(m) = mappings.as_object() {
        for (k, v) in m {
            match k.as_str() {
                "properties" => {
                    if let Some(p) = v.as_object() {
                        fields = p.iter().map(|(f, m)| (f.clone(), normal_mapping(m))).collect();
                    }
                }
                "dynamic" => dynamic = normal_mapping(v).as_str().map(str::to_string),
                _ => {
                    other_mapping.insert(k.clone(), normal_mapping(v));
                }
            }
        }
    }
    let patterns = match &t["index_patterns"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    let tags = t["_meta"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    Some(Live {
        name: name.to_string(),
        domain: domain.to_string(),
        index_patterns: patterns,
        priority: t["priority"].as_u64(),
        dynamic,
        fields,
        other_mapping,
        settings: flat_settings(&t["template"]["settings"]),
        composed_of: t["composed_of"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        tags,
        index_pattern: None,
        index_pattern_unknown: None,
        unreadable: None,
    })
}

/// Field by field: patterns, priority, each field's mapping, each setting, ownership tags.
pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if sorted(&want.index_patterns) != sorted(&have.index_patterns) {
        out.push(Change::new("index_patterns", &have.index_patterns, &want.index_patterns));
    }
    if have.priority != Some(want.priority) {
        out.push(Change::new("priority", have.priority, want.priority));
    }
    if !have.composed_of.is_empty() {
        out.push(Change::new("composed_of", &have.composed_of, Vec::<String>::new()));
    }
    if have.dynamic.as_deref() != Some(want.dynamic.as_str()) {
        out.push(Change::new("mappings.dynamic", &have.dynamic, &want.dynamic));
    }
    for (k, v) in &have.other_mapping {
        out.push(Change::new(&format!("mappings.{k}"), v, Value::Null));
    }
    let names: std::collections::BTreeSet<&String> = want.fields.keys().chain(have.fields.keys()).collect();
    for f in names {
        let w = want.fields.get(f).map(normal_mapping);
        let h = have.fields.get(f);
        if w.as_ref() != h {
            out.push(Change::new(&format!("mappings.{f}"), h, &w));
        }
    }
    let keys: std::collections::BTreeSet<&String> = want.settings.keys().chain(have.settings.keys()).collect();
    for k in keys {
        let (w, h) = (want.settings.get(k), have.settings.get(k));
        if w != h {
            out.push(Change::new(&format!("settings.{k}"), h, w));
        }
    }
    if let Some(why) = &have.index_pattern_unknown {
        out.push(Change::new("dashboards.index_pattern", format!("unknown: {why}"), pattern_view(&want.index_pattern)));
    } else if PatternWrite::between(&want.index_pattern, &have.index_pattern) != PatternWrite::Keep {
        let before = have.index_pattern.as_ref().map(|(t, f)| json!({ "title": t, "time_field": f }));
        out.push(Change::new("dashboards.index_pattern", before, pattern_view(&want.index_pattern)));
    }
    let mut want_tags = want.tags.clone();
    want_tags.insert(MANAGED_BY.into(), "pipectl".into());
    tag_change(&mut out, &want_tags, &have.tags);
    out
}

/// Where a domain answers: its base URL, and the path of its Dashboards (OpenSearch) or Kibana
/// (Elasticsearch) app behind the same endpoint (developer guide, "Creating visualizations with
/// OpenSearch Dashboards": `/_dashboards`; Elasticsearch domains: `/_plugin/kibana`).
struct Domain {
    base: String,
    app: &'static str,
    xsrf: &'static str,
}

/// The domain, or `None` when there is no domain to talk to: it does not exist, is being
/// deleted, or is still being created (no endpoint yet). A template can exist only in a
/// domain that answers.
async fn reach(aws: &Aws, domain: &str) -> Result<Option<Domain>, AwsError> {
    let Some(d) = super::domain::describe(aws, domain).await? else { return Ok(None) };
    if d.deleted().unwrap_or(false) {
        return Ok(None);
    }
    let endpoint = d.endpoint().map(str::to_string).or_else(|| d.endpoints().and_then(|m| m.values().next().cloned()));
    let Some(endpoint) = endpoint else { return Ok(None) };
    // Saved-objects writes need the app's XSRF header: `osd-xsrf` for OpenSearch Dashboards,
    // `kbn-xsrf` for Kibana (their saved objects API references).
    let (app, xsrf) = if d.engine_version().unwrap_or_default().starts_with("Elasticsearch_") {
        ("/_plugin/kibana", "kbn-xsrf")
    } else {
        ("/_dashboards", "osd-xsrf")
    };
    Ok(Some(Domain { base: aws.search.base_url(&endpoint), app, xsrf }))
}

fn pattern_path(d: &Domain, id: &str) -> String {
    let enc = percent_encoding::utf8_percent_encode(id, crate::aws::search::SEGMENT);
    format!("{}/api/saved_objects/index-pattern/{enc}", d.app)
}

/// `pipectl-<index>`: the index pattern of a template (see `Desired::new`).
fn pattern_id(template: &str) -> String {
    format!("pipectl-{template}")
}

fn path(name: &str) -> String {
    let enc = percent_encoding::utf8_percent_encode(name, crate::aws::search::SEGMENT);
    format!("/_index_template/{enc}")
}

pub async fn read(aws: &Aws, id_name: &str) -> Result<Option<Live>, AwsError> {
    let Some((dom, mut live)) = read_template(aws, id_name).await? else { return Ok(None) };
    if live.unreadable.is_some() {
        return Ok(Some(live));
    }
    let p = pattern_path(&dom, &pattern_id(&live.name));
    match found(aws.domain(Call::new("search:GetIndexPattern", id_name, &dom.base, "GET", &p)).await) {
        Ok(pattern) => {
            live.index_pattern = pattern.map(|r| {
                let a = &r.body["attributes"];
                (a["title"].as_str().unwrap_or_default().to_string(), a["timeFieldName"].as_str().map(str::to_string))
            })
        }
        // Dashboards down, refusing or answering oddly: the template (what the pipeline needs)
        // is still planned, the pattern shown as unknown.
        Err(e) => live.index_pattern_unknown = Some(e.to_string()),
    }
    Ok(Some(live))
}

/// The template alone (no index pattern), with the domain it was read from.
async fn read_template(aws: &Aws, id_name: &str) -> Result<Option<(Domain, Live)>, AwsError> {
    let (domain, name) = split(id_name);
    let Some(dom) = reach(aws, domain).await? else { return Ok(None) };
    let r = aws.domain(Call::new("search:GetIndexTemplate", id_name, &dom.base, "GET", &path(name))).await;
    let live = match found(r) {
        Ok(reply) => match reply.and_then(|r| parse(domain, name, &r.body)) {
            Some(l) => l,
            None => return Ok(None),
        },
        // The template cannot be read: the plan shows why (a conflict), and nothing is done
        // to it blind.
        Err(e) if e.is(ErrorClass::Denied) => {
            return Ok(Some((dom, Live::unreadable(domain, name, format!("cannot read the index template: {e}")))))
        }
        Err(e) => return Err(e),
    };
    Ok(Some((dom, live)))
}

pub async fn read_tags(aws: &Aws, id_name: &str) -> Result<Tags, AwsError> {
    match read_template(aws, id_name).await?.map(|(_, l)| l) {
        Some(l) if l.unreadable.is_none() => Ok(l.tags),
        Some(l) => {
            Err(AwsError::local("search:GetIndexTemplate", id_name, "AccessDenied", l.unreadable.unwrap_or_default()))
        }
        None => {
            Err(AwsError::local("search:GetIndexTemplate", id_name, "NotFound", "").with_class(ErrorClass::NotFound))
        }
    }
}

/// The templates in the stack's domains whose `_meta` says the stack owns them (whether or not
/// the spec still names them), and the domains that refused to list theirs (with why): their
/// dropped templates cannot be found, which the plan says. The templates the spec names are
/// read (and a refusal shown) anyway.
pub async fn discover(
    aws: &Aws,
    stack: &str,
    domains: &[String],
) -> Result<(Vec<String>, Vec<(String, String)>), AwsError> {
    let mut out = Vec::new();
    let mut unlisted = Vec::new();
    for domain in domains {
        let Some(dom) = reach(aws, domain).await? else { continue };
        let reply =
            match aws.domain(Call::new("search:GetIndexTemplates", domain, &dom.base, "GET", "/_index_template")).await
            {
                Ok(r) => r,
                Err(e) if e.is(ErrorClass::Denied) || e.is(ErrorClass::NotFound) => {
                    unlisted.push((domain.clone(), e.to_string()));
                    continue;
                }
                Err(e) => return Err(e),
            };
        for t in reply.body["index_templates"].as_array().into_iter().flatten() {
            let owner = t["index_template"]["_meta"][crate::spec::STACK_TAG].as_str();
            if let (Some(name), Some(owner)) = (t["name"].as_str(), owner) {
                if owner == stack {
                    out.push(id_name(domain, name));
                }
            }
        }
    }
    Ok((out, unlisted))
}

/// What the plan says about indices that already exist when a template is put: a template
/// applies only to indices created after it (OpenSearch "Index templates": "the settings and
/// mappings in the template are applied to new indices"), so an existing index keeps the
/// mapping it has, and, without index rotation, Firehose keeps writing to it.
pub async fn note(aws: &Aws, d: &Desired) -> Result<Option<String>, AwsError> {
    let Some(dom) = reach(aws, &d.domain).await? else { return Ok(None) };
    let q = mapping_path(&d.index_patterns);
    let reply = match aws.domain(Call::new("search:GetMapping", &d.id_name(), &dom.base, "GET", &q)).await {
        Ok(r) => r,
        Err(e) if e.is(ErrorClass::Denied) || e.is(ErrorClass::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(existing_indices_note(d, &reply.body))
}

/// `GET <patterns>/_mapping` for the existing indices a template covers: each pattern
/// percent-encoded but for its `*` wildcards, joined with literal commas (the multi-target
/// syntax), missing ones ignored.
pub fn mapping_path(patterns: &[String]) -> String {
    let expr: Vec<String> = patterns
        .iter()
        .map(|p| percent_encoding::utf8_percent_encode(p, crate::aws::search::SEGMENT).to_string().replace("%2A", "*"))
        .collect();
    format!("/{}/_mapping?ignore_unavailable=true&allow_no_indices=true", expr.join(","))
}

/// The note for the indices in a `GET <patterns>/_mapping` answer whose mapping differs from
/// the template's.
pub fn existing_indices_note(d: &Desired, mappings: &Value) -> Option<String> {
    let mut parts = Vec::new();
    for (index, m) in mappings.as_object()?.iter() {
        let props = m["mappings"]["properties"].as_object().cloned().unwrap_or_default();
        let differing: Vec<String> = d
            .fields
            .iter()
            .filter(|(f, want)| props.get(*f).map(normal_mapping) != Some(normal_mapping(want)))
            .map(|(f, want)| {
                let have = props.get(f).map(|p| p.get("type").and_then(Value::as_str).unwrap_or("object").to_string());
                format!(
                    "{f}: {} (template: {})",
                    have.as_deref().unwrap_or("not mapped"),
                    want["type"].as_str().unwrap_or("?")
                )
            })
            .collect();
        if !differing.is_empty() {
            parts.push(format!("{index} [{}]", differing.join(", ")));
        }
    }
    if parts.is_empty() {
        return None;
    }
    // The delivery stream is configured with IndexRotationPeriod NoRotation (see delivery.rs):
    // no new index is ever created by itself.
    let after = format!(
        "Firehose writes to {} without rotation, so the template takes effect only once that index is \
         reindexed into a new one or deleted (its documents are lost then)",
        d.name
    );
    Some(format!(
        "existing indices keep the mapping they were created with (a template applies to new indices only): {}; {after}",
        parts.join("; ")
    ))
}

/// "index template [x] already exists": the answer to `create=true` for a taken name.
fn already_exists(e: &AwsError) -> bool {
    e.status == Some(400) && e.message.contains("already exists")
}

/// Runs `f`; with `await_access` (the domain's access policy changed earlier in this apply and
/// may not admit us yet), a refusal by the policy is tried again, a bounded number of times.
async fn with_access<T, F, Fut>(ctx: &Ctx<'_>, await_access: bool, mut f: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    let timing = ctx.aws.timing;
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if await_access && e.is(ErrorClass::Denied) && attempt < timing.retry_attempts => {
                ctx.note(format!("the domain does not admit us yet after its policy change; trying again ({attempt})"));
                attempt += 1;
                tokio::time::sleep(timing.poll).await;
            }
            other => return other,
        }
    }
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    match op {
        Op::Put { template: d, check_owner, await_access, pattern } => {
            let id = d.id_name();
            let Some(dom) = reach(ctx.aws, &d.domain).await? else {
                return Err(AwsError::local(
                    "search:PutIndexTemplate",
                    &id,
                    "NoEndpoint",
                    format!("domain {} has no endpoint (it does not exist or is not ready)", d.domain),
                ));
            };
            let body = d.body();
            let template_path = path(&d.name);
            let put = Call::new("search:PutIndexTemplate", &id, &dom.base, "PUT", &template_path).body(&body);
            if *check_owner {
                // Created only if the name is free (`create=true`: the domain decides, no race);
                // a template that exists (someone else's, or ours after a lost reply) is read
                // and replaced only if it is the stack's.
                let p = format!("{}?create=true", path(&d.name));
                let create = Call::new("search:CreateIndexTemplate", &id, &dom.base, "PUT", &p).body(&body);
                match with_access(ctx, *await_access, || ctx.domain(create)).await {
                    Ok(_) => {}
                    Err(e) if already_exists(&e) => {
                        let r = ctx
                            .domain(Call::new("search:GetIndexTemplate", &id, &dom.base, "GET", &path(&d.name)))
                            .await;
                        let stack = d.tags.get(crate::spec::STACK_TAG).map(String::as_str).unwrap_or_default();
                        let theirs = found(r)?.and_then(|r| parse(&d.domain, &d.name, &r.body));
                        if let Some(live) = theirs.filter(|l| !super::owned_by(&l.tags, stack)) {
                            return Err(AwsError::local(
                                "search:PutIndexTemplate",
                                &id,
                                "NotOwned",
                                format!(
                                    "the domain has an index template {} that is not this stack's ({}); not overwritten (apply --adopt takes it over)",
                                    d.name,
                                    live.tags.get(crate::spec::STACK_TAG).map_or_else(
                                        || format!("no {}={stack} in its _meta", crate::spec::STACK_TAG),
                                        |other| format!("its _meta names stack {other:?}")
                                    )
                                ),
                            ));
                        }
                        ctx.domain(put).await?;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                with_access(ctx, *await_access, || ctx.domain(put)).await?;
            }
            // The index pattern is a convenience: Dashboards may be unavailable (during an upgrade,
            // AWS says) while the template is what the delivery stream waits for. A failure is
            // said, and the next plan shows the pattern still to write.
            if let Err(e) = write_pattern(ctx, &dom, d, *pattern).await {
                ctx.note(format!("the Dashboards index pattern was not written ({e}); the next apply writes it"));
            }
            Ok(())
        }
        Op::Delete { domain, name } => {
            let id = id_name(domain, name);
            // A domain that is gone took its templates with it.
            let Some(dom) = reach(ctx.aws, domain).await? else { return Ok(()) };
            let headers = [(dom.xsrf, "true")];
            let p = pattern_path(&dom, &pattern_id(name));
            let call = Call::new("search:DeleteIndexPattern", &id, &dom.base, "DELETE", &p).headers(&headers);
            if let Err(e) = gone_ok(ctx.domain(call).await) {
                ctx.note(format!("the Dashboards index pattern was not deleted ({e})"));
            }
            gone_ok(ctx.domain(Call::new("search:DeleteIndexTemplate", &id, &dom.base, "DELETE", &path(name))).await)
        }
    }
}

/// Creates the index pattern (POST) or updates it (PUT, the update API), as the plan read it;
/// a create that finds it (ours after a lost reply, or made since) updates it, an update that
/// misses it creates it. Not `POST …?overwrite=true`: AWS says a domain ignores the URL
/// parameters of SigV4-signed POST requests ("Signing HTTP requests to Amazon OpenSearch
/// Service").
async fn write_pattern(ctx: &Ctx<'_>, dom: &Domain, d: &Desired, how: PatternWrite) -> Result<(), AwsError> {
    if how == PatternWrite::Keep {
        return Ok(());
    }
    let id = d.id_name();
    let mut attributes = json!({ "title": d.index_pattern.title });
    if let Some(f) = &d.index_pattern.time_field {
        attributes["timeFieldName"] = json!(f);
    }
    let pattern = json!({ "attributes": attributes });
    let p = pattern_path(dom, &d.index_pattern.id);
    let headers = [(dom.xsrf, "true")];
    let create = Call::new("search:CreateIndexPattern", &id, &dom.base, "POST", &p).headers(&headers).body(&pattern);
    match ctx.domain(create).await {
        Err(e) if e.status == Some(409) => {
            let update =
                Call::new("search:UpdateIndexPattern", &id, &dom.base, "PUT", &p).headers(&headers).body(&pattern);
            ctx.domain(update).await.map(drop)
        }
        other => other.map(drop),
    }
}

#[cfg(test)]
pub(crate) mod tests;
