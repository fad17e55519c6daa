//! `build`: desired state + observed live state → Plan. Pure (no client, no clock): everything
//! it decides is visible in the Plan it returns, and the executor only carries it out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{fingerprint, Action, Conflict, Mode, Plan, Step, FORMAT_VERSION};
use crate::resources::{
    await_container_access, diff, opens_access, owned_by, update_op, Change, Desired, Kind, Live, ResourceId,
};
use crate::spec::STACK_TAG;

/// What was read from AWS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Every resource read: the desired ones and the discovered ones. `None`: absent.
    pub live: BTreeMap<ResourceId, Option<Live>>,
    /// Resources found by their ownership tag (whether or not the spec still names them).
    pub discovered: BTreeSet<ResourceId>,
    /// Containers that would not list what lives in them (a domain refusing to list its index
    /// templates), with why: what the stack dropped from the spec there cannot be found.
    pub unlisted: Vec<(ResourceId, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// Take over same-named resources without the stack's tag.
    pub adopt: bool,
    /// Delete buckets that still hold objects.
    pub purge: bool,
}

pub struct Target<'a> {
    pub stack: &'a str,
    pub region: &'a str,
    pub account: &'a str,
}

/// The attributes of a resource to be created, for display.
fn creation_summary(d: &Desired) -> Vec<Change> {
    if let Some(own) = d.summary() {
        return own;
    }
    let Ok(Value::Object(m)) = serde_json::to_value(d) else { return vec![] };
    let mut out: Vec<Change> = m
        .into_iter()
        .filter(|(k, _)| k != "kind")
        .map(|(k, v)| Change { attr: k, before: Value::Null, after: v, forces_replace: false })
        .collect();
    if let Some(bound) = transform_schema(d).map(|s| crate::transform::response_bound(&s)) {
        out.push(Change::new("response_bound", Value::Null, bound.to_string()));
    }
    out
}

/// The compiled schema a transform function is deployed with (see transform::SCHEMA_ENV).
fn transform_schema(d: &Desired) -> Option<crate::schema::Compiled> {
    let Desired::LambdaFunction(f) = d else { return None };
    crate::transform::schema_from_env(f.env.get(crate::transform::SCHEMA_ENV)?).ok()
}

/// What an update of a transform function does to records already in its stream, when its
/// schema's wire layout changes (README, "Schema changes while records are in flight").
fn layout_change(d: &Desired, live: &Live) -> Option<String> {
    let (Some(new), Live::LambdaFunction(l)) = (transform_schema(d), live) else { return None };
    let old = crate::transform::schema_from_env(l.env.get(crate::transform::SCHEMA_ENV)?).ok()?;
    let header = l.env.contains_key(crate::transform::LAYOUT_ENV);
    (old.layout() != new.layout())
        .then(|| crate::transform::layout_change_note(&old.layout().to_string(), &new.layout().to_string(), header))
}

