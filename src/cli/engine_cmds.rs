//! `plan`, `apply`, `destroy`: one shared preparation (validate the spec, connect, resolve,
//! observe, build), then render, or confirm and execute the very Plan that was rendered.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::{CliResult, Global, SpecArg};
use crate::aws::{Aws, Target};
use crate::engine;
use crate::events::{Event, Observer};
use crate::model::{resolve, Context};
use crate::plan::build::{build, Options, Target as PlanTarget};
use crate::plan::{render, Mode, Plan, FORMAT_VERSION};
use crate::resources::Desired;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// Print the plan as JSON (the same value apply executes).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on errors.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan to FILE; `pipectl apply FILE` executes exactly it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan the destruction of everything the stack owns.
    #[arg(long)]
    pub destroy: bool,
    /// Plan to take over same-named resources without the stack's tag.
    #[arg(long)]
    pub adopt: bool,
    /// Directory with transform.zip (default: dist/ in the sources; built when missing).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; applied only if the live state has not moved since.
    pub plan_file: Option<PathBuf>,
    /// The stack spec (YAML), when not applying a saved plan.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        required_unless_present = "plan_file",
        conflicts_with = "plan_file"
    )]
    pub file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Take over same-named resources that lack the stack's tag.
    #[arg(long)]
    pub adopt: bool,
    /// Allow replacing a domain or a stream (their data is lost).
    #[arg(long)]
    pub allow_replace: bool,
    /// Allow deleting data-holding resources the spec no longer names (stream, domain,
    /// delivery stream, bucket): their data is lost.
    #[arg(long)]
    pub allow_delete: bool,
    /// Directory with transform.zip (default: dist/ in the sources; built when missing).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    #[arg(long)]
    pub yes: bool,
    /// Also delete the bucket when it still holds failed documents.
    #[arg(long)]
    pub purge: bool,
}

/// Prints progress events on stderr with the elapsed time.
struct Printer {
    start: Instant,
}

impl Observer for Printer {
    fn event(&self, e: Event) {
        let t = self.start.elapsed().as_secs();
        let line = match e {
            Event::Started { id, action } => format!("{id}: {action}…"),
            Event::Waiting { id, what, status, elapsed } => {
                format!("{id}: waiting for {what} ({status}, {}s elapsed)", elapsed.as_secs())
            }
            Event::Retrying { id, what, error, attempt, delay } => {
                format!("{id}: {what} will be retried in {:.1}s (attempt {attempt}): {error}", delay.as_secs_f64())
            }
            Event::Note { id, message } => format!("{id}: {message}"),
            Event::Finished { id, elapsed } => format!("{id}: done in {:.1}s", elapsed.as_secs_f64()),
            Event::Failed { id, error } => format!("{id}: FAILED: {error}"),
            Event::Skipped { id, because } => format!("{id}: skipped ({because})"),
        };
        eprintln!("[{t:>4}s] {line}");
    }
}

pub(super) fn target(g: &Global) -> Target {
    Target {
        region: g.region.clone(),
        profile: g.profile.clone(),
        endpoint_url: g.endpoint_url.clone(),
        max_attempts: None,
        search_endpoint_url: g.search_endpoint_url.clone(),
    }
}

struct Prepared {
    stack: String,
    aws: Aws,
    account: String,
    desired: Vec<Desired>,
}

/// Validates the spec (before any AWS call), connects, and resolves the desired state.
async fn prepare(
    g: &Global,
    spec: &SpecArg,
    artifacts: Option<PathBuf>,
    need_code: bool,
) -> Result<Prepared, Box<dyn std::error::Error + Send + Sync>> {
    let loaded = spec.load()?;
    let s = loaded.spec;
    let (code_sha256, zip_path) = if need_code {
        let dir = artifacts.unwrap_or_else(crate::bundle::default_out_dir);
        let zip = dir.join(crate::bundle::ZIP_NAME);
        if !zip.exists() {
            eprintln!("{} not found: building the transform bundle", zip.display());
            crate::bundle::bundle(&dir, false)?;
        }
        let bytes = std::fs::read(&zip).map_err(|e| format!("reading {}: {e}", zip.display()))?;
        (crate::bundle::code_sha256(&bytes), zip.display().to_string())
    } else {
        (String::new(), String::new())
    };
    let aws = Aws::connect(&target(g), s.region.as_deref()).await?;
    let account = aws.account_id().await?;
    let cx = Context { account: account.clone(), region: aws.region.clone(), code_sha256, zip_path };
    let desired = resolve(&s, &cx);
    Ok(Prepared { stack: s.stack.clone(), aws, account, desired })
}

async fn make_plan(p: &Prepared, opts: Options) -> Result<Plan, engine::EngineError> {
    let ids: Vec<_> = p.desired.iter().map(Desired::id).collect();
    let observed = engine::observe(&p.aws, &p.stack, &ids, opts.mode == Mode::Apply).await?;
    let t = PlanTarget { stack: &p.stack, region: &p.aws.region, account: &p.account };
    let mut plan = build(&t, &p.desired, &observed, opts);
    engine::assess(&p.aws, &mut plan, &p.desired).await?;
    Ok(plan)
}

fn stats(aws: &Aws, start: Instant) {
    eprintln!("API calls: {}, wall time: {:.2}s", aws.calls.get(), start.elapsed().as_secs_f64());
}

