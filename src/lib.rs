//! pipectl: provision and run a Kinesis → Firehose → Lambda → OpenSearch pipeline from one
//! declarative YAML file.
//!
//! Layers (each module's header states its one job):
//! - `schema`, `transform`: pure record logic shared with the Lambda `bootstrap`.
//! - `spec`: the YAML contract and its validation with file/line/column diagnostics.
//! - `model` (spec → desired), `resources` (one file per kind), `plan` (pure build + render),
//!   `engine` (observe live AWS, execute a plan), `events` (progress).
//! - `aws`: SDK clients, error classification, bounded waits and retries.
//! - `status` (CloudWatch metrics + resources → a verdict per pipeline).
//! - `bundle`, `producer`, `estimate`, `cli`.

pub mod schema;
#[cfg(any(feature = "cli", feature = "lambda"))]
pub mod transform;

#[cfg(feature = "cli")]
pub mod aws;
#[cfg(feature = "cli")]
pub mod bundle;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod engine;
#[cfg(feature = "cli")]
pub mod estimate;
#[cfg(feature = "cli")]
pub mod events;
#[cfg(feature = "cli")]
pub mod model;
#[cfg(feature = "cli")]
pub mod plan;
#[cfg(feature = "cli")]
pub mod producer;
#[cfg(feature = "cli")]
pub mod resources;
#[cfg(feature = "cli")]
pub mod spec;
#[cfg(feature = "cli")]
pub mod status;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod testkit;