pub fn build(t: &Target<'_>, desired: &[Desired], observed: &Observed, opts: Options) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    let mut conflicts = Vec::new();
    let mut left_alone = Vec::new();
    let mut kept = Vec::new();
    let mut warnings = Vec::new();
    let wanted: BTreeSet<ResourceId> = desired.iter().map(Desired::id).collect();
    let live_of = |id: &ResourceId| observed.live.get(id).and_then(Option::as_ref);
    // Containers whose access policy this plan changes (see `contained`).
    let mut opened: BTreeSet<ResourceId> = BTreeSet::new();

    match opts.mode {
        Mode::Apply => {
            // Containers first (a kind's rank orders it after what it lives in), so that what
            // lives in a created or replaced resource is created in the new one.
            let mut in_order: Vec<&Desired> = desired.iter().collect();
            in_order.sort_by_key(|d| d.id().kind.rank());
            let mut renewed: BTreeSet<ResourceId> = BTreeSet::new();
            for d in in_order {
                let id = d.id();
                let container_renewed = d.container().is_some_and(|c| renewed.contains(&c));
                let live = if container_renewed { None } else { live_of(&id) };
                let Some(live) = live else {
                    renewed.insert(id.clone());
                    steps.push(Step {
                        id,
                        action: Action::Create,
                        depends_on: vec![],
                        changes: creation_summary(d),
                        data_loss: None,
                        deployment: None,
                        note: None,
                        require_owner: None,
                        ops: vec![d.create_op()],
                    });
                    continue;
                };
                if let Some(why) = live.blocker() {
                    // A template the domain will not show us, in a domain whose access policy this
                    // plan changes first (to admit us): it is put after that change, created
                    // only if the name is free or replacing only the stack's own. Otherwise a
                    // conflict.
                    if d.container().is_some_and(|c| opened.contains(&c)) {
                        let container = d.container().map(|c| c.to_string()).unwrap_or_default();
                        steps.push(Step {
                            id: id.clone(),
                            action: Action::Update,
                            depends_on: vec![],
                            changes: vec![Change::new("readable", why, format!("after {container}'s access policy change"))],
                            data_loss: None,
                            deployment: None,
                            note: Some(format!(
                                "cannot be read now; it is written after {container}'s access policy change in this plan, and only if it is absent or this stack's"
                            )),
                            require_owner: None,
                            ops: vec![d.create_op()],
                        });
                        continue;
                    }
                    conflicts.push(Conflict { id: id.clone(), message: format!("{id}: {why}") });
                    continue;
                }
                let owned = owned_by(live.tags(), t.stack);
                if !owned && !opts.adopt {
                    let owner = live
                        .tags()
                        .get(STACK_TAG)
                        .map(|s| format!("owned by stack {s:?}"))
                        .unwrap_or_else(|| "not managed by pipectl".into());
                    conflicts.push(Conflict {
                        id: id.clone(),
                        message: format!("{id} exists but is {owner} (no tag {STACK_TAG}={}); pipectl will not take it over (apply --adopt does, explicitly)", t.stack),
                    });
                    continue;
                }
                let changes = diff(d, live);
                if changes.is_empty() {
                    continue;
                }
                let replace = changes.iter().any(|c| c.forces_replace);
                // A resource replaced only because AWS failed it (a delivery stream that never
                // became ACTIVE, a function Lambda could not set up, a domain already being
                // deleted) holds nothing that the replacement loses.
                let failed_only = changes.iter().filter(|c| c.forces_replace).all(|c| is_health(&c.attr));
                if replace {
                    renewed.insert(id.clone());
                } else if opens_access(&id, &changes) {
                    opened.insert(id.clone());
                }
                let (action, ops, data_loss) = if replace {
                    (
                        Action::Replace,
                        vec![live.delete_op(&id, false), d.create_op()],
                        id.kind.data_loss().filter(|_| !failed_only).map(str::to_string),
                    )
                } else {
                    (
                        if owned { Action::Update } else { Action::Adopt },
                        vec![update_op(d, live)],
                        layout_change(d, live),
                    )
                };
                // An adoption takes over an unowned resource on purpose; everything else may only
                // touch what is still ours when the step runs.
                let require_owner = (action != Action::Adopt).then(|| t.stack.to_string());
                steps.push(Step {
                    id,
                    action,
                    depends_on: vec![],
                    changes,
                    data_loss,
                    deployment: None,
                    note: None,
                    require_owner,
                    ops,
                });
            }
            for (container, why) in &observed.unlisted {
                warnings.push(Conflict {
                    id: container.clone(),
                    message: format!(
                        "{container} would not list what lives in it ({why}): anything of this stack there that the spec no longer names cannot be found, and is not deleted"
                    ),
                });
            }
            for id in &observed.discovered {
                if wanted.contains(id) {
                    continue;
                }
                // The Tagging API may lag behind a tag removed since: the live tags decide.
                let Some(live) = live_of(id).filter(|l| owned_by(l.tags(), t.stack)) else { continue };
                // A bucket dropped from the spec that still holds failed documents is kept (a
                // delete would fail on every apply); `destroy --purge` removes it.
                if let Live::S3Bucket(b) = live {
                    if b.objects > 0 {
                        kept.push(Conflict {
                            id: id.clone(),
                            message: format!(
                                "{id} is no longer in the spec but holds {}{} object(s) (failed documents): kept; inspect them, then delete it yourself or run destroy --purge",
                                b.objects,
                                if b.objects_truncated { "+" } else { "" }
                            ),
                        });
                        continue;
                    }
                }
                steps.push(delete_step(t.stack, id, live, opts.purge));
            }
        }
        Mode::Destroy => {
            let mut ids: BTreeSet<ResourceId> = observed.discovered.clone();
            for id in &wanted {
                match live_of(id) {
                    Some(live) if owned_by(live.tags(), t.stack) => {
                        ids.insert(id.clone());
                    }
                    Some(_) => left_alone.push(id.clone()),
                    None => {}
                }
            }
            for id in &ids {
                if let Some(live) = live_of(id).filter(|l| owned_by(l.tags(), t.stack)) {
                    steps.push(delete_step(t.stack, id, live, opts.purge));
                }
            }
        }
    }

    contained(&mut steps, desired, &opened);
    order(&mut steps, desired);
    Plan {
        format_version: FORMAT_VERSION,
        stack: t.stack.to_string(),
        mode: opts.mode,
        region: t.region.to_string(),
        account: t.account.to_string(),
        steps,
        conflicts,
        left_alone,
        kept,
        warnings,
        observed: observed.live.iter().map(|(id, l)| (id.to_string(), fingerprint(l.as_ref()))).collect(),
    }
}

