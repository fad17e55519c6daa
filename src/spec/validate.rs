//! Validation of a parsed spec against AWS naming rules and limits, and the schema's own rules.
//! Knowledge only: no AWS call. Each limit names its source so it can be re-checked.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::diag::{Diagnostic, PosIndex, Severity};
use super::Spec;
use crate::schema::{valid_date_format, Computed, FieldType};
use crate::transform::SCHEMA_ENV;

/// Lambda: the total size of all environment variables is at most 4 KB.
const LAMBDA_ENV_LIMIT: usize = 4096;

struct Checker<'a> {
    index: &'a PosIndex,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }
    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }
    fn push(&mut self, severity: Severity, path: &str, message: String) {
        let pos = self.index.value(path);
        self.out.push(Diagnostic { severity, pos, message });
    }
    fn range(&mut self, path: &str, what: &str, v: u32, lo: u32, hi: u32, source: &str) {
        if v < lo || v > hi {
            self.error(path, format!("{what} must be between {lo} and {hi} ({source}), got {v}"));
        }
    }
    fn name(&mut self, path: &str, what: &str, v: &str, max: usize, ok: fn(char) -> bool, rule: &str) {
        if v.is_empty() || v.chars().count() > max || !v.chars().all(ok) {
            self.error(path, format!("invalid {what} {v:?}: must be 1-{max} characters of {rule}"));
        }
    }
}

