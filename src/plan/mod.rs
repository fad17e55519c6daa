//! The plan as data: ordered steps, each fully specified (its operations carry every input the
//! AWS calls need). `build` makes it (pure), `render` shows it, `crate::engine` executes it
//! without deciding anything. `--json` and saved plan files are this value serialised.

pub mod build;
pub mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::{Change, Live, Op, ResourceId};

/// Bumped on any incompatible change of the serialised form.
pub const FORMAT_VERSION: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Make live AWS match the spec.
    Apply,
    /// Delete everything the stack owns.
    Destroy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Take over a resource that exists without the stack's tag (`--adopt`), then update it.
    Adopt,
    /// Delete and create again: AWS cannot change an attribute in place.
    Replace,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Adopt => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: ResourceId,
    pub action: Action,
    /// Steps that must finish first.
    pub depends_on: Vec<ResourceId>,
    /// For display: attribute-level before → after.
    pub changes: Vec<Change>,
    /// For display: what is lost (delete, replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_loss: Option<String>,
    /// What else the reader must know about how the change takes effect (read at plan time,
    /// for display): e.g. indices an index template will not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How AWS says it will carry the change out (OpenSearch's dry run), for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// Re-read the resource's tags right before the operations and refuse unless this stack
    /// still owns it (updates, replacements, deletes of owned resources). The plan was made
    /// from a read that may be minutes old; a resource someone took over since is not touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_owner: Option<String>,
    /// The operations, executed in order.
    pub ops: Vec<Op>,
}

/// What AWS answered to a dry run of an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// `Blue/Green`, `DynamicUpdate`, `None` or `Undetermined`, as AWS names it.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl Deployment {
    pub fn is_blue_green(&self) -> bool {
        self.kind == "Blue/Green"
    }
}

/// A resource with a spec name that the stack does not own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: ResourceId,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    pub mode: Mode,
    pub region: String,
    pub account: String,
    pub steps: Vec<Step>,
    pub conflicts: Vec<Conflict>,
    /// Destroy: same-named resources the stack does not own, which it leaves alone.
    pub left_alone: Vec<ResourceId>,
    /// Resources the stack owns but no longer wants, kept on purpose (why, for display).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Conflict>,
    /// What the plan could not see, for display (it changes nothing the plan does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Conflict>,
    /// Fingerprint of the live state of every resource read, to refuse a stale saved plan.
    pub observed: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.steps {
            match s.action {
                Action::Create => c.add += 1,
                Action::Update | Action::Adopt => c.change += 1,
                Action::Replace => c.replace += 1,
                Action::Delete => c.destroy += 1,
            }
        }
        c
    }

    /// Replacements that lose data (domain, stream): `apply` needs `--allow-replace`.
    pub fn data_losing_replacements(&self) -> Vec<&Step> {
        self.steps.iter().filter(|s| s.action == Action::Replace && s.data_loss.is_some()).collect()
    }

    /// Deletions of data-holding resources in an apply (a pipeline, stream, domain or bucket
    /// dropped or renamed in the spec): `apply` needs `--allow-delete`. Destroy is explicit.
    pub fn data_losing_deletes(&self) -> Vec<&Step> {
        if self.mode == Mode::Destroy {
            return vec![];
        }
        self.steps.iter().filter(|s| s.action == Action::Delete && s.data_loss.is_some()).collect()
    }
}

/// A short fingerprint of the part of a resource's live state a plan depends on (or of its
/// absence): see `Live::stable`.
pub fn fingerprint(live: Option<&Live>) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(&live.map(Live::stable)).unwrap_or_default();
    let h = Sha256::digest(text.as_bytes());
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
