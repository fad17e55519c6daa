//! `pipectl produce` and the standalone `pipectl-producer`: flags → `producer::Options`, the
//! Kinesis client with its timeouts, the report and the exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{CliResult, Global, SpecArg};
use crate::aws::{sdk_config, Target};
use crate::producer::{self, Options, Stopped};

#[derive(Args, Debug, Clone)]
#[command(after_help = "Delivery is at least once: every row ends delivered, rejected or in the undelivered file. \
Rows can be duplicated only when a request's outcome is unknown (a timeout, a connection lost after sending): \
they are resent and counted in the report as \"possibly duplicated\". On Ctrl-C or SIGTERM the producer stops \
reading, lets calls in flight finish (--drain-s), writes every row not known to be delivered to the \
undelivered file (which can be fed back to produce as it is), prints the report and exits 130.")]
pub struct ProduceArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// The pipeline whose stream and schema to use.
    #[arg(long)]
    pub pipeline: String,
    /// The CSV file (with a header row).
    #[arg(long)]
    pub csv: PathBuf,
    /// Key records by this CSV column (keeps per-key order, also under partial failures)
    /// instead of spreading them evenly.
    #[arg(long, value_name = "COLUMN")]
    pub partition_key: Option<String>,
    /// One row per Kinesis record instead of KPL aggregated records (Firehose de-aggregates
    /// those; other consumers need the KPL's deaggregation).
    #[arg(long)]
    pub no_aggregate: bool,
    /// Encode and count, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// PutRecords calls in flight at once (unkeyed mode; keyed mode uses one per shard).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Retries per record before its rows count as undelivered.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// First retry delay in milliseconds (doubles per retry, with jitter, up to 5 s).
    #[arg(long, default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Time limit of one PutRecords attempt, in milliseconds; a call past it has an unknown outcome.
    #[arg(long, default_value_t = 20_000)]
    pub request_timeout_ms: u64,
    /// After Ctrl-C or a read error, how long calls in flight may take to finish (seconds).
    #[arg(long, default_value_t = 10)]
    pub drain_s: u64,
    /// Where undelivered and rejected rows go (default: <csv>.undelivered.csv; not the input).
    #[arg(long)]
    pub failed_out: Option<PathBuf>,
    /// Never show the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl ProduceArgs {
    pub fn options(&self) -> Options {
        Options {
            csv: self.csv.clone(),
            partition_key: self.partition_key.clone(),
            aggregate: !self.no_aggregate,
            concurrency: self.concurrency,
            max_retries: self.max_retries,
            retry_base: Duration::from_millis(self.retry_base_ms),
            failed_out: self.failed_out.clone(),
            drain: Duration::from_secs(self.drain_s),
            progress: !self.quiet,
        }
    }
}

pub async fn run(global: &Global, args: ProduceArgs) -> CliResult {
    let loaded = args.spec.load()?;
    let spec = loaded.spec;
    let p = spec
        .pipeline(&args.pipeline)
        .ok_or_else(|| format!("no pipeline named {:?} in {}", args.pipeline, args.spec.file.display()))?;
    let client = if args.dry_run {
        None
    } else {
        let target = Target {
            region: global.region.clone(),
            profile: global.profile.clone(),
            endpoint_url: global.endpoint_url.clone(),
            // The producer retries per record itself; an SDK retry of a whole PutRecords
            // would resend records that were already stored.
            max_attempts: Some(1),
            search_endpoint_url: None,
        };
        let cfg = sdk_config(&target, spec.region.as_deref()).await?;
        // A stalled call must not hang the run: it ends after the attempt timeout with an
        // unknown outcome (counted), and its records are retried.
        let timeout = Duration::from_millis(args.request_timeout_ms.max(1));
        let timeouts = aws_sdk_kinesis::config::timeout::TimeoutConfig::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout)
            .build();
        Some(aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::config::Builder::from(&cfg).timeout_config(timeouts).build(),
        ))
    };
    let report =
        producer::produce(client, &p.stream.name, &p.schema, &args.options(), producer::shutdown_signal()).await?;
    println!("{report}");
    let file = report.failed_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    match &report.stopped {
        Some(Stopped::Interrupted) => {
            eprintln!("interrupted: {} row(s) not known to be delivered are in {file}", report.undelivered);
            return Ok(ExitCode::from(130));
        }
        Some(Stopped::ReadError { line, message }) => {
            return Err(format!(
                "the CSV could not be read at line {line}: {message}; {} row(s) not delivered are in {file}",
                report.undelivered + report.rejected
            )
            .into());
        }
        None => {}
    }
    if report.undelivered > 0 || report.rejected > 0 {
        return Err(format!(
            "{} row(s) undelivered and {} row(s) rejected; they are in {file}",
            report.undelivered, report.rejected
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
