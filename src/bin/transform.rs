//! The transform Lambda (`bootstrap` in the bundle): reads the pipeline's schema from the
//! environment once at cold start, then answers Firehose transformation events with
//! `pipectl::transform::handle`. Links no AWS SDK crate.

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pipectl::schema::Compiled;
use pipectl::transform::{handle, schema_from_env, SCHEMA_ENV};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // A missing or malformed schema is a deployment error: fail the init phase loudly
    // rather than answer every record ProcessingFailed.
    let raw = std::env::var(SCHEMA_ENV).map_err(|_| format!("environment variable {SCHEMA_ENV} is not set"))?;
    let schema: &'static Compiled =
        Box::leak(Box::new(schema_from_env(&raw).map_err(|e| format!("{SCHEMA_ENV} is not a valid schema: {e}"))?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisFirehoseEvent>| async move {
        let (response, failures) = handle(schema, &event.payload);
        // One line per failed record: position, id and reason (field and value), never the
        // whole payload.
        for f in &failures {
            eprintln!("{f}");
        }
        eprintln!(
            "processed {} records: {} ok, {} failed",
            response.records.len(),
            response.records.len() - failures.len(),
            failures.len()
        );
        Ok::<KinesisFirehoseResponse, Error>(response)
    }))
    .await
}