/// What lives inside another resource (`ResourceId::container`) and its container in one plan.
/// A container deleted or replaced here takes what lives in it along: no separate delete (which
/// would need the domain to admit us, and races the replacement), and the container's step
/// names them, with what the spec puts in it (a destroy does not read inside a domain it
/// deletes). What is put into a container whose access policy this plan changes first (`opened`)
/// waits, bounded, for that change to admit it.
fn contained(steps: &mut Vec<Step>, desired: &[Desired], opened: &BTreeSet<ResourceId>) {
    let emptied: BTreeSet<ResourceId> =
        steps.iter().filter(|s| matches!(s.action, Action::Delete | Action::Replace)).map(|s| s.id.clone()).collect();
    let mut gone_with: BTreeMap<ResourceId, BTreeSet<String>> = BTreeMap::new();
    steps.retain(|s| match s.id.container().filter(|c| s.action == Action::Delete && emptied.contains(c)) {
        Some(c) => {
            gone_with.entry(c).or_default().insert(s.id.to_string());
            false
        }
        None => true,
    });
    let planned: BTreeSet<ResourceId> = steps.iter().map(|s| s.id.clone()).collect();
    for d in desired {
        let id = d.id();
        if let Some(c) = id.container().filter(|c| emptied.contains(c) && !planned.contains(&id)) {
            gone_with.entry(c).or_default().insert(id.to_string());
        }
    }
    for s in steps.iter_mut() {
        if let Some(inside) = gone_with.get(&s.id) {
            let what = inside.iter().cloned().collect::<Vec<_>>().join(", ");
            s.note = Some(format!("what lives in it goes with it: {what}"));
        }
        if s.id.container().is_some_and(|c| opened.contains(&c)) {
            s.ops.iter_mut().for_each(await_container_access);
        }
    }
}

/// The attributes a kind's diff uses to report a failed resource (see `Live::problem` of
/// delivery, function and domain).
fn is_health(attr: &str) -> bool {
    matches!(attr, "status" | "state")
}

fn delete_step(stack: &str, id: &ResourceId, live: &Live, purge: bool) -> Step {
    Step {
        require_owner: Some(stack.to_string()),
        deployment: None,
        note: None,
        id: id.clone(),
        action: Action::Delete,
        depends_on: vec![],
        changes: vec![],
        data_loss: live.loss_on_delete(id.kind, purge),
        ops: vec![live.delete_op(id, purge)],
    }
}

/// Orders steps and fills `depends_on`: creations and updates after what they refer to;
/// deletions before what refers... after everything of a higher rank is deleted.
fn order(steps: &mut [Step], desired: &[Desired]) {
    let requires: BTreeMap<ResourceId, Vec<ResourceId>> = desired.iter().map(|d| (d.id(), d.requires())).collect();
    let building: BTreeSet<ResourceId> =
        steps.iter().filter(|s| s.action != Action::Delete).map(|s| s.id.clone()).collect();
    let deleting: Vec<(Kind, ResourceId)> = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Delete | Action::Replace))
        .map(|s| (s.id.kind, s.id.clone()))
        .collect();
    for s in steps.iter_mut() {
        s.depends_on = if s.action == Action::Delete {
            deleting
                .iter()
                .filter(|(k, id)| k.rank() > s.id.kind.rank() && id != &s.id)
                .map(|(_, id)| id.clone())
                .collect()
        } else {
            requires
                .get(&s.id)
                .map(|r| r.iter().filter(|id| building.contains(*id)).cloned().collect())
                .unwrap_or_default()
        };
    }
    steps.sort_by(|a, b| {
        let key = |s: &Step| {
            if s.action == Action::Delete {
                (1u8, 10 - s.id.kind.rank(), s.id.clone())
            } else {
                (0u8, s.id.kind.rank(), s.id.clone())
            }
        };
        key(a).cmp(&key(b))
    });
}

#[cfg(test)]
mod tests;