pub async fn plan(g: &Global, a: PlanArgs) -> CliResult {
    let start = Instant::now();
    let p = prepare(g, &a.spec, a.artifacts.clone(), !a.destroy).await?;
    let mode = if a.destroy { Mode::Destroy } else { Mode::Apply };
    let plan = make_plan(&p, Options { mode, adopt: a.adopt, purge: false }).await?;
    if a.json {
        println!("{}", render::json(&plan));
    } else {
        println!("{}", render::text(&plan));
    }
    if let Some(out) = &a.out {
        std::fs::write(out, render::json(&plan)).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!("plan saved to {}; run `pipectl apply {}` to execute exactly it", out.display(), out.display());
    }
    stats(&p.aws, start);
    if !plan.conflicts.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(if a.detailed_exitcode && !plan.is_empty() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Asks on a terminal; refuses without one unless `--yes`.
fn confirm(yes: bool, question: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err("refusing to change anything without confirmation: no terminal to ask on; pass --yes".into());
    }
    eprint!("{question} Only 'yes' is accepted: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

async fn run(aws: &Aws, plan: &Plan, start: Instant) -> CliResult {
    let obs: Arc<dyn Observer> = Arc::new(Printer { start });
    let outcome = engine::execute(aws, plan, obs).await;
    let verb = if plan.mode == Mode::Destroy { "Destroy" } else { "Apply" };
    eprintln!(
        "{verb} {}: {} step(s) done, {} failed, {} skipped.",
        if outcome.ok() { "complete" } else { "incomplete" },
        outcome.done.len(),
        outcome.failed.len(),
        outcome.skipped.len()
    );
    stats(aws, start);
    if outcome.ok() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut msg = String::new();
    for (id, e) in &outcome.failed {
        msg.push_str(&format!("\n  {id}: {e}"));
    }
    for id in &outcome.skipped {
        msg.push_str(&format!("\n  {id}: not attempted (a step it depends on failed)"));
    }
    Err(format!("{verb} did not finish; run `pipectl plan` to see what is left:{msg}").into())
}

fn check_applicable(
    plan: &Plan,
    allow_replace: bool,
    allow_delete: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !plan.conflicts.is_empty() {
        let list: Vec<String> = plan.conflicts.iter().map(|c| format!("  {}", c.message)).collect();
        return Err(format!(
            "refusing to apply: {} conflict(s), nothing was changed:\n{}",
            plan.conflicts.len(),
            list.join("\n")
        )
        .into());
    }
    let losing = plan.data_losing_replacements();
    if !losing.is_empty() && !allow_replace {
        let list: Vec<String> =
            losing.iter().map(|s| format!("  {} (loses {})", s.id, s.data_loss.as_deref().unwrap_or(""))).collect();
        return Err(
            format!("refusing to replace without --allow-replace, nothing was changed:\n{}", list.join("\n")).into()
        );
    }
    let deleting = plan.data_losing_deletes();
    if !deleting.is_empty() && !allow_delete {
        let list: Vec<String> =
            deleting.iter().map(|s| format!("  {} (loses {})", s.id, s.data_loss.as_deref().unwrap_or(""))).collect();
        return Err(format!(
            "refusing to delete what the spec no longer names without --allow-delete, nothing was changed:\n{}",
            list.join("\n")
        )
        .into());
    }
    Ok(())
}

pub async fn apply(g: &Global, a: ApplyArgs) -> CliResult {
    let start = Instant::now();
    let (aws, plan) = if let Some(path) = &a.plan_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading plan {}: {e}", path.display()))?;
        let plan: Plan =
            serde_json::from_str(&text).map_err(|e| format!("{} is not a pipectl plan: {e}", path.display()))?;
        if plan.format_version != FORMAT_VERSION {
            return Err(format!(
                "{} has plan format {}, this pipectl reads {FORMAT_VERSION}",
                path.display(),
                plan.format_version
            )
            .into());
        }
        let mut t = target(g);
        t.region = Some(plan.region.clone());
        let aws = Aws::connect(&t, None).await?;
        let account = aws.account_id().await?;
        if account != plan.account {
            return Err(format!("the plan is for account {}, the credentials are for {account}", plan.account).into());
        }
        let moved = engine::moved_since(&aws, &plan).await?;
        if !moved.is_empty() {
            return Err(format!(
                "refusing to apply {}: the live state changed since it was made ({}); run plan again",
                path.display(),
                moved.join(", ")
            )
            .into());
        }
        (aws, plan)
    } else {
        let spec = SpecArg { file: a.file.clone().expect("clap requires -f without a plan file") };
        let p = prepare(g, &spec, a.artifacts.clone(), true).await?;
        let plan = make_plan(&p, Options { mode: Mode::Apply, adopt: a.adopt, purge: false }).await?;
        (p.aws, plan)
    };
    println!("{}", render::text(&plan));
    check_applicable(&plan, a.allow_replace, a.allow_delete)?;
    if plan.is_empty() {
        stats(&aws, start);
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(a.yes, "Apply this plan?")? {
        return Err("apply cancelled; nothing was changed".into());
    }
    run(&aws, &plan, start).await
}

pub async fn destroy(g: &Global, a: DestroyArgs) -> CliResult {
    let start = Instant::now();
    let p = prepare(g, &a.spec, None, false).await?;
    let plan = make_plan(&p, Options { mode: Mode::Destroy, adopt: false, purge: a.purge }).await?;
    println!("{}", render::text(&plan));
    if plan.is_empty() {
        stats(&p.aws, start);
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(a.yes, &format!("Delete everything stack {} owns?", p.stack))? {
        return Err("destroy cancelled; nothing was deleted".into());
    }
    run(&p.aws, &plan, start).await
}
