//! The `pipectl` binary: parses arguments, runs the command, prints an error chain once and
//! maps the outcome to an exit status (0 ok, 1 error, 2 changes pending with --detailed-exitcode).

use std::process::ExitCode;

fn main() -> ExitCode {
    match pipectl::cli::run() {
        Ok(code) => code,
        // The reader went away (`pipectl invoke … --json | head`): a normal end for a command
        // whose output is being read, as for any Unix filter.
        Err(e) if pipectl::cli::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", pipectl::cli::render_error(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
