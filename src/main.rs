//! The `pipectl` binary: parses arguments, runs the command, prints an error chain once and
//! maps the outcome to an exit status (0 ok, 1 error, 2 changes pending with --detailed-exitcode).

use std::process::ExitCode;

fn main() -> ExitCode {
    match pipectl::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", pipectl::cli::render_error(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
