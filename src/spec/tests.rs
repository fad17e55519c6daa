//! Spec loading tests: the example stacks are valid, and every rule fails with the right
//! line, column and message.

use super::*;

const CRIME: &str = include_str!("../../stacks/crime-data.yaml");
const TWO: &str = include_str!("../../stacks/two-feeds-es.yaml");

#[test]
fn example_stacks_are_valid() {
    let l = parse("crime-data.yaml", CRIME).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(l.spec.stack, "crime-data");
    assert_eq!(l.spec.pipelines[0].stream.name, "DataStream");
    assert_eq!(l.spec.pipelines[0].delivery.buffering, Buffering { size_mb: 1, interval_s: 60 });
    // timeout_s: 300 is at Firehose's limit: no warning.
    assert_eq!(l.warnings.items.len(), 0, "{}", l.warnings);
    let l = parse("two-feeds-es.yaml", TWO).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(l.spec.search.family(), EngineFamily::Elasticsearch);
    assert_eq!(l.spec.pipelines.len(), 2);
    // Its policy admits documentation ranges only and not the account: said, not refused.
    assert_eq!(l.warnings.items.len(), 1, "{}", l.warnings);
    assert!(
        l.warnings.to_string().contains("nothing, pipectl included, can set up the index template"),
        "{}",
        l.warnings
    );
}

#[test]
fn a_policy_nobody_can_pass_is_warned_about() {
    let warned = |src: &str| parse("w.yaml", src).unwrap_or_else(|d| panic!("{d}")).warnings.to_string();
    let no_account = CRIME.replace("allow_account: true", "allow_account: false");
    // 1.1.1.1 is a public address: a caller can be there.
    assert!(!warned(&no_account).contains("index template"), "{}", warned(&no_account));
    for ranges in ["[\"10.0.0.0/8\"]", "[\"192.168.1.0/24\", \"2001:db8::/48\"]", "[\"127.0.0.1/32\"]"] {
        let w = warned(&no_account.replace("[\"1.1.1.1/32\"]", ranges));
        assert!(w.contains("nothing, pipectl included, can set up the index template"), "{ranges}: {w}");
    }
    // A range larger than a private block may hold public addresses.
    assert!(!warned(&no_account.replace("[\"1.1.1.1/32\"]", "[\"8.0.0.0/4\"]")).contains("index template"));
    // The account admitted: whatever the ranges.
    assert!(!warned(&CRIME.replace("[\"1.1.1.1/32\"]", "[\"10.0.0.0/8\"]")).contains("index template"));
}

#[test]
fn overlapping_index_templates_are_refused() {
    let d = parse("two.yaml", &TWO.replace("index: sensors", "index: crime-sensors")).unwrap_err();
    let text = d.to_string();
    assert!(
        text.contains("index \"crime-sensors\" matches the index template pattern \"crime-*\" of pipelines[0]"),
        "{text}"
    );
    assert!(text.contains("two.yaml:51:"), "{text}");
    // A shared prefix without the dash is fine.
    parse("two.yaml", &TWO.replace("index: sensors", "index: crimesensors")).unwrap_or_else(|d| panic!("{d}"));
}

/// Where `needle` first appears at or after the line of `anchor` in `text`.
fn find(text: &str, anchor: &str, needle: &str) -> Pos {
    let start = text.find(anchor).unwrap_or_else(|| panic!("anchor {anchor:?} not in text"));
    let off = start + text[start..].find(needle).unwrap_or_else(|| panic!("needle {needle:?}"));
    let line = text[..off].matches('\n').count() + 1;
    let col = text[..off].rsplit('\n').next().unwrap().chars().count() + 1;
    Pos { line, col }
}

