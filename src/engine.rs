//! The two impure halves around `plan::build`: `observe` reads live AWS (in parallel, never
//! mutating), `execute` carries out a Plan step by step in dependency order, independent steps
//! in parallel. The executor decides nothing: it runs each step's operations as written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError};
use crate::events::{Event, Observer};
use crate::plan::build::Observed;
use crate::plan::{fingerprint, Plan};
use crate::resources::{self, Kind, ResourceId};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("reading {id}")]
    Read {
        id: String,
        #[source]
        source: AwsError,
    },
    #[error("looking for resources tagged as owned by stack {stack}")]
    Discover {
        stack: String,
        #[source]
        source: AwsError,
    },
}

type Reads = JoinSet<(ResourceId, Result<Option<resources::Live>, AwsError>)>;

/// Starts reading `id` in the background.
fn spawn_read(reads: &mut Reads, aws: &Aws, id: &ResourceId) {
    let (aws, id) = (aws.clone(), id.clone());
    reads.spawn(async move {
        let r = resources::read(&aws, &id).await;
        (id, r)
    });
}

/// Waits for every started read; the first failure is the answer.
async fn collect(mut reads: Reads) -> Result<BTreeMap<ResourceId, Option<resources::Live>>, EngineError> {
    let mut live = BTreeMap::new();
    while let Some(j) = reads.join_next().await {
        let (id, r) = j.expect("read task does not panic");
        let l = r.map_err(|source| EngineError::Read { id: id.to_string(), source })?;
        live.insert(id, l);
    }
    Ok(live)
}

/// Reads every id in `ids` and, by tag, every resource the stack owns; all in parallel.
/// `inside`: also what lives inside other resources (index templates in a domain); a destroy,
/// which deletes the containers, does not read inside them (a domain that does not admit us
/// cannot block it).
pub async fn observe(aws: &Aws, stack: &str, ids: &[ResourceId], inside: bool) -> Result<Observed, EngineError> {
    let discovery = {
        let (aws, stack) = (aws.clone(), stack.to_string());
        tokio::spawn(async move { resources::discover(&aws, &stack, inside).await })
    };
    let ids: Vec<ResourceId> = ids.iter().filter(|id| inside || id.container().is_none()).cloned().collect();
    let ids = ids.as_slice();
    let mut observed = Observed::default();
    let mut reads = Reads::new();
    for id in ids {
        spawn_read(&mut reads, aws, id);
    }
    let found = discovery
        .await
        .expect("discovery task does not panic")
        .map_err(|source| EngineError::Discover { stack: stack.to_string(), source })?;
    observed.discovered.extend(found.ids);
    observed.unlisted = found.unlisted;
    let wanted: BTreeSet<&ResourceId> = ids.iter().collect();
    for id in observed.discovered.iter().filter(|id| !wanted.contains(id)) {
        spawn_read(&mut reads, aws, id);
    }
    observed.live = collect(reads).await?;
    Ok(observed)
}

/// Asks AWS how each update will be carried out (dry runs, which change nothing) and notes it
/// on the step, for display: a domain change that runs as a blue/green deployment takes hours
/// and doubles the nodes meanwhile. The plan's operations are not touched.
///
/// It also checks each created or changed resource against the limits AWS publishes for it
/// (a domain's instance type: volume size, node count); a violation is a conflict, so apply
/// refuses before any change instead of failing half way.
pub async fn assess(aws: &Aws, plan: &mut Plan, desired: &[resources::Desired]) -> Result<(), EngineError> {
    for d in desired {
        let id = d.id();
        if !plan.steps.iter().any(|s| s.id == id && s.action != crate::plan::Action::Delete) {
            continue;
        }
        let problems = resources::limit_violations(aws, d)
            .await
            .map_err(|source| EngineError::Read { id: id.to_string(), source })?;
        for p in problems {
            plan.conflicts.push(crate::plan::Conflict { id: id.clone(), message: format!("{id}: {p}") });
        }
    }
    // Steps whose container is created or replaced: what they put goes into a new container,
    // so nothing read from the old one says anything about it.
    let renewed: BTreeSet<ResourceId> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, crate::plan::Action::Create | crate::plan::Action::Replace))
        .map(|s| s.id.clone())
        .collect();
    for step in &mut plan.steps {
        for op in &step.ops {
            let found = resources::deployment(aws, op)
                .await
                .map_err(|source| EngineError::Read { id: step.id.to_string(), source })?;
            if let Some((kind, message)) = found {
                step.deployment = Some(crate::plan::Deployment { kind, message });
            }
            if step.id.container().is_some_and(|c| renewed.contains(&c)) {
                continue;
            }
            // Display only: a read that fails says so instead of failing the plan.
            let note = resources::note(aws, op)
                .await
                .unwrap_or_else(|e| Some(format!("could not check what this change leaves as it is ({e})")));
            if let Some(n) = note {
                step.note = Some(match step.note.take() {
                    Some(before) => format!("{before}; {n}"),
                    None => n,
                });
            }
        }
    }
    Ok(())
}

