//! `pipectl status`: is each pipeline healthy, and if not, where does data stop? `metrics`
//! names each stage's CloudWatch metrics and folds GetMetricData's answer (pure); `read` makes
//! the read-only calls (one batched GetMetricData, each resource's describe, the failed
//! documents in S3); `verdict` draws the verdict per pipeline (pure); `render` prints the
//! screen, the sparkline and the JSON (pure).

pub mod metrics;
pub mod read;
pub mod render;
pub mod verdict;
