//! One place that builds the SDK clients and makes every control-plane call: the standard
//! credential/region chain with the `--region`/`--profile`/`--endpoint-url` overrides, a call
//! counter for every attempt, S3 path-style addressing when an endpoint is overridden (moto and
//! most emulators need it), and `Aws::call`, the one wrapper that gives an SDK call its error
//! context and its retries.
//!
//! Retries live in exactly one layer. The SDK clients are built with retries disabled, and
//! `Aws::call` retries what `errors::classify` calls transient (throttling, IAM propagation,
//! "busy", 5xx, timeouts) up to `Timing::retry_attempts` attempts in all (12 by default,
//! `PIPECTL_RETRY_ATTEMPTS`), with capped exponential backoff and jitter. So one call makes at
//! most that many HTTP requests; nothing multiplies it.

pub mod errors;
pub mod search;
pub mod wait;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

pub use errors::{AwsError, ErrorClass};
pub use wait::Timing;

use std::error::Error as StdError;
use std::future::Future;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// SDK attempts per call. `None`: 1, since `Aws::call` does the retrying (see the module
    /// header); the producer also sets 1 and retries per record itself.
    pub max_attempts: Option<u32>,
    /// Where to reach the domain's REST endpoint instead of the endpoint AWS reports.
    pub search_endpoint_url: Option<String>,
}

/// Counts every HTTP attempt, for the "API calls" figure of plan/apply.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(pub Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "pipectl-call-counter"
    }
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Every client pipectl uses, built from one SDK config.
#[derive(Debug, Clone)]
pub struct Aws {
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub opensearch: aws_sdk_opensearch::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Signed requests to the domain's REST endpoint (index templates).
    pub search: search::Search,
    pub region: String,
    pub calls: CallCounter,
    /// Retry and poll timing for every call made through `call`.
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
#[error("no AWS region: pass --region, set `region` in the spec, or configure AWS_REGION / a profile")]
pub struct NoRegion;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    NoRegion(#[from] NoRegion),
    #[error("{0}")]
    SearchEndpoint(String),
}

/// Loads the SDK config: explicit overrides first, then the spec's region, then the chain.
pub async fn sdk_config(t: &Target, spec_region: Option<&str>) -> Result<aws_config::SdkConfig, NoRegion> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(t.max_attempts.unwrap_or(1)));
    if let Some(p) = &t.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = t.region.as_deref().or(spec_region) {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = &t.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let cfg = loader.load().await;
    if cfg.region().is_none() {
        return Err(NoRegion);
    }
    Ok(cfg)
}

impl Aws {
    pub async fn connect(t: &Target, spec_region: Option<&str>) -> Result<Aws, ConnectError> {
        let cfg = sdk_config(t, spec_region).await?;
        let mut aws = Aws::from_config(&cfg, t.endpoint_url.is_some());
        aws.search.set_endpoint(t.search_endpoint_url.clone()).map_err(ConnectError::SearchEndpoint)?;
        Ok(aws)
    }

    pub fn from_config(cfg: &aws_config::SdkConfig, custom_endpoint: bool) -> Aws {
        let calls = CallCounter::default();
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf($krate::config::Builder::from(cfg).interceptor(calls.clone()).build())
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(cfg).interceptor(calls.clone()).force_path_style(custom_endpoint).build(),
        );
        Aws {
            kinesis: client!(aws_sdk_kinesis),
            firehose: client!(aws_sdk_firehose),
            opensearch: client!(aws_sdk_opensearch),
            iam: client!(aws_sdk_iam),
            lambda: client!(aws_sdk_lambda),
            s3,
            sts: client!(aws_sdk_sts),
            tagging: client!(aws_sdk_resourcegroupstagging),
            cloudwatch: client!(aws_sdk_cloudwatch),
            search: search::Search::new(cfg, calls.clone()),
            region: cfg.region().map(|r| r.to_string()).unwrap_or_default(),
            calls,
            timing: Timing::from_env(),
        }
    }

    /// Makes one SDK call: `f` builds and sends the request (again on each attempt). Errors
    /// carry `op` and `resource`; transient ones are retried (see the module header).
    pub async fn call<T, E, F, Fut>(&self, op: &str, resource: &str, f: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        self.call_observed(op, resource, &|_, _, _| {}, f).await
    }

    /// `call`, telling `on_retry` about each retry (error, attempt, delay).
    pub async fn call_observed<T, E, F, Fut>(
        &self,
        op: &str,
        resource: &str,
        on_retry: &(dyn Fn(&AwsError, u32, std::time::Duration) + Sync),
        mut f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        wait::retry_loop(&self.timing, on_retry, || {
            let fut = f();
            async move { fut.await.map_err(|e| errors::from_sdk(op, resource, e)) }
        })
        .await
    }

    /// One signed request to a domain's REST endpoint (see `search::Search::request`).
    pub async fn domain(&self, call: search::Call<'_>) -> Result<search::Reply, AwsError> {
        self.search.request(&self.timing, &|_, _, _| {}, call).await
    }

    /// The account id of the caller (STS GetCallerIdentity; aws-config already depends on STS).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        let out = self.call("sts:GetCallerIdentity", "caller", || self.sts.get_caller_identity().send()).await?;
        Ok(out.account().unwrap_or_default().to_string())
    }
}
