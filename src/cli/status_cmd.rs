//! `pipectl status`: validates the spec (before any AWS call), reads each selected pipeline's
//! metrics and resources through `status::read`, and prints `status::render`'s screen or JSON;
//! `--watch` redraws it. Exit 0 healthy (or no data), 2 degraded, 1 error.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::{CliResult, Global, SpecArg};
use crate::aws::Aws;
use crate::model::firehose_role_name;
use crate::status::metrics::Window;
use crate::status::render::{self, Report};
use crate::status::{read, verdict};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// Only this pipeline (default: every pipeline of the stack).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// The window looked at, ending now: N followed by s, m, h or d (60s to 15d).
    #[arg(long, default_value = "1h", value_parser = parse_since)]
    pub since: Since,
    /// Print the facts and verdicts as JSON.
    #[arg(long)]
    pub json: bool,
    /// Redraw every `--every` seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch (CloudWatch's metrics are per minute).
    #[arg(long, default_value_t = 60, value_name = "SECS", requires = "watch")]
    pub every: u64,
}

#[derive(Debug, Clone)]
pub struct Since {
    pub text: String,
    pub secs: i64,
}

/// CloudWatch keeps 1-minute datapoints for 15 days (CloudWatch concepts, "Metrics retention").
fn parse_since(s: &str) -> Result<Since, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().map_err(|_| format!("{s:?}: expected N followed by s, m, h or d (e.g. 1h)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d (e.g. 30m, 1h, 2d)")),
    };
    let secs = n.saturating_mul(mult);
    if !(60..=15 * 86_400).contains(&secs) {
        return Err(format!("{s:?}: the window must be between 60s and 15d"));
    }
    Ok(Since { text: s.to_string(), secs })
}

async fn report(
    aws: &Aws,
    spec: &crate::spec::Spec,
    a: &StatusArgs,
    account: &str,
) -> Result<Report, crate::aws::AwsError> {
    let pipelines = read::select(spec, a.pipeline.as_deref()).expect("selection checked before connecting");
    // The window ends at the next whole minute, so the interval in progress is counted
    // (CloudWatch takes a future EndTime; per-minute datapoints are stamped at the minute).
    let end = (chrono::Utc::now().timestamp() / 60 + 1) * 60;
    let w = Window::new(end, a.since.secs);
    let facts = read::facts(aws, spec, &pipelines, account, &w).await?;
    let label = verdict::window_label(a.since.secs);
    let role = firehose_role_name(&spec.stack);
    Ok(Report {
        stack: spec.stack.clone(),
        region: aws.region.clone(),
        window: w,
        since: a.since.text.clone(),
        pipelines: facts
            .into_iter()
            .map(|f| {
                let v = verdict::verdict(&f, &label, &role);
                (f, v)
            })
            .collect(),
    })
}

pub async fn status(g: &Global, a: StatusArgs) -> CliResult {
    let start = Instant::now();
    let spec = a.spec.load()?.spec;
    read::select(&spec, a.pipeline.as_deref())?;
    let aws = Aws::connect(&super::engine_cmds::target(g), spec.region.as_deref()).await?;
    let account = aws.account_id().await?;
    loop {
        let r = report(&aws, &spec, &a, &account).await?;
        let shown = if a.json { render::json(&r) } else { render::text(&r) };
        if a.watch && std::io::stdout().is_terminal() {
            print!("\x1b[H\x1b[2J"); // home, clear: redraw in place
        }
        println!("{shown}");
        eprintln!("API calls: {}, wall time: {:.2}s", aws.calls.get(), start.elapsed().as_secs_f64());
        if !a.watch {
            return Ok(ExitCode::from(r.exit_code()));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(a.every.max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::from(r.exit_code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parsing() {
        assert_eq!(parse_since("1h").unwrap().secs, 3600);
        assert_eq!(parse_since("90m").unwrap().secs, 5400);
        assert_eq!(parse_since("2d").unwrap().secs, 172_800);
        assert!(parse_since("30s").is_err());
        assert!(parse_since("16d").is_err());
        assert!(parse_since("1w").is_err());
        assert!(parse_since("h").is_err());
    }
}