pub(super) fn validate(spec: &Spec, index: &PosIndex) -> Vec<Diagnostic> {
    let mut c = Checker { index, out: Vec::new() };

    // Stack name: becomes a tag value and the prefix of the IAM role names (64-char limit).
    if spec.stack.is_empty()
        || spec.stack.len() > 32
        || !spec.stack.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        || spec.stack.starts_with('-')
    {
        c.error(
            "stack",
            format!("invalid stack name {:?}: 1-32 characters of a-z, 0-9 and -, not starting with -", spec.stack),
        );
    }
    if let Some(r) = &spec.region {
        if !valid_region(r) {
            c.error("region", format!("invalid region {r:?}: expected a region code such as eu-west-1"));
        }
    }
    // Tags: AWS allows 50 per resource; pipectl adds one of its own.
    if spec.tags.len() > 49 {
        c.error("tags", "at most 49 tags (AWS allows 50 per resource; pipectl adds pipectl:stack)");
    }
    for (k, v) in &spec.tags {
        let p = format!("tags.{k}");
        if k.is_empty() || k.chars().count() > 128 {
            c.error(&p, format!("tag key {k:?} must be 1-128 characters"));
        }
        if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with("pipectl:") {
            c.error(&p, format!("tag key {k:?} uses a reserved prefix (aws: or pipectl:)"));
        }
        if v.chars().count() > 256 {
            c.error(&p, format!("tag value for {k:?} is longer than 256 characters"));
        }
    }

    // OpenSearch domain: 3-28 chars, starts with a-z, then a-z 0-9 -.
    let d = &spec.search;
    if d.domain.len() < 3
        || d.domain.len() > 28
        || !d.domain.starts_with(|ch: char| ch.is_ascii_lowercase())
        || !d.domain.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        c.error(
            "search.domain",
            format!("invalid domain name {:?}: 3-28 characters, starting with a-z, then a-z, 0-9 or -", d.domain),
        );
    }
    if !valid_engine(&d.engine) {
        c.error(
            "search.engine",
            format!("invalid engine {:?}: expected OpenSearch_X.Y or Elasticsearch_X.Y", d.engine),
        );
    }
    // The OpenSearch Service API names every instance type `<family>.<size>.search`, for both
    // engine families; the legacy `.elasticsearch` suffix is rejected by it.
    let parts: Vec<&str> = d.instance_type.split('.').collect();
    if parts.len() != 3 || parts[2] != "search" || parts[0].is_empty() || parts[1].is_empty() {
        let hint = match d.instance_type.strip_suffix(".elasticsearch") {
            Some(base) => format!(" (did you mean {base}.search?)"),
            None => String::new(),
        };
        c.error(
            "search.instance_type",
            format!("invalid instance type {:?}: expected <family>.<size>.search{hint}", d.instance_type),
        );
    }
    // OpenSearch Service: T2 instances and t3.small cannot encrypt data at rest.
    if d.encrypt_at_rest && (parts.first() == Some(&"t2") || d.instance_type.starts_with("t3.small.")) {
        c.error(
            "search.instance_type",
            format!(
                "{} does not support encryption at rest; use t3.medium.search or larger, or set encrypt_at_rest: false",
                d.instance_type
            ),
        );
    }
    c.range("search.instance_count", "instance_count", d.instance_count, 1, 80, "OpenSearch data-node quota");
    // Storage follows the instance family: instance-store families take no EBS volume,
    // previous-generation families and Elasticsearch before 7.10 take gp2, not gp3.
    let family = parts.first().copied().unwrap_or("");
    if crate::resources::domain::INSTANCE_STORE_FAMILIES.contains(&family) {
        for (key, set) in [("volume_gb", d.volume_gb.is_some()), ("volume_type", d.volume_type.is_some())] {
            if set {
                c.error(
                    &format!("search.{key}"),
                    format!(
                        "{} keeps its data on the instance's own storage and takes no EBS volume: remove {key}",
                        d.instance_type
                    ),
                );
            }
        }
    } else if let Some(gb) = d.volume_gb {
        c.range("search.volume_gb", "volume_gb", gb, 10, 16384, "EBS volume per node");
    }
    if d.volume_type == Some(super::VolumeType::Gp3) {
        if crate::resources::domain::GP2_ONLY_FAMILIES.contains(&family) {
            c.error(
                "search.volume_type",
                format!("{} is a previous-generation instance type that takes gp2, not gp3", d.instance_type),
            );
        } else if crate::resources::domain::default_volume_type(&d.instance_type, &d.engine) == Some("gp2") {
            c.error(
                "search.volume_type",
                format!("{} takes gp2 volumes; gp3 needs Elasticsearch 7.10 or OpenSearch", d.engine),
            );
        }
    }
    if d.access.allow_ips.is_empty() {
        c.error("search.access.allow_ips", "allow_ips needs at least one address or CIDR range");
    }
    let mut ranges = Vec::new();
    for (i, ip) in d.access.allow_ips.iter().enumerate() {
        match parse_cidr(ip) {
            Err(why) => {
                c.error(&format!("search.access.allow_ips[{i}]"), format!("invalid IP address or CIDR {ip:?}: {why}"))
            }
            Ok(r) => ranges.push(r),
        }
    }
    // Ranges that together admit every address make the domain public (a policy with
    // `aws:SourceIp` 0.0.0.0/0, or 0.0.0.0/1 + 128.0.0.0/1, is an open policy): refused unless
    // the spec says `public: true`.
    for family in ["IPv4", "IPv6"] {
        if covers_everything(&ranges, family == "IPv6") {
            if d.access.public {
                c.warn(
                    "search.access.allow_ips",
                    format!("allow_ips admit every {family} address: the domain is public"),
                );
            } else {
                c.error(
                    "search.access.allow_ips",
                    format!(
                        "allow_ips together admit every {family} address, which makes the domain public to the internet; \
                         list your own ranges, or set `public: true` under search.access if that is really meant"
                    ),
                );
            }
        }
    }
    // Elasticsearch before 7 lacks what the stack relies on (node-to-node encryption needs 6.0,
    // encryption at rest 5.1, Firehose needs a TypeName up to 6.x, gp3 needs 7.10): refused
    // with the reason rather than half supported.
    if let Some(v) = d.engine.strip_prefix("Elasticsearch_") {
        if v.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|major| major < 7) {
            c.error(
                "search.engine",
                format!(
                    "{} is not supported: pipectl needs Elasticsearch 7.x or OpenSearch (older versions need mapping types in Firehose and lack encryption options); upgrade the domain first",
                    d.engine
                ),
            );
        }
    }

    // The index templates use the composable template API (`_index_template`), which
    // Elasticsearch added in 7.8 ("Index templates", Elasticsearch 7.8 reference); OpenSearch
    // has it in every version.
    if let Some(v) = d.engine.strip_prefix("Elasticsearch_") {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        if let (Some(Some(7)), Some(Some(minor))) = (parts.next(), parts.next()) {
            if minor < 8 {
                c.error(
                    "search.engine",
                    format!(
                        "{} has no composable index templates (Elasticsearch 7.8 added them), which pipectl uses to map the schema's fields; use Elasticsearch 7.10 or OpenSearch",
                        d.engine
                    ),
                );
            }
        }
    }
    // Nothing can set up the index template when the policy admits neither the account nor
    // any address a request could come from: documentation and private ranges never reach a
    // public domain endpoint.
    if !d.access.allow_account && !ranges.is_empty() && ranges.iter().all(|r| unreachable_range(*r)) {
        c.warn(
            "search.access",
            "the access policy admits neither this account (allow_account: false) nor any address a request to the \
             domain's public endpoint can come from (only documentation, private or loopback ranges): nothing, pipectl \
             included, can set up the index template. Add your public address to allow_ips, or set allow_account: true",
        );
    }

    if let Err(why) = bucket_rule(&spec.bucket.name) {
        c.error("bucket.name", format!("invalid bucket name {:?}: {why}", spec.bucket.name));
    }

    if spec.pipelines.is_empty() {
        c.error("pipelines", "at least one pipeline is required");
    }
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, p) in spec.pipelines.iter().enumerate() {
        let at = |s: &str| format!("pipelines[{i}].{s}");
        c.name(
            &at("name"),
            "pipeline name",
            &p.name,
            32,
            |ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-',
            "a-z, 0-9 and -",
        );
        c.name(
            &at("stream.name"),
            "stream name",
            &p.stream.name,
            128,
            |ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch),
            "a-z, A-Z, 0-9, _ . -",
        );
        if p.stream.shards < 1 {
            c.error(&at("stream.shards"), "shards must be at least 1");
        } else if p.stream.shards > 500 {
            c.warn(
                &at("stream.shards"),
                format!("{} shards exceed the default account quota of 500 in most regions", p.stream.shards),
            );
        }
        c.range(
            &at("stream.retention_hours"),
            "retention_hours",
            p.stream.retention_hours,
            24,
            8760,
            "Kinesis: 1 to 365 days",
        );
        c.name(
            &at("transform.function"),
            "function name",
            &p.transform.function,
            64,
            |ch| ch.is_ascii_alphanumeric() || "_-".contains(ch),
            "a-z, A-Z, 0-9, _ and -",
        );
        c.range(&at("transform.memory_mb"), "memory_mb", p.transform.memory_mb, 128, 10240, "Lambda");
        c.range(&at("transform.timeout_s"), "timeout_s", p.transform.timeout_s, 1, 900, "Lambda");
        if p.transform.timeout_s > 300 && p.transform.timeout_s <= 900 {
            c.warn(
                &at("transform.timeout_s"),
                "Firehose invokes a transform for at most 5 minutes; a timeout above 300 s is never used",
            );
        }
        let dl = &p.delivery;
        c.name(
            &at("delivery.name"),
            "delivery stream name",
            &dl.name,
            64,
            |ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch),
            "a-z, A-Z, 0-9, _ . -",
        );
        if let Err(why) = index_rule(&dl.index) {
            c.error(&at("delivery.index"), format!("invalid index name {:?}: {why}", dl.index));
        }
        c.range(
            &at("delivery.buffering.size_mb"),
            "buffering size_mb",
            dl.buffering.size_mb,
            1,
            100,
            "Firehose OpenSearch destination",
        );
        c.range(
            &at("delivery.buffering.interval_s"),
            "buffering interval_s",
            dl.buffering.interval_s,
            0,
            900,
            "Firehose OpenSearch destination",
        );
        c.range(&at("delivery.retry_s"), "retry_s", dl.retry_s, 0, 7200, "Firehose RetryOptions");
        // The transform's processor buffer follows this buffering within its own limits.
        let (pmb, ps) = crate::resources::delivery::processor_buffer(dl.buffering.size_mb, dl.buffering.interval_s);
        if pmb != dl.buffering.size_mb || ps != dl.buffering.interval_s {
            c.warn(
                &at("delivery.buffering"),
                format!(
                    "the transform Lambda is invoked with at most {pmb} MB / {ps} s of records (a Firehose processor buffers 1-3 MB, 60-900 s); the destination still buffers {} MB / {} s",
                    dl.buffering.size_mb, dl.buffering.interval_s
                ),
            );
        }
        if dl.failed_prefix.is_empty() || dl.failed_prefix.len() > 1024 {
            c.error(&at("delivery.failed_prefix"), "failed_prefix must be 1-1024 characters");
        } else if dl.failed_prefix.starts_with('/') {
            c.error(&at("delivery.failed_prefix"), "failed_prefix must not start with /");
        } else if !dl.failed_prefix.ends_with('/') {
            c.warn(
                &at("delivery.failed_prefix"),
                format!(
                    "failed_prefix {:?} does not end with /; objects will be named {}<date>…",
                    dl.failed_prefix, dl.failed_prefix
                ),
            );
        }
        validate_schema(&mut c, spec, i);
        validate_response_size(&mut c, spec, i);

        for (what, v, path) in [
            ("pipeline name", p.name.as_str(), "name"),
            ("stream name", p.stream.name.as_str(), "stream.name"),
            ("function name", p.transform.function.as_str(), "transform.function"),
            ("delivery stream name", p.delivery.name.as_str(), "delivery.name"),
            ("index", p.delivery.index.as_str(), "delivery.index"),
        ] {
            if let Some(first) = seen.insert((what, v), i) {
                c.error(&at(path), format!("{what} {v:?} is already used by pipelines[{first}]"));
            }
        }
    }
    // Each pipeline's template covers `index` and `index-*`; composable templates of one
    // priority may not overlap (the domain refuses the second), and one index would take the
    // mapping of another pipeline's schema.
    for (i, p) in spec.pipelines.iter().enumerate() {
        for (j, q) in spec.pipelines.iter().enumerate() {
            if i != j && q.delivery.index.starts_with(&format!("{}-", p.delivery.index)) {
                c.error(
                    &format!("pipelines[{j}].delivery.index"),
                    format!(
                        "index {:?} matches the index template pattern {:?} of pipelines[{i}] (index {:?}); choose an index name that does not start with \"{}-\"",
                        q.delivery.index,
                        format!("{}-*", p.delivery.index),
                        p.delivery.index,
                        p.delivery.index
                    ),
                );
            }
        }
    }
    c.out
}

