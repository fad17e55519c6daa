//! The transform Lambda (`bootstrap` in the bundle): reads the pipeline's schema from the
//! environment once at cold start, then answers Firehose transformation events with
//! `pipectl::transform::process`. Links no AWS SDK crate.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use pipectl::schema::Compiled;
use pipectl::transform::{process, schema_from_env, LAYOUT_ENV, RESPONSE_LIMIT, SCHEMA_ENV};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // A missing or malformed schema is a deployment error: fail the init phase loudly
    // rather than answer every record ProcessingFailed.
    let raw = std::env::var(SCHEMA_ENV).map_err(|_| format!("environment variable {SCHEMA_ENV} is not set"))?;
    let schema: &'static Compiled =
        Box::leak(Box::new(schema_from_env(&raw).map_err(|e| format!("{SCHEMA_ENV} is not a valid schema: {e}"))?));
    // pipectl deploys the layout beside the schema; if they disagree, something else edited
    // the function, and records would be refused or typed by a layout nobody planned.
    if let Ok(layout) = std::env::var(LAYOUT_ENV) {
        if layout != schema.layout().to_string() {
            return Err(format!("{LAYOUT_ENV}={layout} but the schema's wire layout is {}", schema.layout()).into());
        }
    }
    // The runtime hands the body over as raw JSON (one copy, no typed parse), and takes the
    // response back the same way: `process` parses and writes Firehose's JSON itself.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let outcome = process(schema, event.payload.get().as_bytes(), RESPONSE_LIMIT)?;
        // One line per failed record: position, id and reason (field and value), never the
        // whole payload; then one summary line (with the counts of any record failed to keep
        // the response under Lambda's limit).
        for f in &outcome.failures {
            eprintln!("{f}");
        }
        eprintln!("{outcome}");
        let body = String::from_utf8(outcome.response).map_err(|e| e.utf8_error())?;
        Ok::<Box<RawValue>, Error>(RawValue::from_string(body)?)
    }))
    .await
}