/// (replace this, with this, error expected at this needle (searched from the replacement),
/// message fragment)
const CASES: &[(&str, &str, &str, &str)] = &[
    ("stack: crime-data", "stack: Crime_Data", "Crime_Data", "invalid stack name"),
    ("stack: crime-data", "stack: a-very-long-stack-name-that-is-over-32", "a-very", "invalid stack name"),
    ("region: eu-west-1", "region: europe", "europe", "invalid region"),
    ("tags: { team: analytics }", "tags: { \"aws:x\": y }", "y }", "reserved prefix"),
    ("domain: kinesis", "domain: Kinesis", "Kinesis", "invalid domain name"),
    ("domain: kinesis", "domain: ab", "ab", "invalid domain name"),
    ("domain: kinesis", "domain: 9kinesis", "9kinesis", "invalid domain name"),
    ("engine: OpenSearch_2.13", "engine: Solr_9", "Solr_9", "invalid engine"),
    (
        "instance_type: m5.large.search",
        "instance_type: m5.large.elasticsearch",
        "m5.large.el",
        "did you mean m5.large.search",
    ),
    (
        "instance_type: m5.large.search",
        "instance_type: t3.small.search",
        "t3.small",
        "does not support encryption at rest",
    ),
    ("instance_count: 1", "instance_count: 0", "0", "instance_count must be between 1 and 80"),
    ("volume_gb: 10", "volume_gb: 5", "5", "volume_gb must be between 10"),
    // Storage per instance family.
    (
        "instance_type: m5.large.search",
        "instance_type: i3.large.search",
        "10\n",
        "takes no EBS volume: remove volume_gb",
    ),
    (
        "instance_type: m5.large.search",
        "instance_type: m4.large.search\n  volume_type: gp3",
        "gp3",
        "previous-generation instance type that takes gp2",
    ),
    (
        "engine: OpenSearch_2.13",
        "engine: Elasticsearch_7.9\n  volume_type: gp3",
        "gp3",
        "gp3 needs Elasticsearch 7.10 or OpenSearch",
    ),
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: []", "[]", "at least one address"),
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: [\"1.1.1.1/33\"]", "\"1.1.1.1/33", "prefix must be 0-32"),
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: [\"10.0.0.0/8\", \"300.1.1.1\"]", "\"300", "not an IP address"),
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: [\"2001:db8::/129\"]", "\"2001", "prefix must be 0-128"),
    // Ranges that together admit everyone make the domain public: refused without public: true.
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: [\"0.0.0.0/0\"]", "[\"0.0.0.0/0", "every IPv4 address"),
    (
        "allow_ips: [\"1.1.1.1/32\"]",
        "allow_ips: [\"0.0.0.0/1\", \"128.0.0.0/1\"]",
        "[\"0.0.0.0/1",
        "every IPv4 address",
    ),
    ("allow_ips: [\"1.1.1.1/32\"]", "allow_ips: [\"::/0\"]", "[\"::/0", "every IPv6 address"),
    (
        "allow_ips: [\"1.1.1.1/32\"]",
        "allow_ips: [\"::/1\", \"8000::/2\", \"c000::/2\"]",
        "[\"::/1",
        "every IPv6 address",
    ),
    ("engine: OpenSearch_2.13", "engine: Elasticsearch_6.8", "Elasticsearch_6.8", "is not supported"),
    ("engine: OpenSearch_2.13", "engine: Elasticsearch_7.7", "Elasticsearch_7.7", "no composable index templates"),
    ("engine: OpenSearch_2.13", "engine: Elasticsearch_5.6", "Elasticsearch_5.6", "is not supported"),
    ("name: crime-data-firehose-backup", "name: Crime_Backup", "Crime_Backup", "invalid bucket name"),
    ("name: crime-data-firehose-backup", "name: ab", "ab", "must be 3-63"),
    ("name: crime-data-firehose-backup", "name: 192.168.1.1", "192", "IP address"),
    ("  - name: crime\n", "  - name: Crime!\n", "Crime!", "invalid pipeline name"),
    ("name: DataStream", "name: Data Stream", "Data Stream", "invalid stream name"),
    ("shards: 1,", "shards: 0,", "0,", "shards must be at least 1"),
    ("retention_hours: 24", "retention_hours: 12", "12", "retention_hours must be between 24 and 8760"),
    ("retention_hours: 24", "retention_hours: 9000", "9000", "retention_hours must be between 24 and 8760"),
    (
        "function: transform-firehose-data",
        "function: transform.firehose",
        "transform.firehose",
        "invalid function name",
    ),
    ("memory_mb: 128", "memory_mb: 64", "64", "memory_mb must be between 128 and 10240"),
    ("timeout_s: 300", "timeout_s: 901", "901", "timeout_s must be between 1 and 900"),
    ("timeout_s: 300", "timeout_s: 0", "0 }", "timeout_s must be between 1 and 900"),
    ("delimiter: \"|\"", "delimiter: \"||\"", "\"||\"", "exactly one character"),
    ("delimiter: \"|\"", "delimiter: '\"'", "'\"'", "cannot be a quote"),
    (
        "{ name: address, type: keyword, from: address }",
        "{ name: crime_time, type: keyword, from: address }",
        "crime_time, type: keyword",
        "already used by fields[0]",
    ),
    ("format: \"%m/%d/%y %H:%M\" }", "}", "{ name: crime_time", "needs a `format`"),
    ("format: \"%m/%d/%y %H:%M\" }", "format: \"%Q\" }", "\"%Q\"", "invalid strftime format"),
    (
        "{ name: beat, type: keyword, from: beat }",
        "{ name: beat, type: keyword, from: beat, format: \"%Y\" }",
        "\"%Y\"",
        "only applies to date",
    ),
    ("lat: latitude, lon: longitude }", "lat: latitude, lon: address }", "address }", "lon must name a float field"),
    ("lat: latitude, lon: longitude }", "lat: nowhere, lon: longitude }", "nowhere", "lat must name a float field"),
    (
        "{ name: location, type: geo_point, lat: latitude, lon: longitude }",
        "{ name: location, type: geo_point }",
        "{ name: location",
        "needs `lat` and `lon`",
    ),
    ("{ name: grid, type: integer, from: grid }", "{ name: grid, type: integer }", "{ name: grid", "needs `from`"),
    (
        "{ name: load_time, type: date, value: arrival_time }",
        "{ name: load_time, type: keyword, value: arrival_time }",
        "arrival_time }",
        "needs type: date",
    ),
    ("name: firehose", "name: fire hose", "fire hose", "invalid delivery stream name"),
    ("index: crime-data", "index: Crime-Data", "Crime-Data", "must be lowercase"),
    ("index: crime-data", "index: _crime", "_crime", "must not start with"),
    ("index: crime-data", "index: crime*data", "crime*data", "must not contain"),
    ("size_mb: 1,", "size_mb: 0,", "0,", "buffering size_mb must be between 1 and 100"),
    ("size_mb: 1,", "size_mb: 101,", "101", "buffering size_mb must be between 1 and 100"),
    ("interval_s: 60 }", "interval_s: 901 }", "901", "buffering interval_s must be between 0 and 900"),
    // 3 MB of text rows can answer ~8.4 MB (escapes, base64): over Lambda's 6 MB response.
    (
        "size_mb: 1,",
        "size_mb: 3,",
        "3,",
        "the transform's 3 MB buffer (size_mb 3 clamped to the Lambda processor's 1-3 MB) can answer 8390521 \
         bytes for this schema (response ≤ 8.0× wire bytes + 633 B per record (2.7× for text without control \
         characters)), over Lambda's 6291456-byte response limit; use size_mb: 2 or less",
    ),
    ("failed_prefix: failed/", "failed_prefix: /failed/", "/failed/", "must not start with /"),
    // serde-level errors: unknown keys (with a hint), wrong types, missing keys, bad variants.
    ("shards: 1,", "shard: 1,", "shard:", "unknown field `shard`"),
    ("retention_hours: 24", "retention_hour: 24", "retention_hour", "did you mean the key `retention_hours`?"),
    ("type: geo_point", "type: geopoint", "geopoint", "did you mean the value `geo_point`?"),
    ("shards: 1,", "shards: many,", "many", "invalid type"),
    ("shards: 1,", "shards: -1,", "-1", "invalid type: integer `-1`, expected u32"),
    ("      index: crime-data\n", "", "@name: firehose", "missing field `index`"),
    // YAML syntax errors and duplicate keys.
    ("  volume_gb: 10\n", "\tvolume_gb: 10\n", "\tvolume", "found a tab character"),
    ("  volume_gb: 10\n", "  volume_gb: 10\n  volume_gb: 11\n", "volume_gb: 11", "duplicate field `volume_gb`"),
    ("retention_hours: 24 }", "retention_hours: 24 ]", "]", "did not find expected"),
    (
        "failed_prefix: failed/\n",
        "failed_prefix: \"failed/\n",
        "@\"failed/",
        "end of stream, while scanning a quoted scalar",
    ),
];