/// Documentation (RFC 5737, RFC 3849), private (RFC 1918, RFC 4193), loopback, link-local and
/// unspecified ranges: no request reaches a public domain endpoint from them.
fn unreachable_range((ip, prefix): (IpAddr, u8)) -> bool {
    let within = |net: IpAddr, bits: u8| {
        if prefix < bits {
            return false;
        }
        match (ip, net) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
                u32::from(a) & mask == u32::from(n) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
                u128::from(a) & mask == u128::from(n) & mask
            }
            _ => false,
        }
    };
    [
        ("192.0.2.0", 24),
        ("198.51.100.0", 24),
        ("203.0.113.0", 24),
        ("10.0.0.0", 8),
        ("172.16.0.0", 12),
        ("192.168.0.0", 16),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("0.0.0.0", 32),
        ("2001:db8::", 32),
        ("fc00::", 7),
        ("fe80::", 10),
        ("::1", 128),
    ]
    .iter()
    .any(|(net, bits)| within(net.parse().expect("valid network"), *bits))
}

fn validate_schema(c: &mut Checker<'_>, spec: &Spec, i: usize) {
    let s = &spec.pipelines[i].schema;
    let at = |x: &str| format!("pipelines[{i}].schema.{x}");
    if s.delimiter.chars().count() != 1 {
        c.error(&at("delimiter"), format!("delimiter must be exactly one character, got {:?}", s.delimiter));
    } else if matches!(s.delimiter.as_str(), "\"" | "\r" | "\n") {
        c.error(&at("delimiter"), "delimiter cannot be a quote or a line break (they quote values)");
    }
    if s.fields.is_empty() {
        c.error(&at("fields"), "a schema needs at least one field");
        return;
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (j, f) in s.fields.iter().enumerate() {
        if let Some(k) = names.insert(&f.name, j) {
            c.error(
                &at(&format!("fields[{j}].name")),
                format!("field name {:?} is already used by fields[{k}]", f.name),
            );
        }
        if f.name.is_empty() || f.name.starts_with('_') || f.name.contains('.') {
            c.error(
                &at(&format!("fields[{j}].name")),
                format!("invalid field name {:?}: non-empty, not starting with _ and without dots", f.name),
            );
        }
    }
    let floats: HashSet<&str> = s.fields.iter().filter(|f| f.ty == FieldType::Float).map(|f| f.name.as_str()).collect();
    for (j, f) in s.fields.iter().enumerate() {
        let fp = |x: &str| at(&format!("fields[{j}].{x}"));
        let here = at(&format!("fields[{j}]"));
        if f.format.is_some() && f.ty != FieldType::Date {
            c.error(&fp("format"), format!("`format` only applies to date fields; {:?} is not a date", f.name));
        }
        if (f.lat.is_some() || f.lon.is_some()) && f.ty != FieldType::GeoPoint {
            c.error(&here, format!("`lat`/`lon` only apply to geo_point fields; {:?} is not one", f.name));
        }
        if let Some(Computed::ArrivalTime) = f.value {
            if f.ty != FieldType::Date {
                c.error(&fp("value"), "value: arrival_time needs type: date");
            }
            if f.from.is_some() {
                c.error(&fp("from"), "a computed field (value) cannot also have `from`");
            }
            continue;
        }
        match f.ty {
            FieldType::Date => match &f.format {
                None => c.error(
                    &here,
                    format!("date field {:?} needs a `format` (strftime, e.g. \"%m/%d/%y %H:%M\")", f.name),
                ),
                Some(fmt) if !valid_date_format(fmt) => {
                    c.error(&fp("format"), format!("invalid strftime format {fmt:?}"))
                }
                _ => {}
            },
            FieldType::GeoPoint if f.from.is_none() => {
                match (&f.lat, &f.lon) {
                    (Some(lat), Some(lon)) => {
                        for (key, name) in [("lat", lat), ("lon", lon)] {
                            if !floats.contains(name.as_str()) {
                                c.error(
                                    &fp(key),
                                    format!("{key} must name a float field of this schema, {name:?} is not one"),
                                );
                            }
                        }
                    }
                    _ => c.error(
                        &here,
                        format!("geo_point field {:?} needs `lat` and `lon` (two float fields) or `from`", f.name),
                    ),
                }
                continue;
            }
            _ => {}
        }
        match &f.from {
            None => c.error(&here, format!("field {:?} needs `from` (the CSV column it is read from)", f.name)),
            Some(col) if col.is_empty() => c.error(&fp("from"), "`from` cannot be empty"),
            _ => {}
        }
    }
    // The schema travels to the Lambda in its environment (see transform::SCHEMA_ENV). Lambda
    // measures the 4 KB on the variables map serialised as JSON ("String measured: {...}" in
    // its error), where every quote of the schema's own JSON is escaped and counts twice.
    let size = lambda_env_size(&[(SCHEMA_ENV, &serde_json::to_string(s).unwrap_or_default())]);
    if size > LAMBDA_ENV_LIMIT {
        c.error(
            &at("fields"),
            format!(
                "the schema takes {size} bytes in the Lambda environment, over Lambda's {LAMBDA_ENV_LIMIT}-byte limit"
            ),
        );
    }
}

/// The size Lambda checks against its 4 KB environment limit: the variables map as JSON.
pub fn lambda_env_size(vars: &[(&str, &str)]) -> usize {
    let map: serde_json::Map<String, serde_json::Value> =
        vars.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
    serde_json::to_string(&map).map(|j| j.len()).unwrap_or(usize::MAX)
}

/// Firehose hands the transform up to the processor's buffer of records at once, and the
/// response must fit Lambda's 6 MB (transform::RESPONSE_LIMIT). Refuses a buffer whose response
/// can exceed it for text without control characters, in rows of the maximum size: no row
/// size makes such a buffer safe. The strict worst case (every text byte a control character,
/// 8× with base64) exceeds 6 MB at the processor's smallest buffer, 1 MB, for any schema with
/// a text field; that case and buffers of many small rows are left to the transform's size
/// guard, which fails the fewest records needed (README, "Lambda's payload limits").
fn validate_response_size(c: &mut Checker<'_>, spec: &Spec, i: usize) {
    use crate::transform::{response_bound, RESPONSE_LIMIT};
    const MIB: usize = 1024 * 1024;
    let p = &spec.pipelines[i];
    let b = &p.delivery.buffering;
    let (mb, _) = crate::resources::delivery::processor_buffer(b.size_mb, b.interval_s);
    let bound = response_bound(&crate::schema::Compiled::new(&p.schema));
    let worst = bound.buffer(mb as usize * MIB, true);
    if worst <= RESPONSE_LIMIT {
        return;
    }
    let fits = (1..mb).rev().find(|m| bound.buffer(*m as usize * MIB, true) <= RESPONSE_LIMIT);
    let hint = match fits {
        Some(m) => format!("use size_mb: {m} or less"),
        None => "no processor buffer fits; shorten the schema's text fields".to_string(),
    };
    c.error(
        &format!("pipelines[{i}].delivery.buffering.size_mb"),
        format!(
            "the transform's {mb} MB buffer (size_mb {} clamped to the Lambda processor's 1-3 MB) can answer \
             {worst} bytes for this schema ({bound}), over Lambda's {RESPONSE_LIMIT}-byte response limit; {hint}",
            b.size_mb
        ),
    );
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().take(parts.len() - 1).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.last().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn valid_engine(e: &str) -> bool {
    let Some((family, version)) = e.split_once('_') else { return false };
    let mut v = version.split('.');
    matches!(family, "OpenSearch" | "Elasticsearch")
        && matches!((v.next(), v.next(), v.next()), (Some(a), Some(b), None)
            if !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit()))
}

/// Whether the ranges of one family (IPv4 or IPv6) together cover its whole address space.
fn covers_everything(ranges: &[(IpAddr, u8)], v6: bool) -> bool {
    let bits: u32 = if v6 { 128 } else { 32 };
    let mut spans: Vec<(u128, u128)> = ranges
        .iter()
        .filter(|(ip, _)| ip.is_ipv6() == v6)
        .map(|(ip, prefix)| {
            let n = match ip {
                IpAddr::V4(a) => u128::from(u32::from(*a)),
                IpAddr::V6(a) => u128::from(*a),
            };
            let host_bits = bits - u32::from(*prefix);
            let size_minus_one = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
            let start = n & !size_minus_one;
            (start, start.saturating_add(size_minus_one))
        })
        .collect();
    spans.sort();
    let top = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let mut next = 0u128; // the first address not yet covered
    for (start, end) in spans {
        if start > next {
            return false;
        }
        if end >= top {
            return true;
        }
        next = next.max(end + 1);
    }
    false
}

/// Accepts an IPv4/IPv6 address or a CIDR range (as IAM's aws:SourceIp condition does).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("prefix must be 0-{max}"))?,
    };
    Ok((ip, prefix))
}

