//! `pipectl-producer`: the producer as a standalone binary (built by `pipectl bundle
//! --producer`) to run near the data; same options as `pipectl produce`.

use std::process::ExitCode;

use clap::Parser;
use pipectl::cli::produce::{run, ProduceArgs};
use pipectl::cli::{render_error, runtime, Global};

#[derive(Parser, Debug)]
#[command(name = "pipectl-producer", version, about = "Send CSV rows to a pipectl pipeline's Kinesis stream")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(flatten)]
    args: ProduceArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = runtime().map_err(|e| e.into()).and_then(|rt| rt.block_on(run(&cli.global, cli.args)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", render_error(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