#[test]
fn every_bad_spec_fails_at_the_right_place() {
    let mut failures = Vec::new();
    for (from, to, needle, fragment) in CASES {
        assert!(CRIME.contains(from), "case base text {from:?} not found");
        let text = CRIME.replacen(from, to, 1);
        let anchor_at = CRIME.find(from).unwrap();
        let anchor_line_start = text[..anchor_at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let anchor = &text[anchor_line_start..];
        let want = if let Some(global) = needle.strip_prefix('@') {
            find(&text, "", global)
        } else {
            let p = find(anchor, "", needle);
            Pos { line: p.line + text[..anchor_line_start].matches('\n').count(), col: p.col }
        };
        match parse("spec.yaml", &text) {
            Ok(_) => failures.push(format!("{to:?}: accepted")),
            Err(d) => {
                let hit = d.errors().any(|e| e.pos == want && e.message.contains(fragment));
                if !hit {
                    failures.push(format!("{to:?}: wanted {want:?} {fragment:?}, got:\n{d}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn empty_and_whitespace_files_fail() {
    for src in ["", "   \n\n"] {
        let d = parse("empty.yaml", src).unwrap_err();
        assert_eq!(d.items[0].pos, Pos { line: 1, col: 1 });
        assert!(d.to_string().starts_with("empty.yaml:1:1: error: the spec is empty"));
    }
    let d = parse("list.yaml", "- a\n- b\n").unwrap_err();
    assert!(d.has_errors());
}

#[test]
fn reports_all_validation_errors_at_once_with_a_caret() {
    let text = CRIME.replace("shards: 1,", "shards: 0,").replace("memory_mb: 128", "memory_mb: 1");
    let d = parse("spec.yaml", &text).unwrap_err();
    assert_eq!(d.errors().count(), 2, "{d}");
    let shown = d.to_string();
    let col = "    stream: { name: DataStream, shards: ".len() + 1;
    let head = format!("spec.yaml:24:{col}: error: shards must be at least 1");
    let snippet = format!(
        "{head}\n   |\n24 |     stream: {{ name: DataStream, shards: 0, retention_hours: 24 }}\n   | {}^",
        " ".repeat(col - 1)
    );
    assert!(shown.contains(&snippet), "{shown}");
}

#[test]
fn duplicate_names_across_pipelines() {
    let d = parse("two.yaml", &TWO.replace("name: city-sensors,", "name: city-crime,")).unwrap_err();
    assert!(d.to_string().contains("stream name \"city-crime\" is already used by pipelines[0]"), "{d}");
    let d = parse("two.yaml", &TWO.replace("index: sensors", "index: crime")).unwrap_err();
    assert!(d.to_string().contains("index \"crime\" is already used"), "{d}");
    let d = parse("two.yaml", &TWO.replace("function: city-sensors-transform", "function: city-crime-transform"))
        .unwrap_err();
    assert!(d.to_string().contains("function name \"city-crime-transform\" is already used"), "{d}");
    let d = parse("two.yaml", &TWO.replace("name: city-sensors-delivery", "name: city-crime-delivery")).unwrap_err();
    assert!(d.to_string().contains("delivery stream name"), "{d}");
    let d = parse("two.yaml", &TWO.replace("  - name: sensors", "  - name: crime")).unwrap_err();
    assert!(d.to_string().contains("pipeline name \"crime\" is already used"), "{d}");
}

#[test]
fn warnings_do_not_fail() {
    let l = parse("w.yaml", &CRIME.replace("timeout_s: 300", "timeout_s: 600")).unwrap();
    assert!(l.warnings.to_string().contains("at most 5 minutes"), "{}", l.warnings);
    // Public on purpose: allowed, and still said.
    let l = parse(
        "w.yaml",
        &CRIME
            .replace("[\"1.1.1.1/32\"]", "[\"0.0.0.0/0\"]")
            .replace("allow_account: true", "allow_account: true\n    public: true"),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert!(l.warnings.to_string().contains("every IPv4 address: the domain is public"), "{}", l.warnings);
    // Near-everything is not everything.
    parse("w.yaml", &CRIME.replace("[\"1.1.1.1/32\"]", "[\"0.0.0.0/1\", \"128.0.0.0/2\"]")).unwrap();
}

#[test]
fn oversized_schema_is_rejected() {
    let mut fields = String::new();
    for i in 0..120 {
        fields.push_str(&format!(
            "        - {{ name: field_number_{i:03}, type: keyword, from: column_number_{i:03} }}\n"
        ));
    }
    let text = CRIME.replace("        - { name: address, type: keyword, from: address }\n", &fields);
    let d = parse("big.yaml", &text).unwrap_err();
    assert!(d.to_string().contains("over Lambda's 4096-byte limit"), "{d}");
}

#[test]
fn lambda_env_is_measured_as_lambda_measures_it() {
    // The variables map as JSON: the value's own quotes are escaped and count twice.
    assert_eq!(validate::lambda_env_size(&[("K", "v")]), r#"{"K":"v"}"#.len());
    assert_eq!(validate::lambda_env_size(&[("K", r#"{"a":1}"#)]), r#"{"K":"{\"a\":1}"}"#.len());
    // The article's schema is well inside the limit.
    let l = parse("crime-data.yaml", CRIME).unwrap();
    let schema = serde_json::to_string(&l.spec.pipelines[0].schema).unwrap();
    let size = validate::lambda_env_size(&[(crate::transform::SCHEMA_ENV, &schema)]);
    eprintln!("the article's schema takes {size} bytes of Lambda's 4096-byte environment");
    assert!(size < 2048, "{size}");
}

#[test]
fn loader_never_panics_on_arbitrary_bytes() {
    // A cheap deterministic property test (the fuzz target in fuzz/ goes further): mutate the
    // example spec byte by byte and cut it at every length.
    let base = CRIME.as_bytes();
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for cut in (0..base.len()).step_by(7) {
        let _ = parse("cut.yaml", &String::from_utf8_lossy(&base[..cut]));
    }
    for _ in 0..3000 {
        let mut b = base.to_vec();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() as usize) % b.len();
            b[i] = b"{}[]:-,|\"'\n #&*!%@`?>"[(next() % 21) as usize];
        }
        let _ = parse("mutated.yaml", &String::from_utf8_lossy(&b));
    }
}
