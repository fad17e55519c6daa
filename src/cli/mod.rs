//! Command-line interface: clap definitions and the dispatch of each subcommand. Commands that
//! read a spec validate it first and make no AWS call when it is invalid.

mod engine_cmds;
mod local_cmds;
pub mod produce;
mod status_cmd;

pub use produce::ProduceArgs;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::spec::{self, Loaded};

pub type CliResult = Result<ExitCode, Box<dyn Error + Send + Sync>>;

#[derive(Parser, Debug)]
#[command(
    name = "pipectl",
    version,
    about = "Provision and run a Kinesis → Firehose → Lambda → OpenSearch pipeline from one YAML file"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How AWS is reached: the standard credential/region chain, overridable here.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// AWS region (else the spec's `region`, else the standard AWS region chain).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named profile from the AWS config/credentials files.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (e.g. a local moto server).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Reach the search domain's REST endpoint (index templates) at this URL instead of the
    /// endpoint AWS reports: a tunnel or proxy to a domain, or a local stand-in. Requests are
    /// still signed for the domain's region.
    #[arg(long, global = true, env = "PIPECTL_SEARCH_ENDPOINT_URL", value_name = "URL")]
    pub search_endpoint_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a spec without calling AWS.
    Validate(SpecArg),
    /// Show what apply would change, per resource and attribute.
    Plan(engine_cmds::PlanArgs),
    /// Execute the plan (or a saved plan file).
    Apply(engine_cmds::ApplyArgs),
    /// Delete everything the stack owns, in reverse dependency order.
    Destroy(engine_cmds::DestroyArgs),
    /// Build the transform Lambda zip (and the producer binary) reproducibly.
    Bundle(local_cmds::BundleArgs),
    /// Run the transform locally on a Firehose event or a CSV file.
    Invoke(local_cmds::InvokeArgs),
    /// Send CSV rows to a pipeline's stream.
    Produce(produce::ProduceArgs),
    /// Is each pipeline healthy, and if not, where does data stop (read-only)?
    Status(status_cmd::StatusArgs),
    /// Estimate the Kinesis shards a load needs (the article's calculator, with aggregation).
    Estimate(local_cmds::EstimateArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SpecArg {
    /// The stack spec (YAML).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

impl SpecArg {
    /// Loads and validates the spec; prints warnings to stderr.
    pub fn load(&self) -> Result<Loaded, spec::SpecError> {
        let loaded = spec::load(&self.file)?;
        if !loaded.warnings.items.is_empty() {
            eprintln!("{}", loaded.warnings);
        }
        Ok(loaded)
    }
}

pub fn run() -> CliResult {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(a) => {
            let loaded = a.load()?;
            let s = &loaded.spec;
            println!(
                "{}: valid (stack {}, {} pipeline(s), domain {}, bucket {})",
                a.file.display(),
                s.stack,
                s.pipelines.len(),
                s.search.domain,
                s.bucket.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Estimate(a) => local_cmds::estimate(a),
        Command::Invoke(a) => local_cmds::invoke(a),
        Command::Bundle(a) => local_cmds::bundle(a),
        Command::Plan(a) => runtime()?.block_on(engine_cmds::plan(&cli.global, a)),
        Command::Apply(a) => runtime()?.block_on(engine_cmds::apply(&cli.global, a)),
        Command::Destroy(a) => runtime()?.block_on(engine_cmds::destroy(&cli.global, a)),
        Command::Status(a) => runtime()?.block_on(status_cmd::status(&cli.global, a)),
        Command::Produce(a) => runtime()?.block_on(produce::run(&cli.global, a)),
    }
}

/// One line of a command's streamed output on stdout. Unlike `println!` (which panics), a
/// reader that went away is an error the caller returns (see `is_broken_pipe`).
pub fn out_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
}

/// Whether `e` says stdout's reader went away.
pub fn is_broken_pipe(e: &(dyn Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Renders an error and its causes once: `error: outer` then `  caused by: inner` lines.
/// A spec error is already a full report and is printed as is.
pub fn render_error(e: &(dyn Error + 'static)) -> String {
    if let Some(spec::SpecError::Invalid(d)) = e.downcast_ref::<spec::SpecError>() {
        return d.to_string();
    }
    let mut out = format!("error: {e}");
    let mut cur = e.source();
    let mut last = e.to_string();
    while let Some(s) = cur {
        let text = s.to_string();
        // Some SDK errors repeat their cause in their own message; show each text once.
        if !last.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        last = text;
        cur = s.source();
    }
    out
}
