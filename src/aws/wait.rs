//! Bounded waiting and retrying: every wait has a timeout and reports progress through events;
//! every retry is limited to the transient classes and backs off exponentially with jitter.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::AwsError;
use crate::events::{Event, Observer};

/// Timing knobs. Tests shorten them through the environment; defaults suit real AWS.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// First retry delay; doubles per attempt up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Attempts for a call failing transiently (IAM propagation takes up to a few minutes).
    pub retry_attempts: u32,
    /// Poll interval while waiting for a resource to become ready.
    pub poll: Duration,
    /// How often a still-running wait is reported.
    pub report_every: Duration,
}

impl Timing {
    pub fn from_env() -> Timing {
        let ms =
            |k: &str, d: u64| Duration::from_millis(std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d));
        Timing {
            retry_base: ms("PIPECTL_RETRY_BASE_MS", 1000),
            retry_cap: ms("PIPECTL_RETRY_CAP_MS", 20_000),
            retry_attempts: std::env::var("PIPECTL_RETRY_ATTEMPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
            poll: ms("PIPECTL_POLL_MS", 10_000),
            report_every: ms("PIPECTL_REPORT_MS", 30_000),
        }
    }
}

/// Runs `f`, retrying the transient error classes (throttling, IAM propagation, busy, 5xx)
/// with capped exponential backoff and jitter, `timing.retry_attempts` attempts in all.
pub async fn retry_loop<T, F, Fut>(
    timing: &Timing,
    on_retry: &(dyn Fn(&AwsError, u32, Duration) + Sync),
    mut f: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt + 1 < timing.retry_attempts => {
                attempt += 1;
                let exp = timing.retry_base.saturating_mul(1 << attempt.min(16));
                let cap = exp.min(timing.retry_cap);
                // Half fixed, half jitter: spreads the retries of parallel steps.
                let delay = cap / 2 + cap.mul_f64(fastrand::f64() / 2.0);
                on_retry(&e, attempt, delay);
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a step needs to call AWS and report progress.
pub struct Ctx<'a> {
    pub aws: &'a super::Aws,
    pub obs: &'a dyn Observer,
    pub id: &'a str,
}

impl Ctx<'_> {
    pub fn note(&self, message: impl Into<String>) {
        self.obs.event(Event::Note { id: self.id.to_string(), message: message.into() });
    }

    /// Makes one SDK call through `Aws::call`, reporting each retry as an event.
    pub async fn call<T, E, F, Fut>(&self, op: &str, resource: &str, f: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let report = |e: &AwsError, attempt: u32, delay: Duration| self.retrying(op, e, attempt, delay);
        self.aws.call_observed(op, resource, &report, f).await
    }

    /// One signed request to a domain's REST endpoint, reporting each retry as an event.
    pub async fn domain(&self, call: super::search::Call<'_>) -> Result<super::search::Reply, AwsError> {
        let report = |e: &AwsError, attempt: u32, delay: Duration| self.retrying(call.op, e, attempt, delay);
        self.aws.search.request(&self.aws.timing, &report, call).await
    }

    fn retrying(&self, what: &str, e: &AwsError, attempt: u32, delay: Duration) {
        self.obs.event(Event::Retrying {
            id: self.id.to_string(),
            what: what.to_string(),
            error: e.to_string(),
            attempt,
            delay,
        });
    }

    /// Runs `f` (which already maps its errors), retrying the transient classes with backoff.
    pub async fn retry<T, F, Fut>(&self, what: &str, f: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let report = |e: &AwsError, attempt: u32, delay: Duration| self.retrying(what, e, attempt, delay);
        retry_loop(&self.aws.timing, &report, f).await
    }

    /// Polls `check` until it answers `Ok(None)` (ready) or `timeout` passes; `Ok(Some(s))`
    /// means "not yet, status s". Progress is reported every `report_every`.
    pub async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<(), AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>, AwsError>>,
    {
        let start = Instant::now();
        let mut last_report = Instant::now();
        loop {
            match self.retry(what, &mut check).await? {
                None => return Ok(()),
                Some(status) => {
                    let elapsed = start.elapsed();
                    if elapsed > timeout {
                        return Err(AwsError::local(
                            what,
                            self.id,
                            "WaitTimeout",
                            format!(
                                "still {status} after {}s (limit {}s); rerun plan to see what is left",
                                elapsed.as_secs(),
                                timeout.as_secs()
                            ),
                        ));
                    }
                    if last_report.elapsed() >= self.aws.timing.report_every || elapsed < self.aws.timing.poll {
                        self.obs.event(Event::Waiting {
                            id: self.id.to_string(),
                            what: what.to_string(),
                            status,
                            elapsed,
                        });
                        last_report = Instant::now();
                    }
                    tokio::time::sleep(self.aws.timing.poll).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::aws::errors::classify;
    use crate::events::Collect;

    fn aws() -> crate::aws::Aws {
        let cfg = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        let mut aws = crate::aws::Aws::from_config(&cfg, false);
        aws.timing = fast();
        aws
    }

    fn fast() -> Timing {
        Timing {
            retry_base: Duration::from_millis(1),
            retry_cap: Duration::from_millis(4),
            retry_attempts: 4,
            poll: Duration::from_millis(2),
            report_every: Duration::from_millis(0),
        }
    }

    fn err(code: &str, message: &str) -> AwsError {
        let mut e = AwsError::local("lambda:CreateFunction", "r", code, message);
        e.class = classify("lambda:CreateFunction", code, message, Some(400));
        e
    }

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let (aws, obs) = (aws(), Collect::default());
        let ctx = Ctx { aws: &aws, obs: &obs, id: "x" };
        let calls = AtomicU32::new(0);
        let r = ctx
            .retry("lambda:CreateFunction", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(err(
                        "InvalidParameterValueException",
                        "The role defined for the function cannot be assumed by Lambda.",
                    )),
                    1 => Err(err("ThrottlingException", "Rate exceeded")),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        let events = obs.0.lock().unwrap();
        assert_eq!(events.iter().filter(|e| matches!(e, Event::Retrying { .. })).count(), 2);
    }

    #[tokio::test]
    async fn fatal_errors_are_not_retried_and_retries_are_bounded() {
        let (aws, obs) = (aws(), Collect::default());
        let ctx = Ctx { aws: &aws, obs: &obs, id: "x" };
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = ctx
            .retry("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(err("AccessDeniedException", "no"))
            })
            .await;
        assert_eq!(r.unwrap_err().code, "AccessDeniedException");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = ctx
            .retry("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(err("ThrottlingException", "slow down"))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "bounded by retry_attempts");
    }

    #[tokio::test]
    async fn waits_report_progress_and_time_out() {
        let (aws, obs) = (aws(), Collect::default());
        let ctx = Ctx { aws: &aws, obs: &obs, id: "search_domain.kinesis" };
        let polls = AtomicU32::new(0);
        ctx.wait_until("domain ready", Duration::from_secs(5), || async {
            Ok(if polls.fetch_add(1, Ordering::SeqCst) < 3 { Some("processing".to_string()) } else { None })
        })
        .await
        .unwrap();
        let waiting = obs
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Waiting { status, .. } if status == "processing"))
            .count();
        assert!(waiting >= 1, "progress is reported while waiting");
        let e = ctx
            .wait_until("domain ready", Duration::from_millis(20), || async { Ok(Some("processing".to_string())) })
            .await
            .unwrap_err();
        assert_eq!(e.code, "WaitTimeout");
        assert!(e.message.contains("still processing"), "{}", e.message);
    }
}
