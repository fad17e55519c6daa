//! The stack spec: the YAML contract a user writes, parsed into typed structs and validated
//! against every AWS limit knowable without calling AWS. Nothing here touches the network.

pub mod diag;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;
pub use diag::{Diagnostic, Diagnostics, Pos, Severity};

/// The tag key that marks what a stack owns.
pub const STACK_TAG: &str = "pipectl:stack";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub stack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub search: Search,
    pub bucket: Bucket,
    pub pipelines: Vec<Pipeline>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    pub domain: String,
    pub engine: String,
    #[serde(default = "d_instance_type")]
    pub instance_type: String,
    #[serde(default = "d_one")]
    pub instance_count: u32,
    /// EBS volume per node in GiB (default 10); not for instance-store families.
    #[serde(default)]
    pub volume_gb: Option<u32>,
    /// EBS volume type; default: gp3 where the family and engine take it, else gp2, and for an
    /// existing domain whatever it has.
    #[serde(default)]
    pub volume_type: Option<VolumeType>,
    #[serde(default = "d_true")]
    pub encrypt_at_rest: bool,
    #[serde(default = "d_true")]
    pub node_to_node_encryption: bool,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub allow_ips: Vec<String>,
    #[serde(default)]
    pub allow_account: bool,
    /// Say so explicitly to let `allow_ips` admit every address (the whole IPv4 or IPv6 space).
    #[serde(default)]
    pub public: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    pub stream: Stream,
    pub transform: Transform,
    pub schema: Schema,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    pub name: String,
    #[serde(default = "d_one")]
    pub shards: u32,
    #[serde(default = "d_retention")]
    pub retention_hours: u32,
    /// Server-side encryption with the AWS-managed key `alias/aws/kinesis`.
    #[serde(default = "d_true")]
    pub encrypt: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    pub function: String,
    #[serde(default = "d_memory")]
    pub memory_mb: u32,
    #[serde(default = "d_timeout")]
    pub timeout_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub name: String,
    pub index: String,
    #[serde(default)]
    pub buffering: Buffering,
    #[serde(default = "d_prefix")]
    pub failed_prefix: String,
    /// How long Firehose retries a failed index request before backing the document up.
    #[serde(default = "d_retry")]
    pub retry_s: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffering {
    #[serde(default = "d_one")]
    pub size_mb: u32,
    #[serde(default = "d_interval")]
    pub interval_s: u32,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering { size_mb: 1, interval_s: 60 }
    }
}

fn d_instance_type() -> String {
    // The smallest type that supports encryption at rest (on by default).
    "t3.medium.search".into()
}
fn d_one() -> u32 {
    1
}
/// The volume a node gets when the spec names none (EBS families).
pub const DEFAULT_VOLUME_GB: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp2,
    Gp3,
}

impl VolumeType {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
        }
    }
}
fn d_true() -> bool {
    true
}
fn d_retention() -> u32 {
    24
}
fn d_memory() -> u32 {
    128
}
fn d_timeout() -> u32 {
    60
}
fn d_interval() -> u32 {
    60
}
fn d_prefix() -> String {
    "failed/".into()
}
fn d_retry() -> u32 {
    300
}

/// The engine family decides the Firehose destination type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineFamily {
    OpenSearch,
    Elasticsearch,
}

impl Search {
    pub fn family(&self) -> EngineFamily {
        if self.engine.starts_with("Elasticsearch_") {
            EngineFamily::Elasticsearch
        } else {
            EngineFamily::OpenSearch
        }
    }
}

impl Spec {
    pub fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading spec file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A valid spec and the warnings found while checking it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Diagnostics,
}

/// Reads and validates a spec file.
pub fn load(path: &Path) -> Result<Loaded, SpecError> {
    let source =
        std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.display().to_string(), source })?;
    parse(&path.display().to_string(), &source).map_err(SpecError::Invalid)
}

/// Parses and validates spec text; all errors found are returned at once.
pub fn parse(file: &str, source: &str) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics { file: file.to_string(), source: source.to_string(), items: vec![] };
    if source.trim().is_empty() {
        diags.items.push(Diagnostic {
            severity: Severity::Error,
            pos: Pos { line: 1, col: 1 },
            message: "the spec is empty; it needs at least `stack`, `search`, `bucket` and `pipelines`".into(),
        });
        return Err(diags);
    }
    let index = diag::PosIndex::build(source);
    let spec: Spec = match serde_yaml::from_str(source) {
        Ok(s) => s,
        Err(e) => {
            diags.items.push(serde_diagnostic(&e, source, &index));
            return Err(diags);
        }
    };
    diags.items = validate::validate(&spec, &index);
    diags.items.sort_by_key(|d| (d.severity, d.pos));
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(Loaded { spec, warnings: diags })
    }
}

/// Turns a serde_yaml error into a positioned diagnostic, with a "did you mean" hint for
/// unknown keys and unknown variants.
fn serde_diagnostic(e: &serde_yaml::Error, source: &str, index: &diag::PosIndex) -> Diagnostic {
    let mut pos = e.location().map(|l| Pos { line: l.line(), col: l.column() }).unwrap_or_else(|| end_of(source));
    let raw = e.to_string();
    // serde_yaml appends " at line L column C" (the position is shown in front instead) and,
    // for scanner errors, ", while scanning X at line L column C".
    let (head, context) = match raw.split_once(", while ") {
        Some((h, c)) => (h, Some(c)),
        None => (raw.as_str(), None),
    };
    let strip = |t: &str| t.find(" at line ").map_or(t.to_string(), |i| t[..i].to_string());
    let mut message = strip(head);
    if let Some(c) = context {
        message = format!("{message}, while {}", strip(c));
        // At end of file the start of what was left open is the useful position.
        if head.starts_with("found unexpected end of stream") {
            if let Some(p) = parse_line_col(c) {
                pos = p;
            }
        }
    }
    for (marker, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let word = rest.split('`').next().unwrap_or("");
            let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
            if let Some(s) = diag::suggest(word, expected) {
                message.push_str(&format!(" (did you mean the {what} `{s}`?)"));
            }
        }
    }
    // serde_yaml points a duplicate key at its mapping; point at the duplicate instead (the
    // position index keeps the last occurrence of each key).
    if let Some(start) = message.find("duplicate field `") {
        let field = message[start + 17..].split('`').next().unwrap_or("");
        let parent = message[..start].trim_end_matches(": ").trim();
        let path = if parent.is_empty() { field.to_string() } else { format!("{parent}.{field}") };
        pos = index.key(&path);
    }
    Diagnostic { severity: Severity::Error, pos, message }
}

/// Parses "… at line L column C" (1-based, as serde_yaml writes it).
fn parse_line_col(text: &str) -> Option<Pos> {
    let rest = &text[text.find(" at line ")? + 9..];
    let (line, rest) = rest.split_once(" column ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(Pos { line: line.trim().parse().ok()?, col: col.parse().ok()? })
}

fn end_of(source: &str) -> Pos {
    let line = source.lines().count().max(1);
    let col = source.lines().last().map(|l| l.chars().count() + 1).unwrap_or(1);
    Pos { line, col }
}

#[cfg(test)]
mod tests;