/// S3 general-purpose bucket naming rules.
fn bucket_rule(n: &str) -> Result<(), &'static str> {
    if n.len() < 3 || n.len() > 63 {
        return Err("must be 3-63 characters");
    }
    if !n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
        return Err("only a-z, 0-9, . and - are allowed");
    }
    if !n.starts_with(|c: char| c.is_ascii_alphanumeric()) || !n.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start and end with a letter or digit");
    }
    if n.contains("..") {
        return Err("must not contain two adjacent dots");
    }
    if n.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("must not look like an IP address");
    }
    if n.starts_with("xn--") || n.starts_with("sthree-") || n.ends_with("-s3alias") || n.ends_with("--ol-s3") {
        return Err("uses a prefix or suffix reserved by S3");
    }
    Ok(())
}

/// OpenSearch index naming rules, with Firehose's IndexName length limit (80).
fn index_rule(n: &str) -> Result<(), &'static str> {
    if n.is_empty() || n.len() > 80 {
        return Err("must be 1-80 characters (Firehose IndexName)");
    }
    if n.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("must be lowercase");
    }
    if n.chars().any(|c| " \\/*?\"<>|,#:".contains(c)) {
        return Err("must not contain spaces or any of \\ / * ? \" < > | , # :");
    }
    if n.starts_with(['-', '_', '+']) || n == "." || n == ".." {
        return Err("must not start with -, _ or + and must not be . or ..");
    }
    Ok(())
}