/// The ids whose live state no longer matches the fingerprints recorded in `plan` (read in
/// parallel, like `observe`).
pub async fn moved_since(aws: &Aws, plan: &Plan) -> Result<Vec<String>, EngineError> {
    let mut reads = Reads::new();
    for id in plan.observed.keys().filter_map(|t| parse_id(t)) {
        spawn_read(&mut reads, aws, &id);
    }
    let live = collect(reads).await?;
    Ok(live
        .iter()
        .filter(|(id, l)| plan.observed.get(&id.to_string()) != Some(&fingerprint(l.as_ref())))
        .map(|(id, _)| id.to_string())
        .collect())
}

fn parse_id(s: &str) -> Option<ResourceId> {
    let (kind, name) = s.split_once('.')?;
    let kind = Kind::ALL.into_iter().find(|k| k.label() == kind)?;
    Some(ResourceId::new(kind, name))
}

/// The ownership check a step asks for, right before its operations: the tag is read again.
async fn still_owned(aws: &Aws, id: &ResourceId, stack: &str) -> Result<(), AwsError> {
    let tags = resources::read_tags(aws, id).await?;
    if resources::owned_by(&tags, stack) {
        return Ok(());
    }
    let now = match tags.get(crate::spec::STACK_TAG) {
        Some(other) => format!("now tagged for stack {other:?}"),
        None => format!("no longer tagged {}={stack}", crate::spec::STACK_TAG),
    };
    Err(AwsError::local(
        "ownership check",
        &id.to_string(),
        "NotOwned",
        format!("{now} since the plan was made; refusing to touch it (run plan again)"),
    ))
}

/// What happened to each step.
#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<ResourceId>,
    pub failed: Vec<(ResourceId, AwsError)>,
    pub skipped: Vec<ResourceId>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

/// Executes `plan`: a step starts when every step it depends on has finished; steps whose
/// dependencies failed are skipped; independent steps run in parallel.
pub async fn execute(aws: &Aws, plan: &Plan, obs: Arc<dyn Observer>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: BTreeMap<usize, &crate::plan::Step> = plan.steps.iter().enumerate().collect();
    let mut finished: BTreeSet<ResourceId> = BTreeSet::new();
    let mut broken: BTreeSet<ResourceId> = BTreeSet::new();
    let in_plan: BTreeSet<&ResourceId> = plan.steps.iter().map(|s| &s.id).collect();
    let mut running = JoinSet::new();
    loop {
        // Skip what can never run, start what can.
        let mut progressed = true;
        while progressed {
            progressed = false;
            let keys: Vec<usize> = pending.keys().copied().collect();
            for i in keys {
                let step = pending[&i];
                let deps: Vec<&ResourceId> = step.depends_on.iter().filter(|d| in_plan.contains(d)).collect();
                if let Some(bad) = deps.iter().find(|d| broken.contains(**d)) {
                    obs.event(Event::Skipped { id: step.id.to_string(), because: format!("{bad} failed") });
                    broken.insert(step.id.clone());
                    outcome.skipped.push(step.id.clone());
                    pending.remove(&i);
                    progressed = true;
                } else if deps.iter().all(|d| finished.contains(*d)) {
                    pending.remove(&i);
                    let (aws, obs, step) = (aws.clone(), obs.clone(), step.clone());
                    running.spawn(async move {
                        let id = step.id.to_string();
                        let ctx = Ctx { aws: &aws, obs: obs.as_ref(), id: &id };
                        obs.event(Event::Started {
                            id: id.clone(),
                            action: format!("{:?}", step.action).to_lowercase(),
                        });
                        let start = Instant::now();
                        let mut result = match &step.require_owner {
                            Some(stack) => still_owned(&aws, &step.id, stack).await,
                            None => Ok(()),
                        };
                        for op in &step.ops {
                            if result.is_err() {
                                break;
                            }
                            result = resources::execute(&ctx, op).await;
                        }
                        match &result {
                            Ok(()) => obs.event(Event::Finished { id: id.clone(), elapsed: start.elapsed() }),
                            Err(e) => obs.event(Event::Failed { id: id.clone(), error: e.to_string() }),
                        }
                        (step.id, result)
                    });
                    progressed = true;
                }
            }
        }
        let Some(j) = running.join_next().await else { break };
        let (id, result) = j.expect("step task does not panic");
        match result {
            Ok(()) => {
                finished.insert(id.clone());
                outcome.done.push(id);
            }
            Err(e) => {
                broken.insert(id.clone());
                outcome.failed.push((id, e));
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back() {
        assert_eq!(parse_id("kinesis_stream.DataStream"), Some(ResourceId::new(Kind::KinesisStream, "DataStream")));
        assert_eq!(parse_id("s3_bucket.a.b.c"), Some(ResourceId::new(Kind::S3Bucket, "a.b.c")));
        assert_eq!(parse_id("nope.x"), None);
    }
}
